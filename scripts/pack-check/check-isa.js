#!/usr/bin/env node
// Checks that the addon node-gyp built (what prebuildify ships) runs on any
// x86-64: (1) no compile flag raises the instruction set (-march, -mavx, …);
// (2) every function whose machine code uses AVX/AVX-512/BMI instructions is
// one the source declares with __attribute__((target("..."))) (or a
// target_clones clone), i.e. reached only through run-time dispatch.
//
//   node scripts/pack-check/check-isa.js [object files...]
// Default objects: build/Release/obj.target/flowvae/native/**/*.o
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const problems = [];

// (1) Flags in the generated makefile of the addon target.
const makefile = path.join(root, 'build', 'flowvae.target.mk');
if (!fs.existsSync(makefile)) problems.push(`${makefile} not found (run npm run prebuild first)`);
else {
  const text = fs.readFileSync(makefile, 'utf8');
  const raising = text.match(/(^|\s)-m(arch|tune|cpu|avx\S*|fma\S*|sse3|ssse3|sse4\S*|bmi\S*|f16c|popcnt|lzcnt)(=\S+)?/gm);
  if (raising) problems.push(`instruction-set flags in ${path.relative(root, makefile)}: ${[...new Set(raising.map((s) => s.trim()))].join(' ')}`);
}
for (const v of ['CFLAGS', 'CXXFLAGS']) {
  if (/-m(arch|avx|fma)/.test(process.env[v] ?? '')) problems.push(`${v} in the environment raises the instruction set: ${process.env[v]}`);
}

// (2) Machine code, per function.
function objects(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? objects(p) : e.name.endsWith('.o') ? [p] : [];
  });
}
const files = process.argv.length > 2 ? process.argv.slice(2) : objects(path.join(root, 'build', 'Release', 'obj.target', 'flowvae', 'native'));
if (files.length === 0) problems.push('no object files found to inspect');

// Mnemonics outside baseline x86-64 (SSE2) that GCC emits when the target allows them.
const EXTENDED = /^(v\w+|andn|bextr|blsi|blsmsk|blsr|bzhi|mulx|pdep|pext|rorx|sarx|shlx|shrx|lzcnt|tzcnt|popcnt|movbe|crc32\w?|pshufb|ptest|pblendvb|blendvp[sd]|round[sp][sd]|pmulld|pminsd|pmaxsd|insertps|extractps|pextrd|pinsrd|dpp[sd]|kmov\w+)$/;

// Source lines of every C++ file, to find how a function is declared.
const sources = [];
(function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (/\.(cc|h|inc|hpp)$/.test(e.name)) sources.push(fs.readFileSync(p, 'utf8').split('\n'));
  }
})(path.join(root, 'native'));

/** Unqualified name of a demangled symbol: `flowvae::(anonymous namespace)::kernel_avx2(unsigned long, …) [clone .isra.0]` → kernel_avx2. */
function baseName(symbol) {
  let s = symbol.replace(/ \[clone [^\]]*\]/g, '');
  // Drop the parameter list: the last top-level parenthesised group.
  let depth = 0;
  for (let i = s.length - 1; i >= 0; i--) {
    if (s[i] === ')') depth++;
    else if (s[i] === '(') {
      depth--;
      if (depth === 0) {
        s = s.slice(0, i);
        break;
      }
    }
  }
  s = s.replace(/<[^<>]*>/g, '');
  const parts = s.split('::');
  return parts[parts.length - 1].trim();
}

/** True when a declaration of `name` carries a target(...) or target_clones(...) attribute. */
function declaredWithTarget(name) {
  const call = new RegExp(`\\b${name.replace(/[^\w]/g, '')}\\s*\\(`);
  for (const lines of sources) {
    for (let i = 0; i < lines.length; i++) {
      if (!call.test(lines[i])) continue;
      const around = lines.slice(Math.max(0, i - 3), i + 1).join('\n');
      if (/__attribute__\s*\(\(\s*target(_clones)?\s*\(/.test(around)) return true;
    }
  }
  return false;
}

const simdFunctions = [];
for (const file of files) {
  const dump = execFileSync('objdump', ['-d', '-C', '--no-show-raw-insn', file], { encoding: 'utf8', maxBuffer: 256 << 20 });
  let current = '';
  const seen = new Map();
  for (const line of dump.split('\n')) {
    const head = /^[0-9a-f]+ <(.+)>:$/.exec(line);
    if (head) {
      current = head[1];
      continue;
    }
    const insn = /^\s+[0-9a-f]+:\s+(\S+)/.exec(line);
    if (!insn || !current) continue;
    const mnemonic = insn[1];
    if (EXTENDED.test(mnemonic)) {
      const info = seen.get(current) ?? { zmm: false, mnemonics: new Set() };
      if (/%zmm|%k[0-7]/.test(line)) info.zmm = true;
      info.mnemonics.add(mnemonic);
      seen.set(current, info);
    }
  }
  for (const [symbol, info] of seen) {
    const name = baseName(symbol);
    const clone = /\.(avx\w*|fma\w*|arch_\w+)$/.test(symbol) || /\[clone \.(avx|fma|arch_)/.test(symbol);
    simdFunctions.push({ file: path.relative(root, file), name, zmm: info.zmm });
    if (!clone && !declaredWithTarget(name)) {
      problems.push(
        `${path.relative(root, file)}: ${symbol} uses ${[...info.mnemonics].slice(0, 4).join(', ')} but is not declared with a target attribute`,
      );
    }
  }
}

const avx512 = simdFunctions.filter((f) => f.zmm).map((f) => f.name);
console.log(
  `instruction sets: ${files.length} objects, ${simdFunctions.length} functions with AVX/AVX-512 code` +
    (problems.length ? `; ${problems.length} problems:` : ', all declared for run-time dispatch') +
    (avx512.length ? ` (AVX-512 in: ${[...new Set(avx512)].join(', ')})` : ''),
);
for (const p of problems.slice(0, 10)) console.error(`  ${p}`);
if (problems.length > 10) console.error(`  … and ${problems.length - 10} more`);
process.exit(problems.length ? 1 : 0);
