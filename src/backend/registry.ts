/**
 * Backends as registries of kernel families.
 *
 * - `KERNEL_FAMILIES` is the one TypeScript list of families: each family's
 *   kernels with their parameter counts (checked against the family's
 *   interface by the compiler) and the native functions that bind it, with
 *   theirs (checked against the addon by test/wiring.test.ts).
 * - Each backend registers a factory per family it implements
 *   (`registerKernels`, called from src/backend/<backend>/index.ts).
 * - `assembleBackend` builds a Backend from the registrations. What a
 *   backend lacks, and which backend runs it instead, is decided here once
 *   (`FALLBACK`): today only cuda falls back, to cpu; `familyFallbacks`
 *   reports it (backends() and `flowvae backends` show it).
 *
 * The model layer keeps calling `backend.<family>.<kernel>(...)`: the
 * assembled Backend is a plain object with one property per family.
 */
import { FlowVaeError, typeError } from '../errors';
import type { AdamKernels } from './kernels/adam';
import type { AutoregressiveKernels } from './kernels/autoregressive';
import { COUPLING_SIGNATURES, type CouplingKernels } from './kernels/coupling';
import type { DenseKernels } from './kernels/dense';
import type { ElementwiseKernels } from './kernels/elementwise';
import { GAUSSIAN_SIGNATURES, type GaussianKernels } from './kernels/gaussian';
import { GLOW_SIGNATURES, type GlowKernels } from './kernels/glow';
import { LIKELIHOOD_SIGNATURES, type LikelihoodKernels } from './kernels/likelihood';
import type { LstmKernels } from './kernels/lstm';
import type { ResidualKernels } from './kernels/residual';
import { PLANAR_SIGNATURES, type PlanarKernels } from './kernels/planar';
import { RADIAL_SIGNATURES, type RadialKernels } from './kernels/radial';
import type { RngKernels } from './kernels/rng';
import type { KernelFunction, KernelSignature } from './kernels/signature';
import { SPLINE_SIGNATURES, type SplineKernels } from './kernels/spline';
import type { SylvesterKernels } from './kernels/sylvester';
import type { BackendName, DType, FloatArray } from './types';

/** The kernels of every family, by family name: what a Backend carries besides its element type. */
export interface KernelFamilies {
  readonly dense: DenseKernels;
  readonly elementwise: ElementwiseKernels;
  readonly rng: RngKernels;
  readonly adam: AdamKernels;
  readonly gaussian: GaussianKernels;
  readonly likelihood: LikelihoodKernels;
  readonly autoregressive: AutoregressiveKernels;
  readonly coupling: CouplingKernels;
  readonly planar: PlanarKernels;
  readonly radial: RadialKernels;
  readonly sylvester: SylvesterKernels;
  readonly glow: GlowKernels;
  readonly spline: SplineKernels;
  readonly lstm: LstmKernels;
  readonly residual: ResidualKernels;
}

export type KernelFamily = keyof KernelFamilies;

type Arity<F> = F extends (...args: infer A) => unknown ? A['length'] : never;

/** What the registry knows of one family. */
export interface FamilyDescriptor<T> {
  /** Each kernel of the family with its parameter count (the compiler checks both against T). */
  readonly kernels: { readonly [K in keyof T]-?: Arity<T[K]> };
  /** The native functions binding the family (native/napi/<family>.cc), with the argument counts they check. */
  readonly bindings: Readonly<Record<string, number>>;
  /** The bindings the cuda addon provides when the family runs on cuda (default: all of `bindings`). */
  readonly cudaBindings?: readonly string[];
  /**
   * Each kernel's signature, where the family declares its calls that way
   * (kernels/signature.ts): the source of the arities and bindings above, of
   * the reference's argument checks and of the argument-by-argument probes
   * of test/kernel-errors.test.ts.
   */
  readonly signatures?: { readonly [K in keyof T]?: KernelSignature };
}

type SignatureArities<S extends Record<string, KernelSignature>> = { readonly [K in keyof S]: S[K]['args']['length'] };

/** A family declared by signatures: kernels, arities and bindings all read from them. */
function declaredFamily<S extends Record<string, KernelSignature>>(signatures: S) {
  const kernels = {} as Record<string, number>;
  const bindings: Record<string, number> = {};
  for (const [name, signature] of Object.entries(signatures)) {
    kernels[name] = signature.args.length;
    bindings[signature.binding] = signature.args.length;
  }
  return { kernels: kernels as SignatureArities<S>, bindings, signatures };
}

/**
 * Every kernel family: the one list to extend on the TypeScript side (with
 * `KernelFamilies` above, which the compiler keeps in step with it).
 */
export const KERNEL_FAMILIES: { readonly [F in KernelFamily]: FamilyDescriptor<KernelFamilies[F]> } = {
  dense: {
    kernels: { gemm: 10, forward: 7, backward: 10 },
    bindings: { denseGemm: 10, denseForward: 7, denseBackward: 10 },
  },
  elementwise: {
    kernels: { forward: 5, backward: 7 },
    bindings: { elementwiseForward: 5, elementwiseBackward: 7 },
  },
  rng: {
    kernels: { normal: 3, uniform: 3 },
    bindings: { rngNormal: 3, rngUniform: 3 },
  },
  adam: {
    kernels: { step: 6, stepTensors: 5 },
    bindings: { adamStep: 13, adamStepTensors: 12 },
    // The cuda backend stages stepTensors through one flat buffer and adamStep.
    cudaBindings: ['adamStep'],
  },
  gaussian: declaredFamily(GAUSSIAN_SIGNATURES),
  likelihood: declaredFamily(LIKELIHOOD_SIGNATURES),
  autoregressive: {
    kernels: {
      maskWeights: 7,
      maskedDenseForward: 11,
      maskedDenseBackward: 13,
      iafForward: 6,
      iafBackward: 8,
      iafInverse: 6,
      mafForward: 6,
      mafBackward: 8,
      mafInverse: 6,
    },
    bindings: {
      autoregressiveMaskWeights: 7,
      autoregressiveMaskedDenseForward: 11,
      autoregressiveMaskedDenseBackward: 13,
      autoregressiveIafForward: 6,
      autoregressiveIafBackward: 8,
      autoregressiveIafInverse: 6,
      autoregressiveMafForward: 6,
      autoregressiveMafBackward: 8,
      autoregressiveMafInverse: 6,
    },
  },
  coupling: declaredFamily(COUPLING_SIGNATURES),
  planar: declaredFamily(PLANAR_SIGNATURES),
  radial: declaredFamily(RADIAL_SIGNATURES),
  sylvester: {
    kernels: { orthogonalize: 5, orthogonalizeBackward: 6, forward: 9, backward: 11, inverse: 9 },
    bindings: {
      sylvesterOrthogonalize: 10,
      sylvesterOrthogonalizeBackward: 11,
      sylvesterForward: 13,
      sylvesterBackward: 15,
      sylvesterInverse: 14,
    },
  },
  glow: declaredFamily(GLOW_SIGNATURES),
  spline: declaredFamily(SPLINE_SIGNATURES),
  lstm: {
    kernels: { forward: 16, backward: 21 },
    bindings: { lstmForward: 16, lstmBackward: 21 },
  },
  residual: {
    kernels: { normalize: 9, normalizeBackward: 9, forward: 12, backward: 11, inverse: 13 },
    bindings: { residualNormalize: 9, residualNormalizeBackward: 9, residualForward: 12, residualBackward: 11, residualInverse: 13 },
  },
};

/** Family names in the order of KERNEL_FAMILIES. */
export const FAMILY_NAMES = Object.keys(KERNEL_FAMILIES) as KernelFamily[];

/** The parts of a backend that are not kernel families. */
export interface BackendCore {
  readonly name: BackendName;
  /** Element type of this backend's arrays. */
  readonly dtype: DType;
  /** A zero-filled array of this backend's element type. */
  alloc(length: number): FloatArray;
  /** A copy of `data` in this backend's element type. */
  from(data: ArrayLike<number>): FloatArray;
}

/** A backend: its element type and one object of kernels per family. */
export type Backend = BackendCore & KernelFamilies;

/**
 * Where a backend lacks a family, the backend that runs it instead. cuda
 * takes host Float32Arrays like cpu, so a family without CUDA kernels runs
 * on the cpu kernels unchanged. reference and cpu must implement every family.
 */
export const FALLBACK: Readonly<Partial<Record<BackendName, BackendName>>> = { cuda: 'cpu' };

/** Builds one family's kernels for a backend from that backend's context (nothing, the addon, the CUDA addon). */
export type KernelFactory<F extends KernelFamily, Context> = (context: Context) => KernelFamilies[F];

const registry = new Map<BackendName, Map<KernelFamily, KernelFactory<KernelFamily, never>>>();

/** Registers a backend's implementation of one family; a second registration of the same pair is refused. */
export function registerKernels<F extends KernelFamily, Context>(backend: BackendName, family: F, factory: KernelFactory<F, Context>): void {
  if (!(family in KERNEL_FAMILIES)) {
    throw new FlowVaeError('ERR_BACKEND_UNAVAILABLE', `Unknown kernel family "${family}": add it to KERNEL_FAMILIES in src/backend/registry.ts`);
  }
  let families = registry.get(backend);
  if (!families) registry.set(backend, (families = new Map()));
  if (families.has(family)) throw new FlowVaeError('ERR_BACKEND_UNAVAILABLE', `Kernel family "${family}" is registered twice on backend "${backend}"`);
  families.set(family, factory as KernelFactory<KernelFamily, never>);
}

/** Registers every family of a table (the shape the backend index files use). */
export function registerAll<Context>(backend: BackendName, table: { readonly [F in KernelFamily]?: KernelFactory<F, Context> }): void {
  for (const family of FAMILY_NAMES) {
    const factory = table[family];
    if (factory) registerKernels(backend, family, factory as KernelFactory<KernelFamily, Context>);
  }
}

/** The families a backend has registered, in KERNEL_FAMILIES order. */
export function registeredFamilies(backend: BackendName): KernelFamily[] {
  const families = registry.get(backend);
  return FAMILY_NAMES.filter((f) => families?.has(f));
}

/** A family a backend lacks, the backend that runs it instead, and why. */
export interface FamilyFallback {
  family: KernelFamily;
  runsOn: BackendName;
  reason: string;
}

/** The families `backend` lacks and where each runs instead (empty for a complete backend). */
export function familyFallbacks(backend: BackendName): FamilyFallback[] {
  const target = FALLBACK[backend];
  return FAMILY_NAMES.filter((f) => !registry.get(backend)?.has(f)).map((family) => ({
    family,
    runsOn: target ?? backend,
    reason: target ? `no ${backend} kernels yet; runs on the ${target} kernels` : `not implemented on ${backend}`,
  }));
}

/**
 * A declared family's kernels on a native backend: each kernel is the addon
 * function its signature names, called directly (the binding checks every
 * argument; a Float64Array is refused there with a TypeError naming it).
 */
export function nativeKernels<S extends Record<string, KernelSignature>>(bindings: object, signatures: S): { [K in keyof S]: KernelFunction<S[K]> } {
  const kernels: Record<string, unknown> = {};
  for (const [name, signature] of Object.entries(signatures)) {
    const fn = (bindings as Record<string, unknown>)[signature.binding];
    if (typeof fn !== 'function') {
      throw new FlowVaeError('ERR_BACKEND_UNAVAILABLE', `The native addon has no "${signature.binding}" (rebuild with "npm run build:native")`);
    }
    kernels[name] = fn;
  }
  return kernels as { [K in keyof S]: KernelFunction<S[K]> };
}

/** A kernel's name in the bindings and in arity errors: `planar` + `forward` → `planarForward`. */
export function bindingName(family: KernelFamily, kernel: string): string {
  return `${family}${kernel[0].toUpperCase()}${kernel.slice(1)}`;
}

/**
 * The family's kernels, each refusing a call with fewer arguments than it
 * declares, in the bindings' words (`planarForward expects 10 arguments but
 * received 3`). Checked here for every backend: the TypeScript wrappers of
 * the native backends forward every parameter, so the bindings never see a
 * short call.
 */
function withArityChecks(family: KernelFamily, kernels: object): object {
  const checked: Record<string, unknown> = { ...kernels };
  for (const [name, arity] of Object.entries(KERNEL_FAMILIES[family].kernels as Record<string, number>)) {
    const kernel = (kernels as Record<string, (...args: unknown[]) => unknown>)[name];
    if (typeof kernel !== 'function') continue;
    const binding = bindingName(family, name);
    const wrapper = function (this: unknown): unknown {
      // `arguments` passes through without the array a rest parameter would allocate on every call.
      // eslint-disable-next-line prefer-rest-params
      const args = arguments;
      if (args.length < arity) throw typeError(`${binding} expects ${arity} arguments but received ${args.length}`);
      return kernel.apply(kernels, args as unknown as unknown[]);
    };
    // Keeps the kernel's arity visible (`length`), as the wiring test reads it.
    Object.defineProperty(wrapper, 'length', { value: arity });
    checked[name] = wrapper;
  }
  return checked;
}

/**
 * The Backend object for `core.name`: every registered family built from
 * `context` (with arity checks where no binding makes them), every other one
 * taken from `fallback` (the backend FALLBACK names). A family with neither
 * is refused, naming it.
 */
export function assembleBackend<Context>(core: BackendCore, context: Context, fallback: Backend | null = null): Backend {
  const families = registry.get(core.name);
  const kernels: Record<string, unknown> = {};
  const missing: string[] = [];
  for (const family of FAMILY_NAMES) {
    const factory = families?.get(family) as KernelFactory<KernelFamily, Context> | undefined;
    if (factory) kernels[family] = withArityChecks(family, factory(context));
    else if (fallback && FALLBACK[core.name] === fallback.name) kernels[family] = fallback[family];
    else missing.push(family);
  }
  if (missing.length > 0) {
    throw new FlowVaeError(
      'ERR_BACKEND_UNAVAILABLE',
      `Backend "${core.name}" has no kernels for ${missing.map((f) => `"${f}"`).join(', ')} and no backend to fall back to`,
    );
  }
  return { ...core, ...kernels } as Backend;
}
