#!/usr/bin/env node
// Checks that the addon node-gyp built (what prebuildify ships) runs on any
// x86-64: (1) no compile flag raises the instruction set (-march, -mavx, …);
// (2) every function whose machine code uses AVX/AVX-512/BMI instructions was
// compiled for a wider target on purpose, i.e. is reached only through
// run-time dispatch: the source declares it (or a function or namespace
// enclosing it) with __attribute__((target(...))), target_clones, a
// `#pragma GCC target` region, or a macro expanding to one of those.
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
const EXTENDED =
  /^(v\w+|andn|bextr|blsi|blsmsk|blsr|bzhi|mulx|pdep|pext|rorx|sarx|shlx|shrx|lzcnt|tzcnt|popcnt|movbe|crc32\w?|pshufb|ptest|pblendvb|blendvp[sd]|round[sp][sd]|pmulld|pminsd|pmaxsd|insertps|extractps|pextrd|pinsrd|dpp[sd]|kmov\w+)$/;

// Source lines of every C++ file (continuation lines joined).
const sources = [];
(function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (/\.(cc|h|inc|hpp)$/.test(e.name)) sources.push(fs.readFileSync(p, 'utf8').replace(/\\\n/g, ' ').split('\n'));
  }
})(path.join(root, 'native'));

// Macros that expand to a target attribute or a `#pragma GCC target` region
// (e.g. FLOWVAE_TARGET_AVX2): a line using one marks a target as well.
const targetMacros = new Set();
for (const lines of sources) {
  for (const line of lines) {
    const m = /^\s*#\s*define\s+(\w+)\b(.*)$/.exec(line);
    if (m && /\btarget(_clones)?\s*\(|GCC target/.test(m[2])) targetMacros.add(m[1]);
  }
}
function marksTarget(line) {
  if (/__attribute__\s*\(\(\s*target(_clones)?\s*\(|#\s*pragma\s+GCC\s+target/.test(line)) return true;
  for (const macro of targetMacros) if (new RegExp(`\\b${macro}\\b`).test(line)) return true;
  return false;
}

/**
 * Name components of a demangled symbol, without parameter lists, template
 * arguments and clone suffixes:
 * `flowvae::(anonymous namespace)::avx2::update<true>(…) [clone .isra.0]` → flowvae, avx2, update.
 */
function components(symbol) {
  let s = symbol.replace(/ \[clone [^\]]*\]/g, '');
  let previous;
  do {
    previous = s;
    s = s.replace(/\([^()]*\)/g, '').replace(/<[^<>]*>/g, '');
  } while (s !== previous);
  return s
    .split('::')
    .map((c) => c.trim().replace(/^.*\s/, ''))
    .filter((c) => /^\w+$/.test(c));
}

/**
 * True when a component of the symbol is a function declared with a target
 * marker, or a namespace opened in a target region: the marker within the
 * three lines up to the declaration.
 */
function declaredWithTarget(symbol) {
  for (const name of components(symbol)) {
    const declaration = new RegExp(`\\b${name}\\s*[(<]|\\bnamespace\\s+${name}\\s*\\{`);
    for (const lines of sources) {
      for (let i = 0; i < lines.length; i++) {
        if (declaration.test(lines[i]) && lines.slice(Math.max(0, i - 3), i + 1).some(marksTarget)) return true;
      }
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
    if (!insn || !current || !EXTENDED.test(insn[1])) continue;
    const info = seen.get(current) ?? { zmm: false, mnemonics: new Set() };
    if (/%zmm|%k[0-7]/.test(line)) info.zmm = true;
    info.mnemonics.add(insn[1]);
    seen.set(current, info);
  }
  for (const [symbol, info] of seen) {
    const name = components(symbol).pop() ?? symbol;
    simdFunctions.push({ name, zmm: info.zmm });
    const clone = /\.(avx\w*|fma\w*|arch_\w+)$/.test(symbol) || /\[clone \.(avx|fma|arch_)/.test(symbol);
    if (!clone && !declaredWithTarget(symbol)) {
      problems.push(`${path.relative(root, file)}: ${symbol} uses ${[...info.mnemonics].slice(0, 4).join(', ')} but is not compiled for a target on purpose`);
    }
  }
}

const avx512 = [...new Set(simdFunctions.filter((f) => f.zmm).map((f) => f.name))];
console.log(
  `instruction sets: ${files.length} objects, ${simdFunctions.length} functions with AVX/AVX-512 code` +
    (problems.length ? `; ${problems.length} problems:` : ', all declared for run-time dispatch') +
    (avx512.length ? ` (AVX-512 in ${avx512.length} functions: ${avx512.slice(0, 8).join(', ')}${avx512.length > 8 ? ', …' : ''})` : ''),
);
for (const p of problems.slice(0, 10)) console.error(`  ${p}`);
if (problems.length > 10) console.error(`  … and ${problems.length - 10} more`);
process.exit(problems.length ? 1 : 0);
