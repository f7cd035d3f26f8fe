/**
 * Registry of flow families: how the VAE builds a posterior flow from a name,
 * and the list the flow property tests loop over (a flow registered here is
 * covered by them at once).
 */
import type { Backend } from '../backend/backend';
import type { Flow } from './flow';

export interface FlowFactoryOptions {
  dim: number;
  layers: number;
  amortized: boolean;
  seed: number;
  backend: Backend;
  /** Family-specific options (e.g. `m` for orthogonal Sylvester, `hidden` for IAF). */
  extra: Record<string, unknown>;
}

export interface FlowFamily {
  /** Whether the family can take its parameters per example from an encoder. */
  readonly amortizable: boolean;
  /** Whether it can be used with shared (global) parameters. */
  readonly shareable: boolean;
  create(options: FlowFactoryOptions): Flow;
}

export const FLOW_FAMILIES: Record<string, FlowFamily> = {};

export function registerFlow(name: string, family: FlowFamily): void {
  FLOW_FAMILIES[name] = family;
}
