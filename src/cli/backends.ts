/**
 * `flowvae backends`: which compute backends run here, and why not where they do not.
 */
import { Command, Option } from 'commander';
import { backends, getBackend } from '../backend';
import { Output, outputMode } from './progress';

export function backendsCommand(): Command {
  return new Command('backends')
    .summary('list the compute backends and whether they run here')
    .description(
      'Lists the compute backends (reference, cpu, cuda): available or not (with the reason), element type, threads, SIMD path, and the kernel families a backend runs on another one.',
    )
    .addOption(new Option('--json', 'print the list as JSON'))
    .action((o: { json?: boolean }) => {
      const output = new Output(outputMode(o.json));
      const list = backends();
      const chosen = getBackend().name;
      if (output.mode === 'json') {
        process.stdout.write(`${JSON.stringify({ default: chosen, backends: list })}\n`);
        return;
      }
      const lines = list.map((b) => {
        const name = `${b.name}${b.name === chosen ? ' (default)' : ''}`.padEnd(20);
        // Families a backend runs elsewhere (cuda's without CUDA kernels), grouped by the reason.
        const elsewhere = [...new Set(b.fallbacks.map((f) => f.reason))].map(
          (reason) =>
            `\n  ${''.padEnd(20)}${b.fallbacks
              .filter((f) => f.reason === reason)
              .map((f) => f.family)
              .join(', ')}: ${reason}`,
        );
        if (!b.available) return `  ${name}unavailable: ${b.reason}${elsewhere.join('')}`;
        const details: string[] = [b.dtype];
        if (b.name === 'cpu') details.push(`${b.threads} thread${b.threads === 1 ? '' : 's'}`, `SIMD ${b.simd ?? 'scalar'}`);
        if (b.name === 'reference') details.push('pure TypeScript');
        return `  ${name}available: ${details.join(', ')}${elsewhere.join('')}`;
      });
      output.log(['flowvae backends:', ...lines].join('\n'));
    });
}
