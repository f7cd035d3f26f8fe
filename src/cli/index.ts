#!/usr/bin/env node
/**
 * The `flowvae` command: train, eval, sample, fit2d, backends, bench.
 * Argument parsing is commander's; every problem with the command line is
 * reported as one line on stderr with exit code 2, failures while running as
 * one line with exit code 1, Ctrl-C as exit code 130 and SIGTERM as 143 after
 * saving. A closed stdout (`flowvae … | head -1`) never stops a run.
 */
import { Command, CommanderError } from 'commander';
import { FlowVaeError } from '../errors';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from './args';
import { backendsCommand } from './backends';
import { benchCommand } from './bench';
import { packageVersion, surviveClosedOutput } from './common';
import { evalCommand } from './eval';
import { fit2dCommand } from './fit2d';
import { sampleCommand } from './sample';
import { trainCommand } from './train';

export function buildProgram(): Command {
  const program = new Command('flowvae')
    .description('Variational autoencoders with normalizing-flow posteriors, and flows fitted to 2-D densities.')
    .version(packageVersion(), '-V, --version')
    .showSuggestionAfterError(true)
    .addHelpText('after', '\nRun "flowvae <command> --help" for the options of a command.');
  for (const cmd of [trainCommand(), evalCommand(), sampleCommand(), fit2dCommand(), backendsCommand(), benchCommand()]) {
    program.addCommand(cmd);
  }
  // Every command reports errors through main() (one line, our exit codes) instead of exiting itself.
  const configure = (c: Command): void => {
    c.exitOverride();
    c.configureOutput({
      // Commander puts a suggestion on a second line; keep the message on one.
      outputError: (text, write) =>
        write(`${text.trimEnd().replace(/\n/g, ' ')} (see "${c.name() === 'flowvae' ? 'flowvae' : `flowvae ${c.name()}`} --help")\n`),
    });
    c.commands.forEach(configure);
  };
  configure(program);
  return program;
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  surviveClosedOutput(process.stdout);
  surviveClosedOutput(process.stderr);
  const program = buildProgram();
  try {
    if (argv.length === 0) {
      program.outputHelp();
      return EXIT_USAGE;
    }
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version end this way with exit code 0; parse errors were already printed.
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    if (err instanceof CliError) {
      process.stderr.write(`${err.message}\n`);
      return err.exitCode;
    }
    const coded = (err instanceof TypeError || err instanceof RangeError) && typeof (err as { code?: unknown }).code === 'string';
    if (err instanceof FlowVaeError || coded) {
      // Library errors carry one-line messages naming the problem (data row, option, file).
      process.stderr.write(`error: ${err.message}\n`);
      // A bad environment variable is part of how the command was called.
      return (err as { code?: string }).code === 'ERR_ENV' ? EXIT_USAGE : EXIT_FAILURE;
    }
    throw err;
  }
}

if (require.main === module) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`flowvae: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = EXIT_FAILURE;
    },
  );
}
