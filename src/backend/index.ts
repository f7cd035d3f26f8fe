/**
 * Backend registry: which backends exist here, which one is in use, and the
 * native thread count. The default is `cpu` when the native addon loads and
 * `reference` otherwise (with a one-time notice on stderr saying why).
 */
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import type { Backend } from './backend';
import { createCpuBackend } from './cpu';
import { createCudaBackend } from './cuda';
import { loadNative, nativeUnavailableReason } from './native';
import { checkEnvironment } from './environment';
import { referenceBackend } from './reference';
import { familyFallbacks, type FamilyFallback } from './registry';
import { BACKEND_NAMES, MAX_THREADS, type BackendName } from './types';

export interface BackendInfo {
  name: BackendName;
  available: boolean;
  /** Why the backend cannot be used ('' when available). */
  reason: string;
  /** Element type of the backend's arrays. */
  dtype: 'float32' | 'float64';
  /** Native threads (cpu) or 1. */
  threads: number;
  /** SIMD path the cpu kernels take on this machine (cpu only). */
  simd?: string;
  /**
   * Last-level cache size in bytes the cpu kernels assume (cpu only): detected,
   * or FLOWVAE_CACHE_BYTES. Amortized flow gradients larger than it are
   * written with streaming stores.
   */
  cacheBytes?: number;
  /** The GPU in use (cuda only, when available). */
  device?: string;
  /**
   * Kernel families this backend has no kernels for, each with the backend
   * that runs it instead and why (today: cuda's families without CUDA
   * kernels, which run on cpu). Empty for a complete backend.
   */
  fallbacks: FamilyFallback[];
}

let cpuBackend: Backend | null | undefined;
let cudaBackend: Backend | null | undefined;
let current: Backend | undefined;
let noticeShown = false;

function cpu(): Backend | null {
  if (cpuBackend === undefined) {
    const addon = loadNative();
    cpuBackend = addon ? createCpuBackend(addon) : null;
  }
  return cpuBackend;
}

/** Why the cuda backend is unavailable ('' when it is available). */
function cudaReason(): string {
  const addon = loadNative();
  if (!addon) return `the native addon is unavailable (${nativeUnavailableReason()})`;
  if (!addon.cuda) return 'this build has no CUDA support (build with cmake-js and FLOWVAE_CUDA=1)';
  return addon.cuda.status().reason;
}

function cuda(): Backend | null {
  if (cudaBackend === undefined) {
    const addon = loadNative();
    const native = cpu();
    cudaBackend = addon?.cuda?.status().available && native ? createCudaBackend(addon.cuda, native) : null;
  }
  return cudaBackend;
}

/** Every backend with its availability and, when unavailable, the reason. */
export function backends(): BackendInfo[] {
  const addon = loadNative();
  return [
    { name: 'reference', available: true, reason: '', dtype: 'float64', threads: 1, fallbacks: familyFallbacks('reference') },
    {
      name: 'cpu',
      available: cpu() !== null,
      reason: cpu() ? '' : nativeUnavailableReason(),
      dtype: 'float32',
      threads: addon ? addon.getNumThreads() : 0,
      ...(addon ? { simd: addon.simdLevel(), cacheBytes: addon.lastLevelCacheBytes() } : {}),
      fallbacks: familyFallbacks('cpu'),
    },
    {
      name: 'cuda',
      available: cuda() !== null,
      reason: cuda() ? '' : cudaReason(),
      dtype: 'float32',
      threads: 0,
      ...(cuda() && addon?.cuda ? { device: addon.cuda.status().device } : {}),
      fallbacks: familyFallbacks('cuda'),
    },
  ];
}

/** The backend with this name; throws if it is unknown or unavailable here. */
export function backendByName(name: BackendName): Backend {
  if (typeof name !== 'string') throw typeError(expected('backend name', 'name', name));
  if (!BACKEND_NAMES.includes(name)) {
    throw rangeError(expected(`one of ${BACKEND_NAMES.map((n) => `"${n}"`).join(', ')}`, 'name', name));
  }
  if (name === 'reference') return referenceBackend;
  if (name === 'cpu') {
    const b = cpu();
    if (!b) throw new FlowVaeError('ERR_BACKEND_UNAVAILABLE', `Backend "cpu" is unavailable: ${nativeUnavailableReason()}`);
    return b;
  }
  const b = cuda();
  if (!b) throw new FlowVaeError('ERR_BACKEND_UNAVAILABLE', `Backend "cuda" is unavailable: ${cudaReason()}`);
  return b;
}

/**
 * The backend an option names, as every constructor takes it: a name
 * ('reference', 'cpu', 'cuda'), a Backend object, or undefined for the
 * current backend (getBackend()).
 */
export function resolveBackend(value: unknown, name = 'backend'): Backend {
  if (value === undefined) return getBackend();
  if (typeof value === 'string') {
    if (!BACKEND_NAMES.includes(value as BackendName)) throw rangeError(expected(`one of ${BACKEND_NAMES.map((n) => `"${n}"`).join(', ')}`, name, value));
    return backendByName(value as BackendName);
  }
  const ok = typeof value === 'object' && value !== null && typeof (value as Backend).alloc === 'function' && 'dense' in value;
  if (!ok) throw typeError(expected('backend name or Backend', name, value));
  return value as Backend;
}

/** Selects the backend used by modules created from now on without an explicit backend. */
export function useBackend(name: BackendName): Backend {
  current = backendByName(name);
  return current;
}

/** The backend in use: set by useBackend, else FLOWVAE_BACKEND, else cpu when available, else reference. */
export function getBackend(): Backend {
  if (current) return current;
  checkEnvironment();
  const fromEnv = process.env.FLOWVAE_BACKEND;
  if (fromEnv) {
    current = backendByName(fromEnv as BackendName);
    return current;
  }
  const native = cpu();
  if (native) {
    current = native;
  } else {
    if (!noticeShown) {
      noticeShown = true;
      process.stderr.write(`flowvae: using the reference backend (pure TypeScript): ${nativeUnavailableReason()}\n`);
    }
    current = referenceBackend;
  }
  return current;
}

/** Sets the number of native threads (also settable with FLOWVAE_NUM_THREADS). */
export function setNumThreads(n: number): void {
  if (typeof n !== 'number') throw typeError(expected(`integer between 1 and ${MAX_THREADS}`, 'n', n));
  if (!Number.isInteger(n) || n < 1 || n > MAX_THREADS) throw rangeError(expected(`integer between 1 and ${MAX_THREADS}`, 'n', n));
  loadNative()?.setNumThreads(n);
}

/** Native threads in use (1 when the addon is unavailable). */
export function getNumThreads(): number {
  return loadNative()?.getNumThreads() ?? 1;
}

export type { Backend } from './backend';
export type { FamilyFallback, KernelFamily } from './registry';
export type { BackendName, DType, FloatArray } from './types';
