import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backendByName, backends, getNumThreads, setNumThreads, useBackend } from '../src/backend';
import { loadNative, type CudaKernelName } from '../src/backend/native';
import { CUDA_PENDING_FAMILIES } from '../src/backend/cuda';
import { radialParamSize } from '../src/backend/kernels/radial';
import { KERNEL_FAMILIES, registeredFamilies } from '../src/backend/registry';
import { DiagonalGaussian } from '../src/distributions/diagonal-gaussian';
import { FlowDistribution } from '../src/distributions/flow-distribution';
import { FlowVaeError } from '../src/errors';
import { ActNorm } from '../src/flows/actnorm';
import { ElementwiseAffine } from '../src/flows/elementwise-affine';
import { GlowFlow } from '../src/flows/glow';
import { IAFFlow } from '../src/flows/iaf';
import { InvertibleLinearLU } from '../src/flows/linear-lu';
import { MAFFlow } from '../src/flows/maf';
import { NICEFlow } from '../src/flows/nice';
import { Permutation } from '../src/flows/permutation';
import { PlanarFlow } from '../src/flows/planar';
import { RadialFlow } from '../src/flows/radial';
import { RealNVPFlow } from '../src/flows/realnvp';
import { SplineAutoregressiveFlow, SplineCouplingFlow } from '../src/flows/spline';
import { SylvesterFlow } from '../src/flows/sylvester';
import { VAE } from '../src/vae/vae';
import { hasCpu } from './helpers';

const ROOT = path.resolve(__dirname, '..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');

/** Runs a snippet against src/ in a fresh Node process. */
function runSnippet(code: string, env: Record<string, string>) {
  return spawnSync(TSX, ['-e', code], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
}

describe('backend registry', () => {
  it('lists reference, cpu and cuda with availability and reasons', () => {
    const list = backends();
    expect(list.map((b) => b.name)).toEqual(['reference', 'cpu', 'cuda']);
    expect(list[0]).toMatchObject({ available: true, reason: '', dtype: 'float64' });
    for (const b of list) {
      expect(typeof b.available).toBe('boolean');
      if (!b.available) expect(b.reason.length).toBeGreaterThan(10);
    }
    // A build without CUDA (the default) never reports cuda; the cuda availability tests below cover CUDA builds.
    if (!loadNative()?.cuda) expect(list[2].available).toBe(false);
  });

  it.skipIf(!hasCpu())('reports the cpu threads and SIMD path', () => {
    const cpu = backends()[1];
    expect(cpu.threads).toBeGreaterThanOrEqual(1);
    expect(['scalar', 'avx2', 'avx512']).toContain(cpu.simd);
  });

  it('rejects unknown and unavailable backends with clear errors', () => {
    expect(() => useBackend('gpu' as never)).toThrow(RangeError);
    expect(() => useBackend('gpu' as never)).toThrow('Expected one of "reference", "cpu", "cuda" for "name" but received "gpu" (string)');
    expect(() => useBackend(3 as never)).toThrow(TypeError);
    if (backends()[2].available) return;
    try {
      backendByName('cuda');
      expect.fail('cuda should be unavailable in this build');
    } catch (e) {
      expect(e).toBeInstanceOf(FlowVaeError);
      expect((e as FlowVaeError).code).toBe('ERR_BACKEND_UNAVAILABLE');
      expect((e as FlowVaeError).message).toMatch(/^Backend "cuda" is unavailable: /);
    }
  });

  it('validates setNumThreads', () => {
    expect(() => setNumThreads(0)).toThrow('Expected integer between 1 and 1024 for "n" but received 0 (number)');
    expect(() => setNumThreads(1.5)).toThrow(RangeError);
    expect(() => setNumThreads(NaN)).toThrow(RangeError);
    expect(() => setNumThreads('2' as never)).toThrow(TypeError);
  });

  it.skipIf(!hasCpu())('setNumThreads changes the native thread count', () => {
    const before = getNumThreads();
    try {
      setNumThreads(3);
      expect(getNumThreads()).toBe(3);
      expect(backends()[1].threads).toBe(3);
    } finally {
      setNumThreads(before);
    }
  });

  it('alloc and from give arrays of the backend dtype', () => {
    const ref = backendByName('reference');
    expect(ref.alloc(3)).toBeInstanceOf(Float64Array);
    expect(Array.from(ref.from([1, 2]))).toEqual([1, 2]);
    expect(() => ref.alloc(-1)).toThrow('Expected non-negative integer for "length" but received -1 (number)');
    if (hasCpu()) expect(backendByName('cpu').alloc(2)).toBeInstanceOf(Float32Array);
  });
});

describe('fallback when the native addon cannot load', () => {
  it('runs on the reference backend and says why once on stderr', () => {
    const out = runSnippet(
      `const b = require('./src/backend');
       const first = b.getBackend(); const second = b.getBackend();
       const z = first.alloc(8); first.rng.normal(1, 0, z);
       console.log(JSON.stringify({ name: first.name, same: first === second, finite: z.every(Number.isFinite),
         cpu: b.backends()[1] }));`,
      { FLOWVAE_DISABLE_NATIVE: '1', FLOWVAE_BACKEND: '' },
    );
    expect(out.status, out.stderr).toBe(0);
    const result = JSON.parse(out.stdout.trim().split('\n').pop()!);
    expect(result).toMatchObject({ name: 'reference', same: true, finite: true });
    expect(result.cpu).toMatchObject({ available: false, reason: 'disabled by FLOWVAE_DISABLE_NATIVE=1' });
    const notices = out.stderr.split('\n').filter((l) => l.startsWith('flowvae:'));
    expect(notices).toEqual(['flowvae: using the reference backend (pure TypeScript): disabled by FLOWVAE_DISABLE_NATIVE=1']);
  });

  it('FLOWVAE_BACKEND selects the backend; a bad value is a clear error', () => {
    const ok = runSnippet(`console.log(require('./src/backend').getBackend().name)`, { FLOWVAE_BACKEND: 'reference' });
    expect(ok.stdout.trim()).toBe('reference');
    const bad = runSnippet(`require('./src/backend').getBackend()`, { FLOWVAE_BACKEND: 'tpu' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('Expected one of "reference", "cpu", "cuda" for the environment variable FLOWVAE_BACKEND but received "tpu"');
  });

  it('every environment variable flowvae reads is checked, naming the variable (the addon would ignore a bad value)', () => {
    const cases: [string, string, string][] = [
      ['FLOWVAE_NUM_THREADS', 'abc', 'integer from 1 to 1024'],
      ['FLOWVAE_NUM_THREADS', '0', 'integer from 1 to 1024'],
      ['FLOWVAE_SIMD', 'avx9', 'one of "scalar", "avx2", "avx512" (a cap on the vector instructions used)'],
      ['FLOWVAE_CACHE_BYTES', '-5', 'positive integer (bytes)'],
      ['FLOWVAE_DISABLE_NATIVE', 'yes', '"1" or "0"'],
    ];
    for (const [name, value, what] of cases) {
      const r = runSnippet(`require('./src/backend').backends()`, { [name]: value, FLOWVAE_BACKEND: '' });
      expect(r.status, `${name}=${value}`).not.toBe(0);
      expect(r.stderr).toContain(`Expected ${what} for the environment variable ${name} but received "${value}"`);
    }
    const fine = runSnippet(`console.log(require('./src/backend').backends()[1].simd)`, {
      FLOWVAE_SIMD: 'scalar',
      FLOWVAE_NUM_THREADS: '1',
      FLOWVAE_BACKEND: '',
    });
    expect(fine.status, fine.stderr).toBe(0);
  });
});

describe('the backend option', () => {
  // Every public constructor takes the backend as a name or as a Backend object.
  const makers: [string, (backend: never) => { backend: unknown }][] = [
    ['DiagonalGaussian', (backend) => new DiagonalGaussian({ dim: 2, backend })],
    ['PlanarFlow', (backend) => new PlanarFlow({ dim: 2, backend })],
    ['RadialFlow', (backend) => new RadialFlow({ dim: 2, backend })],
    ['SylvesterFlow', (backend) => new SylvesterFlow({ dim: 2, variant: 'triangular', backend })],
    ['IAFFlow', (backend) => new IAFFlow({ dim: 2, backend })],
    ['MAFFlow', (backend) => new MAFFlow({ dim: 2, backend })],
    ['NICEFlow', (backend) => new NICEFlow({ dim: 2, backend })],
    ['RealNVPFlow', (backend) => new RealNVPFlow({ dim: 2, backend })],
    ['SplineCouplingFlow', (backend) => new SplineCouplingFlow({ dim: 2, backend })],
    ['SplineAutoregressiveFlow', (backend) => new SplineAutoregressiveFlow({ dim: 2, backend })],
    ['GlowFlow', (backend) => new GlowFlow({ dim: 2, backend })],
    ['ActNorm', (backend) => new ActNorm({ dim: 2, backend })],
    ['ElementwiseAffine', (backend) => new ElementwiseAffine({ dim: 2, backend })],
    ['InvertibleLinearLU', (backend) => new InvertibleLinearLU({ dim: 2, backend })],
    ['Permutation', (backend) => new Permutation({ dim: 2, backend })],
    ['FlowDistribution.create', (backend) => FlowDistribution.create({ dim: 2, flow: 'planar', backend })],
    ['VAE', (backend) => new VAE({ inputDim: 2, latentDim: 1, encoder: { hidden: [2] }, decoder: { hidden: [2] }, backend })],
  ];

  it.each(makers)('%s takes "reference" or the backend object, and refuses anything else by name', (_, make) => {
    const reference = backendByName('reference');
    expect(make('reference' as never).backend).toBe(reference);
    expect(make(reference as never).backend).toBe(reference);
    expect(() => make('gpu' as never)).toThrow('Expected one of "reference", "cpu", "cuda" for "backend" but received "gpu" (string)');
    expect(() => make({} as never)).toThrow('Expected backend name or Backend for "backend" but received object');
  });
});

// ---- the cuda backend's availability (folded from the former test/cuda.test.ts) ----
//
// Runs everywhere: backends() reports cuda with a reason when it cannot be
// used, and a CUDA build without a usable device checks arguments exactly as
// the cpu build does before saying why it cannot run. The cross-checks of
// each family with CUDA kernels are in that family's test file
// (describeBackends(['cuda'], …)), skipped with the reason where no device is
// present (see scripts/gpu-check.sh to run them).

const cudaInfo = backends().find((b) => b.name === 'cuda')!;
const addon = loadNative();

/** Every cuda binding: those of the families registered on cuda (src/backend/cuda/index.ts). */
const CUDA_KERNELS = registeredFamilies('cuda').flatMap((f) => KERNEL_FAMILIES[f].cudaBindings ?? Object.keys(KERNEL_FAMILIES[f].bindings)) as CudaKernelName[];

describe(`cuda availability (${cudaInfo.available ? `available: ${cudaInfo.device}` : `unavailable: ${cudaInfo.reason}`})`, () => {
  it('backends() reports cuda as usable with its device, or not with the reason', () => {
    if (cudaInfo.available) {
      expect(cudaInfo.reason).toBe('');
      expect(cudaInfo.device).toMatch(/compute capability \d+\.\d+/);
      expect(backendByName('cuda').name).toBe('cuda');
      return;
    }
    expect(cudaInfo.reason.length).toBeGreaterThan(10);
    if (addon && !addon.cuda) {
      expect(cudaInfo.reason).toBe('this build has no CUDA support (build with cmake-js and FLOWVAE_CUDA=1)');
    }
    let error: unknown;
    try {
      backendByName('cuda');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FlowVaeError);
    expect((error as FlowVaeError).code).toBe('ERR_BACKEND_UNAVAILABLE');
    expect((error as FlowVaeError).message).toBe(`Backend "cuda" is unavailable: ${cudaInfo.reason}`);
  });

  it.skipIf(!addon?.cuda || cudaInfo.available)('a CUDA build without a usable device checks arguments like the cpu build, then says why it cannot run', () => {
    const cuda = addon!.cuda!;
    for (const name of CUDA_KERNELS) expect(typeof cuda[name], name).toBe('function');
    const status = cuda.status();
    expect(status.available).toBe(false);
    expect(status.reason).toBe(cudaInfo.reason);
    // The same TypeError/RangeError, code and text as the cpu binding.
    const call = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return e as Error & { code?: string };
      }
      throw new Error('expected a throw');
    };
    const x64 = new Float64Array(6);
    const args = (x: unknown) => [x, new Float32Array(5), new Float32Array(6), new Float32Array(3), null, new Float32Array(3), 3, 2, 1, false] as const;
    const cpuError = call(() => (addon!.planarForward as (...a: unknown[]) => unknown)(...args(x64)));
    const cudaError = call(() => (cuda.planarForward as (...a: unknown[]) => unknown)(...args(x64)));
    expect(cudaError.constructor).toBe(cpuError.constructor);
    expect([cudaError.code, cudaError.message]).toEqual([cpuError.code, cpuError.message]);
    const shortOut = call(() => cuda.rngNormal(1, -1, new Float32Array(4)));
    expect(shortOut).toBeInstanceOf(RangeError);
    expect(shortOut.message).toBe('Expected integer in [0, 2^53) for "offset" but received -1 (number)');
    // A valid call reaches the device check.
    const unavailable = call(() => cuda.rngNormal(1, 0, new Float32Array(4)));
    expect(unavailable.code).toBe('ERR_BACKEND_UNAVAILABLE');
    expect(unavailable.message).toBe(`Backend "cuda" is unavailable: ${cudaInfo.reason}`);
    expect(cuda.memoryStats()).toEqual({ inUse: 0, cached: 0 });
  });

  it.skipIf(!addon?.cuda || cudaInfo.available)('every cuda binding refuses bad arguments with the cpu binding’s error (kind, code, text)', () => {
    const cuda = addon!.cuda!;
    const errorOf = (fn: unknown, args: unknown[]): (Error & { code?: string }) | undefined => {
      try {
        (fn as (...a: unknown[]) => unknown)(...args);
      } catch (e) {
        return e as Error & { code?: string };
      }
      return undefined;
    };
    const expectSameError = (name: CudaKernelName, args: unknown[], label: string) => {
      const cpuError = errorOf(addon![name], args);
      const cudaError = errorOf(cuda[name], args);
      expect(cpuError, `${name} ${label}: the cpu binding must refuse it`).toBeDefined();
      expect(cudaError?.constructor, `${name} ${label}`).toBe(cpuError!.constructor);
      expect([cudaError?.code, cudaError?.message], `${name} ${label}`).toEqual([cpuError!.code, cpuError!.message]);
      expect(cudaError?.code, `${name} ${label}`).not.toBe('ERR_BACKEND_UNAVAILABLE');
    };
    // Too few arguments, and every argument of the wrong kind or value (each
    // binding refuses these before reaching a kernel).
    const fills: [string, unknown][] = [
      ['0', 0],
      ['1', 1],
      ['-1', -1],
      ['Float32Array(1)', new Float32Array(1)],
      ['Float64Array(2)', new Float64Array(2)],
    ];
    for (const name of CUDA_KERNELS) {
      expectSameError(name, [], 'with no arguments');
      for (const [label, value] of fills) expectSameError(name, new Array(13).fill(value), `with every argument ${label}`);
    }
    // Outputs sharing memory with an input, past every size and length check.
    const x = new Float32Array(4);
    expectSameError('denseGemm', [false, false, 2, 2, 2, 1, x, new Float32Array(4), 0, x], 'c = a');
    expectSameError('denseForward', [x, new Float32Array(4), null, x, 2, 2, 2], 'y = x');
    expectSameError('denseBackward', [x, new Float32Array(4), new Float32Array(4), null, null, x.subarray(2), 2, 2, 2, false], 'dBias inside x');
    expectSameError('adamStep', [x, new Float32Array(4), new Float32Array(4), x, 4, 1e-3, 0.9, 0.999, 1e-8, 0, false, 1, 0], 'v = params');
    const y = new Float32Array(6);
    expectSameError('planarForward', [new Float32Array(6), new Float32Array(5), y, new Float32Array(3), null, y.subarray(3), 3, 2, 1, false], 'stash inside y');
    expectSameError('radialInverse', [y, new Float32Array(radialParamSize(2)), y, new Float32Array(3), 3, 2, 1, false], 'x = y');
  });
});

// Families whose kernels still run on the cpu inside the cuda backend.
describe.skip(`cuda: ${CUDA_PENDING_FAMILIES.join(', ')} have no CUDA kernels yet (the cuda backend runs them on the cpu kernels)`, () => {
  for (const family of CUDA_PENDING_FAMILIES) it(`${family}: covered by the cpu cross-checks in test/${family}.test.ts`, () => {});
});
