/**
 * Command-line entry of the binding fuzz, in a process of its own so that a
 * crash is reported with the function being fuzzed and the signal
 * (test/fuzz.test.ts), and against other builds of the addon
 * (scripts/fuzz-asan.sh runs it under AddressSanitizer):
 *
 *   node fuzz-main.js <path/to/addon.node> [seed] [budgetMs] [callsPerFunction]
 *
 * Progress (the function about to be fuzzed) goes to stderr; the last stdout
 * line is `REPORT <json>` when FLOWVAE_FUZZ_JSON=1. Exits 1 when a call broke the contract; a memory
 * error aborts the process.
 */
import { formatOutcomes, fuzzAddon } from './fuzz';

const [addonPath, seedArg, budgetArg, callsArg] = process.argv.slice(2);
if (!addonPath) {
  console.error('usage: fuzz-main <addon.node> [seed] [budgetMs] [callsPerFunction]');
  process.exit(2);
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const addon = require(addonPath) as object;
const seed = Number(seedArg ?? 20240611);
const report = fuzzAddon(addon, {
  seed,
  budgetMs: Number(budgetArg ?? 20_000),
  callsPerFunction: Number(callsArg ?? 3000),
  log: (line) => process.stderr.write(`${line}\n`),
});
console.log(`binding fuzz: ${report.totalCalls} calls over ${report.functions.length} functions in ${report.elapsedMs} ms (seed ${seed})`);
console.log(formatOutcomes(report));
for (const f of report.functions) {
  if (!f.validCall) console.log(`  no valid call inferred for ${f.name}: ${f.note}`);
  if (f.truncated) console.log(`  time share ran out for ${f.name} after ${f.calls} calls`);
}
// The whole report as the last line, for test/fuzz.test.ts.
if (process.env.FLOWVAE_FUZZ_JSON === '1') console.log(`REPORT ${JSON.stringify(report)}`);
if (report.failureCount > 0) {
  console.log(`${report.failureCount} contract breaches, first ones:\n  ${report.failures.join('\n  ')}`);
  process.exit(1);
}
