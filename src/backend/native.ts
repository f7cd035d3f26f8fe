/**
 * The one place that loads the native addon. It declares the addon's
 * interface (plain functions over typed arrays and numbers) and loads it with
 * node-gyp-build: a prebuilt binary from prebuilds/ first, then a local build
 * under build/. If nothing loads, `loadNative()` returns null and remembers
 * why, and the library runs on the reference backend.
 */
import * as path from 'node:path';
import { checkEnvironment } from './environment';
import type { COUPLING_SIGNATURES } from './kernels/coupling';
import type { GAUSSIAN_SIGNATURES } from './kernels/gaussian';
import type { GLOW_SIGNATURES } from './kernels/glow';
import type { LIKELIHOOD_SIGNATURES } from './kernels/likelihood';
import type { PLANAR_SIGNATURES } from './kernels/planar';
import type { RADIAL_SIGNATURES } from './kernels/radial';
import type { BindingFunctions } from './kernels/signature';
import type { SPLINE_SIGNATURES } from './kernels/spline';

/** The bindings of the families whose calls are declared by signatures (kernels/<family>.ts): typed from them. */
type DeclaredBindings = BindingFunctions<typeof GAUSSIAN_SIGNATURES> &
  BindingFunctions<typeof LIKELIHOOD_SIGNATURES> &
  BindingFunctions<typeof PLANAR_SIGNATURES> &
  BindingFunctions<typeof RADIAL_SIGNATURES> &
  BindingFunctions<typeof GLOW_SIGNATURES> &
  BindingFunctions<typeof COUPLING_SIGNATURES> &
  BindingFunctions<typeof SPLINE_SIGNATURES>;

/**
 * Functions exported by the compiled addon (native/napi/). Sizes are
 * re-checked there. The bindings of declared families come from their
 * signatures; the others are written out below.
 */
export interface NativeAddon extends DeclaredBindings {
  abiVersion: number;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  simdLevel(): string;
  /** Last-level cache size the kernels assume (FLOWVAE_CACHE_BYTES, else detected). */
  lastLevelCacheBytes(): number;

  // dense (native/napi/dense.cc)
  denseGemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    b: Float32Array,
    beta: number,
    c: Float32Array,
  ): void;
  denseForward(x: Float32Array, weight: Float32Array, bias: Float32Array | null, y: Float32Array, batch: number, inDim: number, outDim: number): void;
  denseBackward(
    x: Float32Array,
    weight: Float32Array,
    dy: Float32Array,
    dx: Float32Array | null,
    dWeight: Float32Array | null,
    dBias: Float32Array | null,
    batch: number,
    inDim: number,
    outDim: number,
    accumulate: boolean,
  ): void;

  // elementwise (native/napi/elementwise.cc); kind is the index in ACTIVATIONS
  elementwiseForward(kind: number, x: Float32Array, y: Float32Array, n: number, alpha: number): void;
  elementwiseBackward(kind: number, x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array, n: number, alpha: number): void;

  // rng (native/napi/rng.cc)
  rngNormal(seed: number, offset: number, out: Float32Array): void;
  rngUniform(seed: number, offset: number, out: Float32Array): void;

  // adam (native/napi/adam.cc); returns the gradient norm before clipping
  adamStep(
    params: Float32Array,
    grads: Float32Array,
    m: Float32Array,
    v: Float32Array,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    decoupled: boolean,
    step: number,
    maxGradNorm: number,
  ): number;
  adamStepTensors(
    params: Float32Array[],
    grads: Float32Array[],
    m: Float32Array,
    v: Float32Array,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    decoupled: boolean,
    step: number,
    maxGradNorm: number,
  ): number;

  // lstm (native/napi/lstm.cc)
  lstmForward(
    x: Float32Array,
    lengths: Uint32Array | null,
    h0: Float32Array | null,
    c0: Float32Array | null,
    weightIh: Float32Array,
    weightHh: Float32Array,
    biasIh: Float32Array | null,
    biasHh: Float32Array | null,
    y: Float32Array,
    hn: Float32Array,
    cn: Float32Array,
    stash: Float32Array,
    batch: number,
    steps: number,
    inDim: number,
    hidden: number,
  ): void;
  lstmBackward(
    x: Float32Array,
    lengths: Uint32Array | null,
    weightIh: Float32Array,
    weightHh: Float32Array,
    stash: Float32Array,
    dy: Float32Array | null,
    dhn: Float32Array | null,
    dcn: Float32Array | null,
    dx: Float32Array | null,
    dh0: Float32Array,
    dc0: Float32Array,
    dWeightIh: Float32Array | null,
    dWeightHh: Float32Array | null,
    dBiasIh: Float32Array | null,
    dBiasHh: Float32Array | null,
    work: Float32Array,
    batch: number,
    steps: number,
    inDim: number,
    hidden: number,
    accumulate: boolean,
  ): void;

  // autoregressive (native/napi/autoregressive.cc)
  autoregressiveMaskWeights(
    weight: Float32Array,
    outDegrees: Uint32Array,
    inDegrees: Uint32Array,
    strict: boolean,
    out: Float32Array,
    outDim: number,
    inDim: number,
  ): void;
  autoregressiveMaskedDenseForward(
    x: Float32Array,
    weight: Float32Array,
    bias: Float32Array | null,
    outDegrees: Uint32Array,
    inDegrees: Uint32Array,
    strict: boolean,
    maskedWeight: Float32Array,
    y: Float32Array,
    batch: number,
    inDim: number,
    outDim: number,
  ): void;
  autoregressiveMaskedDenseBackward(
    x: Float32Array,
    maskedWeight: Float32Array,
    dy: Float32Array,
    outDegrees: Uint32Array,
    inDegrees: Uint32Array,
    strict: boolean,
    dx: Float32Array | null,
    dWeight: Float32Array | null,
    dBias: Float32Array | null,
    batch: number,
    inDim: number,
    outDim: number,
    accumulateDx: boolean,
  ): void;
  autoregressiveIafForward(z: Float32Array, ms: Float32Array, y: Float32Array, logDet: Float32Array, batch: number, dim: number): void;
  autoregressiveIafBackward(
    z: Float32Array,
    ms: Float32Array,
    dy: Float32Array,
    dLogDet: Float32Array,
    dz: Float32Array,
    dms: Float32Array,
    batch: number,
    dim: number,
  ): void;
  autoregressiveIafInverse(y: Float32Array, ms: Float32Array, z: Float32Array, logDet: Float32Array, batch: number, dim: number): void;
  autoregressiveMafForward(x: Float32Array, ms: Float32Array, u: Float32Array, logDet: Float32Array, batch: number, dim: number): void;
  autoregressiveMafBackward(
    x: Float32Array,
    ms: Float32Array,
    du: Float32Array,
    dLogDet: Float32Array,
    dx: Float32Array,
    dms: Float32Array,
    batch: number,
    dim: number,
  ): void;
  autoregressiveMafInverse(u: Float32Array, ms: Float32Array, x: Float32Array, logDet: Float32Array, batch: number, dim: number): void;

  // residual (native/napi/residual.cc); activation is the index in RESIDUAL_ACTIVATIONS; forward, backward and inverse return bad-row counts
  residualNormalize(
    weight: Float32Array,
    u: Float32Array,
    v: Float32Array,
    out: Float32Array,
    sigma: Float32Array,
    rows: number,
    cols: number,
    c: number,
    iterations: number,
  ): void;
  residualNormalizeBackward(
    weight: Float32Array,
    u: Float32Array,
    v: Float32Array,
    sigma: number,
    dOut: Float32Array,
    dWeight: Float32Array,
    rows: number,
    cols: number,
    c: number,
  ): void;
  residualForward(
    x: Float32Array,
    net: Float32Array,
    sizes: Uint32Array,
    activation: number,
    noise: Float32Array | null,
    terms: Float32Array | null,
    p: number,
    exactTerms: number,
    y: Float32Array,
    logDet: Float32Array,
    stash: Float32Array,
    batch: number,
  ): number;
  residualBackward(
    x: Float32Array,
    net: Float32Array,
    sizes: Uint32Array,
    activation: number,
    exact: boolean,
    stash: Float32Array,
    dy: Float32Array,
    dLogDet: Float32Array,
    dx: Float32Array,
    dNet: Float32Array,
    batch: number,
  ): number;
  residualInverse(
    y: Float32Array,
    net: Float32Array,
    sizes: Uint32Array,
    activation: number,
    noise: Float32Array | null,
    terms: Float32Array | null,
    p: number,
    exactTerms: number,
    tol: number,
    maxIterations: number,
    x: Float32Array,
    logDet: Float32Array,
    batch: number,
  ): number;

  // sylvester (native/napi/sylvester.cc); the shape is (variant index, dim, m, layers, householders)
  sylvesterOrthogonalize(
    variant: number,
    dim: number,
    m: number,
    layers: number,
    householders: number,
    sets: number,
    params: Float32Array,
    q: Float32Array,
    maxSteps: number,
    tolerance: number,
  ): number;
  sylvesterOrthogonalizeBackward(
    variant: number,
    dim: number,
    m: number,
    layers: number,
    householders: number,
    sets: number,
    params: Float32Array,
    gradQ: Float32Array,
    gradParams: Float32Array,
    maxSteps: number,
    tolerance: number,
  ): void;
  sylvesterForward(
    variant: number,
    dim: number,
    m: number,
    layers: number,
    householders: number,
    batch: number,
    amortized: boolean,
    x: Float32Array,
    params: Float32Array,
    q: Float32Array,
    y: Float32Array,
    logDet: Float32Array,
    saved: Float32Array | null,
  ): void;
  sylvesterBackward(
    variant: number,
    dim: number,
    m: number,
    layers: number,
    householders: number,
    batch: number,
    amortized: boolean,
    params: Float32Array,
    q: Float32Array,
    saved: Float32Array,
    gradY: Float32Array,
    gradLogDet: Float32Array,
    gradX: Float32Array,
    gradParams: Float32Array,
    gradQ: Float32Array,
  ): void;
  sylvesterInverse(
    variant: number,
    dim: number,
    m: number,
    layers: number,
    householders: number,
    batch: number,
    amortized: boolean,
    y: Float32Array,
    params: Float32Array,
    q: Float32Array,
    x: Float32Array,
    logDet: Float32Array,
    maxIterations: number,
    tolerance: number,
  ): number;

  /** Present only in a build with CUDA (cmake-js, CMakeLists.txt; native/napi/cuda/). */
  cuda?: CudaAddon;
}

/** What the CUDA runtime said about the device (probed once, never throws). */
export interface CudaStatus {
  available: boolean;
  /** Why the cuda backend cannot be used ('' when available). */
  reason: string;
  /** e.g. 'NVIDIA H100 80GB HBM3 (compute capability 9.0)' ('' without a device). */
  device: string;
  /** CUDA runtime and driver versions as 1000·major + 10·minor (driver 0: no driver loaded). */
  runtimeVersion: number;
  driverVersion: number;
}

/** The kernels the cuda bindings provide, with the cpu bindings' names and arguments. */
export type CudaKernelName =
  | 'denseGemm'
  | 'denseForward'
  | 'denseBackward'
  | 'elementwiseForward'
  | 'elementwiseBackward'
  | 'rngNormal'
  | 'rngUniform'
  | 'adamStep'
  | 'gaussianSampleDiag'
  | 'gaussianSampleDiagBackward'
  | 'gaussianLogStandard'
  | 'gaussianLogStandardBackward'
  | 'gaussianKlStandard'
  | 'gaussianKlStandardBackward'
  | 'likelihoodBernoulli'
  | 'likelihoodBernoulliBackward'
  | 'likelihoodGaussian'
  | 'likelihoodGaussianBackward'
  | 'lstmForward'
  | 'lstmBackward'
  | 'planarForward'
  | 'planarBackward'
  | 'planarInverse'
  | 'radialForward'
  | 'radialBackward'
  | 'radialInverse';

/**
 * `addon.cuda` (native/napi/cuda/): each kernel takes host Float32Arrays like
 * its cpu twin, uploads them, runs on the GPU and downloads the outputs
 * before returning. Arguments are checked as by the cpu bindings (same
 * errors); then, without a usable device, every kernel throws an Error with
 * code ERR_BACKEND_UNAVAILABLE and the reason, and a CUDA failure throws one
 * with code ERR_CUDA naming the kernel.
 */
export interface CudaAddon extends Pick<NativeAddon, CudaKernelName> {
  status(): CudaStatus;
  /** Device bytes handed out by the caching allocator and held in it for reuse. */
  memoryStats(): { inUse: number; cached: number };
  /** Returns the cached device memory to the driver. */
  releaseCached(): void;
}

/** Repository/package root: this file is src/backend/native.ts or dist/backend/native.js. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

/** Version of the binding interface this TypeScript expects (native/napi/addon.cc). */
const EXPECTED_ABI = 1;

let cached: { addon: NativeAddon | null; reason: string } | undefined;

function load(): { addon: NativeAddon | null; reason: string } {
  // The addon reads FLOWVAE_NUM_THREADS, FLOWVAE_SIMD and FLOWVAE_CACHE_BYTES as it loads.
  checkEnvironment();
  if (process.env.FLOWVAE_DISABLE_NATIVE === '1') {
    return { addon: null, reason: 'disabled by FLOWVAE_DISABLE_NATIVE=1' };
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    const addon = nodeGypBuild(PACKAGE_ROOT) as NativeAddon;
    if (addon.abiVersion !== EXPECTED_ABI) {
      return {
        addon: null,
        reason: `native addon has binding version ${String(addon.abiVersion)}, expected ${EXPECTED_ABI} (rebuild with "npm run build:native")`,
      };
    }
    return { addon, reason: '' };
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    // node-gyp-build found neither a matching prebuilt binary nor a local build:
    // the install-time source build failed (scripts/install.js) or never ran.
    const hint = message.startsWith('No native build was found')
      ? ' (no prebuilt binary matches this platform and building from source failed or was skipped at install;' +
        ' install a C++17 compiler, make and python3, then run "npm rebuild flowvae")'
      : '';
    return { addon: null, reason: `native addon could not be loaded: ${message}${hint}` };
  }
}

/** The addon, or null when it cannot load (see `nativeUnavailableReason`). */
export function loadNative(): NativeAddon | null {
  cached ??= load();
  return cached.addon;
}

/** Why the addon is unavailable ('' when it loaded). */
export function nativeUnavailableReason(): string {
  cached ??= load();
  return cached.reason;
}
