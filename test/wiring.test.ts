/**
 * Every kernel family in the registry (src/backend/registry.ts) is wired on
 * every backend that claims it: the family's files exist on each level, each
 * backend object has every kernel with the declared arity, and the native
 * addon exports every binding the family names, with the argument count the
 * registry declares. A half-added family fails here with a list of what is
 * missing, one line per gap.
 *
 * The cuda backend object is assembled over a stand-in addon, so its wiring
 * (which families have CUDA wrappers, which fall back to cpu) is checked on
 * every machine; the cuda addon's exports are checked where the build has
 * CUDA support (FLOWVAE_CUDA=1), device or not.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backendByName, backends } from '../src/backend';
import { createCudaBackend } from '../src/backend/cuda';
import { loadNative, type CudaAddon } from '../src/backend/native';
import {
  FALLBACK,
  FAMILY_NAMES,
  KERNEL_FAMILIES,
  assembleBackend,
  bindingName,
  familyFallbacks,
  registerKernels,
  registeredFamilies,
  type Backend,
  type KernelFamily,
} from '../src/backend/registry';
import type { BackendName } from '../src/backend/types';

const root = path.join(__dirname, '..');
const addon = loadNative();
const cpuAvailable = backends()[1].available;

/** Addon exports that are not kernels. */
const ADDON_UTILITIES = new Set(['abiVersion', 'setNumThreads', 'getNumThreads', 'simdLevel', 'lastLevelCacheBytes', 'cuda']);
const CUDA_ADDON_UTILITIES = new Set(['status', 'memoryStats', 'releaseCached']);
/**
 * Bindings that read their arguments without an arity check first (so an
 * empty call fails on the first argument instead): their argument count is
 * not observable from JavaScript. (The backends check every kernel's count
 * on the TypeScript side, so no backend depends on it.)
 */
const BINDINGS_WITHOUT_ARITY_CHECK = new Set(['denseGemm', 'denseForward', 'denseBackward']);

/** The argument count a binding checks, read from its error for an empty call; null without an arity check. */
function bindingArity(fn: unknown): number | null {
  try {
    (fn as () => unknown)();
  } catch (e) {
    const m = /expects (\d+) arguments but received 0$/.exec((e as Error).message);
    return m ? Number(m[1]) : null;
  }
  return null;
}

/** Gaps in one backend object: missing families, missing or extra kernels, wrong arities. */
function backendGaps(backend: Backend, label: string): string[] {
  const gaps: string[] = [];
  for (const family of FAMILY_NAMES) {
    const kernels = (backend as unknown as Record<string, Record<string, unknown> | undefined>)[family];
    if (typeof kernels !== 'object' || kernels === null) {
      gaps.push(`${label}: family "${family}" is missing`);
      continue;
    }
    const declared = KERNEL_FAMILIES[family].kernels as Record<string, number>;
    for (const [name, arity] of Object.entries(declared)) {
      const fn = kernels[name];
      if (typeof fn !== 'function') gaps.push(`${label}: ${family}.${name} is missing`);
      else if (fn.length !== arity) gaps.push(`${label}: ${family}.${name} takes ${fn.length} parameters, the registry declares ${arity}`);
    }
    for (const name of Object.keys(kernels)) {
      if (!(name in declared)) gaps.push(`${label}: ${family}.${name} is not declared in KERNEL_FAMILIES.${family}.kernels`);
    }
  }
  return gaps;
}

/** A cuda addon whose kernels all throw: enough to assemble the cuda backend's wrappers anywhere. */
function standInCudaAddon(): CudaAddon {
  return new Proxy({} as CudaAddon, {
    get: (_target, name) => () => {
      throw new Error(`stand-in cuda addon: ${String(name)} called`);
    },
  });
}

describe('kernel family wiring', () => {
  it('every family has its contract and its reference and cpu files, and a cuda file exactly when registered on cuda', () => {
    const gaps: string[] = [];
    const onCuda = new Set(registeredFamilies('cuda'));
    for (const family of FAMILY_NAMES) {
      for (const dir of ['kernels', 'reference', 'cpu']) {
        const file = `src/backend/${dir}/${family}.ts`;
        if (!existsSync(path.join(root, file))) gaps.push(`${family}: ${file} is missing`);
      }
      const cudaFile = `src/backend/cuda/${family}.ts`;
      if (onCuda.has(family) && !existsSync(path.join(root, cudaFile))) gaps.push(`${family}: registered on cuda but ${cudaFile} is missing`);
      if (!onCuda.has(family) && existsSync(path.join(root, cudaFile))) {
        gaps.push(`${family}: ${cudaFile} exists but the family is not registered on cuda (src/backend/cuda/index.ts)`);
      }
    }
    expect(gaps).toEqual([]);
  });

  it('reference and cpu register every family; every family cuda lacks runs on cpu, with the reason', () => {
    expect(registeredFamilies('reference')).toEqual(FAMILY_NAMES);
    expect(registeredFamilies('cpu')).toEqual(FAMILY_NAMES);
    expect(familyFallbacks('reference')).toEqual([]);
    expect(familyFallbacks('cpu')).toEqual([]);
    expect(FALLBACK).toEqual({ cuda: 'cpu' });
    const lacking = FAMILY_NAMES.filter((f) => !registeredFamilies('cuda').includes(f));
    expect(familyFallbacks('cuda')).toEqual(lacking.map((family) => ({ family, runsOn: 'cpu', reason: 'no cuda kernels yet; runs on the cpu kernels' })));
    // backends() reports the same list.
    expect(backends().find((b) => b.name === 'cuda')!.fallbacks).toEqual(familyFallbacks('cuda'));
  });

  it('the reference backend has every kernel of every family with the declared arity', () => {
    expect(backendGaps(backendByName('reference'), 'reference')).toEqual([]);
  });

  it.skipIf(!cpuAvailable)('the cpu backend has every kernel of every family with the declared arity', () => {
    expect(backendGaps(backendByName('cpu'), 'cpu')).toEqual([]);
  });

  it.skipIf(!cpuAvailable)('the cuda backend (over a stand-in addon) has every kernel; lacking families are the cpu kernels themselves', () => {
    const cpu = backendByName('cpu');
    const cuda = createCudaBackend(standInCudaAddon(), cpu);
    expect(backendGaps(cuda, 'cuda')).toEqual([]);
    for (const family of FAMILY_NAMES) {
      const onCpu = cuda[family] === cpu[family];
      expect(onCpu, `cuda.${family} ${onCpu ? 'is' : 'is not'} the cpu object`).toBe(!registeredFamilies('cuda').includes(family));
    }
  });

  it.skipIf(!addon)('the addon exports every binding of every family, each checking the declared argument count', () => {
    const gaps: string[] = [];
    const named = new Set<string>();
    const withoutArityCheck: string[] = [];
    for (const family of FAMILY_NAMES) {
      for (const [binding, arity] of Object.entries(KERNEL_FAMILIES[family].bindings)) {
        named.add(binding);
        const fn = (addon as unknown as Record<string, unknown>)[binding];
        if (typeof fn !== 'function') {
          gaps.push(`addon: ${binding} (family "${family}") is not exported (native/napi/${family}.cc, native/napi/register.h)`);
          continue;
        }
        const checked = bindingArity(fn);
        if (checked === null) withoutArityCheck.push(binding);
        else if (checked !== arity) gaps.push(`addon: ${binding} checks ${checked} arguments, the registry declares ${arity}`);
      }
    }
    for (const [name, value] of Object.entries(addon!)) {
      if (!ADDON_UTILITIES.has(name) && typeof value === 'function' && !named.has(name)) {
        gaps.push(`addon: ${name} is exported but no family in KERNEL_FAMILIES (src/backend/registry.ts) names it`);
      }
    }
    expect(gaps).toEqual([]);
    expect(new Set(withoutArityCheck)).toEqual(BINDINGS_WITHOUT_ARITY_CHECK);
  });

  it.skipIf(!addon?.cuda)('the cuda addon exports the bindings of exactly the families registered on cuda, with the cpu arities', () => {
    const cuda = addon!.cuda! as unknown as Record<string, unknown>;
    const gaps: string[] = [];
    const expected = new Set<string>();
    for (const family of registeredFamilies('cuda')) {
      const d = KERNEL_FAMILIES[family];
      for (const binding of d.cudaBindings ?? Object.keys(d.bindings)) {
        expected.add(binding);
        if (typeof cuda[binding] !== 'function') {
          gaps.push(`cuda addon: ${binding} (family "${family}") is not exported (native/napi/cuda/)`);
          continue;
        }
        const checked = bindingArity(cuda[binding]);
        if (checked !== bindingArity((addon as unknown as Record<string, unknown>)[binding])) {
          gaps.push(`cuda addon: ${binding} checks ${checked} arguments, the cpu binding a different count`);
        }
      }
    }
    for (const [name, value] of Object.entries(cuda)) {
      if (!CUDA_ADDON_UTILITIES.has(name) && typeof value === 'function' && !expected.has(name)) {
        gaps.push(`cuda addon: ${name} is exported but its family is not registered on cuda (src/backend/cuda/index.ts)`);
      }
    }
    expect(gaps).toEqual([]);
  });

  it('each declared signature names its binding as the arity errors do (family + Kernel)', () => {
    for (const family of FAMILY_NAMES) {
      for (const [kernel, signature] of Object.entries(KERNEL_FAMILIES[family].signatures ?? {})) {
        expect(signature!.binding, `${family}.${kernel}`).toBe(bindingName(family, kernel));
      }
    }
  });

  describe('the registry refuses what would leave a backend half-wired', () => {
    it('an unknown family, and a second registration of the same family', () => {
      expect(() => registerKernels('reference', 'made-up' as KernelFamily, () => ({}) as never)).toThrow(
        'Unknown kernel family "made-up": add it to KERNEL_FAMILIES in src/backend/registry.ts',
      );
      expect(() => registerKernels('reference', 'dense', () => backendByName('reference').dense)).toThrow(
        'Kernel family "dense" is registered twice on backend "reference"',
      );
    });

    it('a backend without a fallback that lacks a family is refused, naming what it lacks', () => {
      // "cuda" assembled without the cpu backend to fall back to.
      const core = { name: 'cuda' as BackendName, dtype: 'float32' as const, alloc: (n: number) => new Float32Array(n), from: Float32Array.from };
      const lacking = familyFallbacks('cuda').map((f) => `"${f.family}"`);
      expect(lacking.length).toBeGreaterThan(0);
      expect(() => assembleBackend(core, standInCudaAddon(), null)).toThrow(
        `Backend "cuda" has no kernels for ${lacking.join(', ')} and no backend to fall back to`,
      );
    });
  });
});
