/** `flowvae fit2d`: placeholder until the 2-D targets and FlowDistribution land (feat/flowdist). */
import { Command } from 'commander';
import { CliError, EXIT_FAILURE } from './args';

export function fit2dCommand(): Command {
  return new Command('fit2d')
    .summary('fit a flow to a 2-D target density by reverse KL')
    .allowUnknownOption(true)
    .action(() => {
      throw new CliError('error: fit2d is not available in this build yet', EXIT_FAILURE);
    });
}
