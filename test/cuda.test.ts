/**
 * The cuda backend (native/cuda/, native/napi/cuda/, src/backend/cuda/).
 *
 * - Availability (runs everywhere): backends() reports cuda with a reason
 *   when it cannot be used, and a CUDA build without a usable device checks
 *   arguments exactly as the cpu build does before saying why it cannot run.
 * - Cross-checks (only where backends() reports cuda available: a CUDA build,
 *   `FLOWVAE_CUDA=1 npx cmake-js compile`, on a machine with a GPU; see
 *   scripts/gpu-check.sh). Elsewhere they are skipped and the suite title
 *   says why. Every family with CUDA kernels is compared with the float64
 *   reference at awkward sizes, including rows past the in-register limit
 *   (dim > 256) and batch sums split over many launches; the rng streams and
 *   the unclipped Adam update must equal the cpu's bit for bit; a short VAE
 *   training run must follow the reference's.
 *
 * Tolerances are the cpu cross-checks' (stated in the family's test file and
 * repeated here): cuda is float32 with float64 row sums like the cpu, and the
 * bounds already allow any summation order, which is what the GPU changes.
 * The transcendental activations are evaluated in float64 on the GPU, so
 * they sit well inside the cpu's 2.5-ulp bound.
 *
 * Families without CUDA kernels yet (CUDA_PENDING_FAMILIES) run on the cpu
 * kernels inside the cuda backend; their cross-checks are the cpu ones and
 * are listed below as skipped, not repeated.
 */
import { describe, expect, it } from 'vitest';
import { backendByName, backends } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import { CUDA_PENDING_FAMILIES } from '../src/backend/cuda';
import { ACTIVATIONS, type Activation } from '../src/backend/kernels/elementwise';
import type { AdamStepOptions } from '../src/backend/kernels/adam';
import { planarParamSize } from '../src/backend/kernels/planar';
import { radialParamSize } from '../src/backend/kernels/radial';
import { type CudaKernelName, loadNative } from '../src/backend/native';
import { FlowVaeError } from '../src/errors';
import type { VAEOptions } from '../src/vae/vae';
import { VAE } from '../src/vae/vae';
import { crossCheck, runStack, shapeName, stackData, type FamilyUnderTest, type Shape } from './flow-stack-helpers';
import { asFloat32Values, describeBackends, expectClose, expectSameBits, randomArray, randomNormal } from './helpers';
import { CASES as LSTM_CASES, compareLstm } from './lstm-cases';

// Small scratch for the shared flow-stack gradients, so that the larger
// batches below run in several launches (native/cuda/common.cuh). Read by the
// addon when it first needs it, after this line.
process.env.FLOWVAE_CUDA_SCRATCH_FLOATS = String(4096);

const reference = backendByName('reference');
const cudaInfo = backends().find((b) => b.name === 'cuda')!;
const addon = loadNative();

const CUDA_KERNELS: CudaKernelName[] = [
  'denseGemm',
  'denseForward',
  'denseBackward',
  'elementwiseForward',
  'elementwiseBackward',
  'rngNormal',
  'rngUniform',
  'adamStep',
  'gaussianSampleDiag',
  'gaussianSampleDiagBackward',
  'gaussianLogStandard',
  'gaussianLogStandardBackward',
  'gaussianKlStandard',
  'gaussianKlStandardBackward',
  'likelihoodBernoulli',
  'likelihoodBernoulliBackward',
  'likelihoodGaussian',
  'likelihoodGaussianBackward',
  'lstmForward',
  'lstmBackward',
  'planarForward',
  'planarBackward',
  'planarInverse',
  'radialForward',
  'radialBackward',
  'radialInverse',
];

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

  it.skipIf(!addon?.cuda || cudaInfo.available)(
    'a CUDA build without a usable device checks arguments like the cpu build, then says why it cannot run',
    () => {
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
    },
  );

  it.skipIf(!addon?.cuda || cudaInfo.available)(
    'every cuda binding refuses bad arguments with the cpu binding’s error (kind, code, text)',
    () => {
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
      const fills: [string, unknown][] = [['0', 0], ['1', 1], ['-1', -1], ['Float32Array(1)', new Float32Array(1)], ['Float64Array(2)', new Float64Array(2)]];
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
    },
  );
});

// Families whose kernels still run on the cpu inside the cuda backend.
describe.skip(`cuda: ${CUDA_PENDING_FAMILIES.join(', ')} have no CUDA kernels yet (the cuda backend runs them on the cpu kernels)`, () => {
  for (const family of CUDA_PENDING_FAMILIES) it(`${family}: covered by the cpu cross-checks in test/${family}.test.ts`, () => {});
});

const f32 = (a: ArrayLike<number>): Float32Array => Float32Array.from(a);
const f64 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a);
const abs = (a: ArrayLike<number>): Float64Array => Float64Array.from(a, Math.abs);
const data = (n: number, seed: number): Float64Array => asFloat32Values(randomArray(n, seed));

/**
 * |actual − expected| ≤ (terms + 3)·2⁻²⁴·magnitude elementwise: the float32
 * inner-product bound of test/dense.test.ts (Higham §3.1, any order, FMA or
 * not), magnitude = |alpha|·Σ|a b| + |beta·c|.
 */
function expectWithinDotBound(actual: ArrayLike<number>, expected: ArrayLike<number>, magnitude: ArrayLike<number>, terms: number, label: string): void {
  expect(actual.length, `${label} length`).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    const bound = (terms + 3) * 2 ** -24 * magnitude[i] + 1.2e-38;
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= bound)) expect.fail(`${label}: element ${i} is ${actual[i]} but expected ${expected[i]} (bound ${bound}; ${actual.length} elements)`);
  }
}

describeBackends(['cuda'], 'cuda vs reference', (cuda: Backend) => {
  // (A skipped suite is still collected, with the reference backend: no cpu needed then.)
  const cpu = cuda.name === 'cuda' ? backendByName('cpu') : reference;

  describe('rng: the cpu and reference streams bit for bit', () => {
    it.each([
      [0, 0, 1],
      [1, 3, 7],
      [17, 2, 33],
      [2 ** 40 + 5, 2 ** 33 + 1, 257],
      [9007199254740991, 123, 1000],
      // Crosses block 2^32 (the counter's high word).
      [77, 4 * 2 ** 32 - 6, 20],
      [5, 0, 300_001],
    ])('seed %d offset %d n %d', (seed, offset, n) => {
      for (const kind of ['normal', 'uniform'] as const) {
        const ref = new Float64Array(n);
        reference.rng[kind](seed, offset, ref);
        const got = new Float32Array(n);
        cuda.rng[kind](seed, offset, got);
        expectSameBits(got, Float32Array.from(ref), `${kind} vs reference`);
        const onCpu = new Float32Array(n);
        cpu.rng[kind](seed, offset, onCpu);
        expectSameBits(got, onCpu, `${kind} vs cpu`);
      }
    });
  });

  describe('dense', () => {
    // (m, n, k): empty, 1, around the 64×64 tile and the 16-deep k step, and several tiles.
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [7, 33, 257],
      [63, 65, 15],
      [64, 64, 16],
      [65, 130, 17],
      [129, 7, 300],
      [3, 2100, 5],
      [0, 5, 3],
      [4, 0, 3],
      [4, 5, 0],
    ];
    const scalings = [
      { alpha: 1, beta: 0, nanC: true },
      { alpha: -0.75, beta: 1.5, nanC: false },
      { alpha: 0, beta: 2, nanC: false },
    ];
    let seed = 1;
    for (const [m, n, k] of shapes) {
      for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
        it(`gemm ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} m=${m} n=${n} k=${k}`, () => {
          for (const { alpha, beta, nanC } of scalings) {
            const a = data(m * k, seed++);
            const b = data(k * n, seed++);
            const c0 = nanC ? new Float64Array(m * n).fill(NaN) : data(m * n, seed++);
            const got = f32(c0);
            cuda.dense.gemm(transA, transB, m, n, k, alpha, f32(a), f32(b), beta, got);
            const want = f64(c0);
            reference.dense.gemm(transA, transB, m, n, k, alpha, a, b, beta, want);
            const mag = nanC ? new Float64Array(m * n) : abs(c0);
            reference.dense.gemm(transA, transB, m, n, k, Math.abs(alpha), abs(a), abs(b), Math.abs(beta), mag);
            expectWithinDotBound(got, want, mag, k, `alpha=${alpha} beta=${beta}`);
          }
        });
      }
    }

    const layers: [number, number, number][] = [
      [1, 1, 1],
      [7, 33, 1],
      [17, 257, 15],
      [100, 784, 300],
      [4099, 9, 5],
      [0, 3, 4],
      [3, 0, 4],
    ];
    for (const [batch, inDim, outDim] of layers) {
      it(`forward and backward batch=${batch} in=${inDim} out=${outDim}`, () => {
        const x = data(batch * inDim, 11);
        const w = data(outDim * inDim, 12);
        const bias = data(outDim, 13);
        for (const withBias of [true, false]) {
          const y = new Float32Array(batch * outDim).fill(NaN);
          cuda.dense.forward(f32(x), f32(w), withBias ? f32(bias) : null, y, batch, inDim, outDim);
          const yRef = new Float64Array(batch * outDim);
          reference.dense.forward(x, w, withBias ? bias : null, yRef, batch, inDim, outDim);
          const mag = new Float64Array(batch * outDim);
          reference.dense.forward(abs(x), abs(w), withBias ? abs(bias) : null, mag, batch, inDim, outDim);
          expectWithinDotBound(y, yRef, mag, inDim, `y ${withBias ? 'with' : 'without'} bias`);
        }
        const dy = data(batch * outDim, 23);
        for (const accumulate of [false, true]) {
          const dw0 = accumulate ? data(outDim * inDim, 24) : new Float64Array(outDim * inDim).fill(NaN);
          const db0 = accumulate ? data(outDim, 25) : new Float64Array(outDim).fill(NaN);
          const [dx, dw, db] = [new Float32Array(batch * inDim).fill(NaN), f32(dw0), f32(db0)];
          cuda.dense.backward(f32(x), f32(w), f32(dy), dx, dw, db, batch, inDim, outDim, accumulate);
          const [dxR, dwR, dbR] = [new Float64Array(batch * inDim), f64(dw0), f64(db0)];
          reference.dense.backward(x, w, dy, dxR, dwR, dbR, batch, inDim, outDim, accumulate);
          const clean = (a: Float64Array) => (accumulate ? abs(a) : new Float64Array(a.length));
          const [dxM, dwM, dbM] = [new Float64Array(batch * inDim), clean(dw0), clean(db0)];
          reference.dense.backward(abs(x), abs(w), abs(dy), dxM, dwM, dbM, batch, inDim, outDim, accumulate);
          expectWithinDotBound(dx, dxR, dxM, outDim, `dx accumulate=${accumulate}`);
          expectWithinDotBound(dw, dwR, dwM, batch, `dWeight accumulate=${accumulate}`);
          expectWithinDotBound(db, dbR, dbM, batch, `dBias accumulate=${accumulate}`);
          // Null outputs are skipped, the others still computed.
          const dbAlone = new Float32Array(outDim).fill(NaN);
          cuda.dense.backward(f32(x), f32(w), f32(dy), null, null, dbAlone, batch, inDim, outDim, false);
          const [dbAloneR, dbAloneM] = [new Float64Array(outDim), new Float64Array(outDim)];
          reference.dense.backward(x, w, dy, null, null, dbAloneR, batch, inDim, outDim, false);
          reference.dense.backward(abs(x), abs(w), abs(dy), null, null, dbAloneM, batch, inDim, outDim, false);
          expectWithinDotBound(dbAlone, dbAloneR, dbAloneM, batch, 'dBias alone');
        }
      });
    }
  });

  describe('elementwise', () => {
    // test/elementwise.test.ts: within 2.5 float32 ulps (rtol 3e-7) or 3
    // subnormal steps; backward one or two roundings more (rtol 5e-7), and
    // from the forward output y (tanh, sigmoid) y's error times |dy| ≤ 1 (atol 4e-7).
    const forwardTol = { atol: 4.2e-45, rtol: 3e-7 };
    const backwardTol = (kind: Activation) =>
      kind === 'tanh' || kind === 'sigmoid' ? { atol: 4e-7, rtol: 5e-7 } : { atol: 4.2e-45, rtol: 5e-7 };
    const special = [-80, 80, -1e4, 1e4, 0, -0, Math.fround(1e-40), -Math.fround(1e-40), 88.7, -88.7, 100, -100, 0.625, -0.3466];
    const inputs = (n: number, seed: number) => {
      const x = randomNormal(n, seed, 4);
      for (let i = 0, k = 0; i < n; i += 5, k++) x[i] = special[k % special.length];
      return asFloat32Values(x);
    };
    for (const n of [1, 7, 33, 257, 100003]) {
      it.each(ACTIVATIONS)(`%s at n = ${n}`, (kind) => {
        const alpha = 0.3;
        const x = inputs(n, n);
        const dy = asFloat32Values(randomArray(n, n + 1));
        const yRef = new Float64Array(n);
        reference.elementwise.forward(kind, x, yRef, n, alpha);
        const y = new Float32Array(n);
        cuda.elementwise.forward(kind, f32(x), y, n, alpha);
        expectClose(y, yRef, forwardTol, `${kind} forward`);
        const dxRef = new Float64Array(n);
        reference.elementwise.backward(kind, x, yRef, dy, dxRef, n, alpha);
        const dx = new Float32Array(n);
        cuda.elementwise.backward(kind, f32(x), y, f32(dy), dx, n, alpha);
        expectClose(dx, dxRef, backwardTol(kind), `${kind} backward`);
        // In place (y = x, dx = dy) gives the same values.
        const inPlace = f32(x);
        cuda.elementwise.forward(kind, inPlace, inPlace, n, alpha);
        expectSameBits(inPlace, y, `${kind} forward in place`);
      });
    }
  });

  describe('adam', () => {
    const base: AdamStepOptions = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false, step: 1, maxGradNorm: 0 };
    const configs: [string, Partial<AdamStepOptions>][] = [
      ['adam', {}],
      ['adam + L2 decay', { weightDecay: 0.1 }],
      ['adamw', { weightDecay: 0.5, decoupled: true, beta1: 0.5, beta2: 0.9, eps: 1e-3 }],
      ['adam + clipping', { weightDecay: 0.1, maxGradNorm: 0.3 }],
      ['adamw + clipping', { lr: 3e-3, weightDecay: 0.2, decoupled: true, maxGradNorm: 1 }],
    ];
    for (const n of [1, 33, 8193, 100003]) {
      it.each(configs)(`%s, 20 steps at n = ${n}`, (_label, config) => {
        const p0 = asFloat32Values(randomArray(n, n, -1.5, 1.5));
        const [pR, mR, vR] = [f64(p0), new Float64Array(n), new Float64Array(n)];
        const [pG, mG, vG] = [f32(p0), new Float32Array(n), new Float32Array(n)];
        const [pC, mC, vC] = [f32(p0), new Float32Array(n), new Float32Array(n)];
        for (let t = 1; t <= 20; t++) {
          const g = asFloat32Values(randomArray(n, 1000 * t + n, -2, 2));
          const o = { ...base, ...config, step: t };
          const normR = reference.adam.step(pR, g, mR, vR, n, o);
          const normG = cuda.adam.step(pG, f32(g), mG, vG, n, o);
          cpu.adam.step(pC, f32(g), mC, vC, n, o);
          // Exact squares summed in float64 in different orders: ≤ n·2⁻⁵³ relative.
          expect(Math.abs(normG - normR)).toBeLessThanOrEqual(1e-11 * normR);
        }
        // test/adam.test.ts: float32 state, about two roundings per step and quantity.
        expectClose(pG, pR, { atol: 2.5e-6, rtol: 2.5e-6 }, 'params');
        expectClose(mG, mR, { atol: 5e-7, rtol: 2.5e-6 }, 'm');
        expectClose(vG, vR, { atol: 1e-9, rtol: 2.5e-6 }, 'v');
        if (!config.maxGradNorm) {
          // The cpu's float32 operations in the cpu's order, without FMA: the same bits.
          expectSameBits(pG, pC, 'params vs cpu');
          expectSameBits(mG, mC, 'm vs cpu');
          expectSameBits(vG, vC, 'v vs cpu');
        }
      });
    }
  });

  describe('gaussian and likelihood', () => {
    it.each([
      [1, 1],
      [1, 784],
      [7, 33],
      [100, 784],
      [257, 3],
      [4099, 2],
    ])('batch %d dim %d', (batch, dim) => {
      const n = batch * dim;
      const f = f32;
      const mu = asFloat32Values(randomArray(n, 31, -3, 3));
      const lv = asFloat32Values(randomArray(n, 32, -4, 4));
      const eps = asFloat32Values(randomArray(n, 33, -3, 3));
      const g = asFloat32Values(randomArray(n, 34));
      const gr = asFloat32Values(randomArray(batch, 35));
      // test/gaussian.test.ts: elements ~1e-7 relative (1e-5 leaves room for exp); row sums
      // in float64 on both sides, 1e-5 relative to the row's scale.
      const rowTol = { atol: 1e-5 * dim, rtol: 1e-5 };
      const elTol = { atol: 1e-5, rtol: 1e-5 };
      const [zR, qR, z, q] = [new Float64Array(n), new Float64Array(batch), new Float32Array(n), new Float32Array(batch)];
      reference.gaussian.sampleDiag(mu, lv, eps, zR, qR, batch, dim);
      cuda.gaussian.sampleDiag(f(mu), f(lv), f(eps), z, q, batch, dim);
      expectClose(z, zR, elTol, 'z');
      expectClose(q, qR, rowTol, 'logq');
      const [dMuR, dLvR, dMu, dLv] = [new Float64Array(n), new Float64Array(n), new Float32Array(n), new Float32Array(n)];
      reference.gaussian.sampleDiagBackward(lv, eps, g, gr, dMuR, dLvR, batch, dim);
      cuda.gaussian.sampleDiagBackward(f(lv), f(eps), f(g), f(gr), dMu, dLv, batch, dim);
      expectClose(dMu, dMuR, elTol, 'dMu');
      expectClose(dLv, dLvR, elTol, 'dLogvar');
      const [lsR, ls] = [new Float64Array(batch), new Float32Array(batch)];
      reference.gaussian.logStandard(mu, lsR, batch, dim);
      cuda.gaussian.logStandard(f(mu), ls, batch, dim);
      expectClose(ls, lsR, rowTol, 'logStandard');
      const [dxR, dx] = [new Float64Array(n), new Float32Array(n)];
      reference.gaussian.logStandardBackward(mu, gr, dxR, batch, dim);
      cuda.gaussian.logStandardBackward(f(mu), f(gr), dx, batch, dim);
      expectClose(dx, dxR, elTol, 'logStandard dx');
      const [klR, kl] = [new Float64Array(batch), new Float32Array(batch)];
      reference.gaussian.klStandard(mu, lv, klR, batch, dim);
      cuda.gaussian.klStandard(f(mu), f(lv), kl, batch, dim);
      expectClose(kl, klR, rowTol, 'kl');
      reference.gaussian.klStandardBackward(mu, lv, gr, dMuR, dLvR, batch, dim);
      cuda.gaussian.klStandardBackward(f(mu), f(lv), f(gr), dMu, dLv, batch, dim);
      expectClose(dMu, dMuR, elTol, 'kl dMu');
      expectClose(dLv, dLvR, { atol: 1e-5, rtol: 2e-5 }, 'kl dLogvar');

      // test/likelihood.test.ts: float32 terms summed in float64, error at most linear in dim.
      const x = asFloat32Values(randomArray(n, 51, 0, 1).map((v) => (v > 0.6 ? 1 : v < 0.3 ? 0 : v)));
      const l = asFloat32Values(randomArray(n, 52, -12, 12));
      const lvd = asFloat32Values(randomArray(dim, 53, -2, 2));
      const [bR, b] = [new Float64Array(batch), new Float32Array(batch)];
      reference.likelihood.bernoulli(x, l, bR, batch, dim);
      cuda.likelihood.bernoulli(f(x), f(l), b, batch, dim);
      expectClose(b, bR, { atol: 2e-6 * dim, rtol: 1e-5 }, 'bernoulli');
      const [dlR, dl] = [new Float64Array(n), new Float32Array(n)];
      reference.likelihood.bernoulliBackward(x, l, gr, dlR, batch, dim);
      cuda.likelihood.bernoulliBackward(f(x), f(l), f(gr), dl, batch, dim);
      expectClose(dl, dlR, { atol: 1e-6, rtol: 1e-5 }, 'bernoulli dLogits');
      const [gR, gg] = [new Float64Array(batch), new Float32Array(batch)];
      reference.likelihood.gaussian(x, l, lvd, gR, batch, dim);
      cuda.likelihood.gaussian(f(x), f(l), f(lvd), gg, batch, dim);
      expectClose(gg, gR, { atol: 2e-5 * dim, rtol: 1e-5 }, 'gaussian');
      const dlv0 = asFloat32Values(randomArray(dim, 55));
      const [dmR, dlvR, dm, dlv] = [new Float64Array(n), f64(dlv0), new Float32Array(n), f32(dlv0)];
      reference.likelihood.gaussianBackward(x, l, lvd, gr, dmR, dlvR, batch, dim);
      cuda.likelihood.gaussianBackward(f(x), f(l), f(lvd), f(gr), dm, dlv, batch, dim);
      expectClose(dm, dmR, { atol: 1e-5, rtol: 1e-5 }, 'gaussian dMean');
      expectClose(dlv, dlvR, { atol: 1e-4 * batch, rtol: 1e-5 }, 'gaussian dLogvar (accumulated)');
    });
  });

  const PLANAR: FamilyUnderTest = { name: 'planar', paramSize: planarParamSize, kernels: (b) => b.planar, saved: 'y' };
  const RADIAL: FamilyUnderTest = { name: 'radial', paramSize: radialParamSize, kernels: (b) => b.radial, saved: 'x' };
  // The cpu test shapes, plus dims at the register-slot limits (32, 33, 64, 65, 128, 129, 256) and
  // past them (257, 300: rows in global memory).
  const stackShapes: Shape[] = (
    [
      [1, 1, 1],
      [1, 2, 3],
      [5, 7, 4],
      [19, 33, 2],
      [3, 2, 32],
      [37, 40, 16],
      [2, 1, 32],
      [21, 8, 5],
      [6, 32, 3],
      [6, 64, 2],
      [5, 65, 2],
      [4, 128, 2],
      [4, 129, 2],
      [3, 256, 2],
      [3, 257, 2],
      [9, 300, 3],
    ] as [number, number, number][]
  ).flatMap(([batch, dim, layers]) => [false, true].map((amortized) => ({ batch, dim, layers, amortized })));

  for (const fam of [PLANAR, RADIAL]) {
    describe(fam.name, () => {
      it.each(stackShapes.map((s, i) => [shapeName(s), s, i] as const))('%s', (_name, s, i) => {
        crossCheck(fam, reference, cuda, s, 300 + 10 * i);
      });

      it('shared backward over 40000 rows (many launches and segments) matches the reference and repeats bit for bit', () => {
        const s = { batch: 40000, dim: 3, layers: 2, amortized: false };
        const d = stackData(fam, s, 500);
        const zeros = new Float64Array(s.batch * s.dim);
        const ref = runStack(reference, fam, s, d, zeros);
        const got = runStack(cuda, fam, s, d, zeros);
        const again = runStack(cuda, fam, s, d, zeros);
        expect(got.bad).toEqual([0, 0, 0]);
        // test/planar.test.ts: per-row float32 terms summed over 40000 rows, 1e-5 of the largest gradient.
        let scale = 0;
        for (const v of ref.dParams) scale = Math.max(scale, Math.abs(v));
        expectClose(got.dParams, ref.dParams, { atol: 1e-5 * scale, rtol: 0 }, 'dParams');
        expectClose(got.dx, ref.dx, { atol: 4e-6 * 2 * Math.sqrt(3), rtol: 4e-6 * 2 * Math.sqrt(3) }, 'dx');
        expectSameBits(f32(again.dParams), f32(got.dParams), 'dParams on a second run');
      });
    });
  }

  describe('lstm (tolerances of test/lstm-cases.ts)', () => {
    for (const [name, c] of LSTM_CASES) {
      it(name, () => {
        expect(compareLstm(cuda, reference, c, c.batch * 1000 + c.steps * 10 + c.hidden)).toBeLessThanOrEqual(1);
      });
    }
  });

  it('the caching allocator hands every buffer back and reuses it on the next step', () => {
    const stats = () => loadNative()!.cuda!.memoryStats();
    const s = { batch: 64, dim: 40, layers: 8, amortized: true };
    const d = stackData(PLANAR, s, 9);
    runStack(cuda, PLANAR, s, d, new Float64Array(s.batch * s.dim));
    const first = stats();
    expect(first.inUse).toBe(0);
    expect(first.cached).toBeGreaterThan(0);
    runStack(cuda, PLANAR, s, d, new Float64Array(s.batch * s.dim));
    expect(stats()).toEqual(first);
  });

  describe('VAE training follows the reference from the same seed', () => {
    const posteriors: VAEOptions['posterior'][] = [
      'diagonal',
      { flow: 'planar', layers: 2, amortized: true },
      { flow: 'planar', layers: 2, amortized: false },
      { flow: 'radial', layers: 2, amortized: true },
      { flow: 'radial', layers: 2, amortized: false },
    ];
    for (const posterior of posteriors) {
      it(`posterior ${JSON.stringify(posterior)}`, async () => {
        const make = (backend: 'cuda' | 'reference') =>
          new VAE({ inputDim: 20, latentDim: 4, encoder: { hidden: [16] }, decoder: { hidden: [16] }, posterior, seed: 2, backend });
        const x = f32(randomArray(40 * 20, 9, 0, 1).map((v) => (v > 0.5 ? 1 : 0)));
        const ref = make('reference');
        const gpu = make('cuda');
        const refFit = await ref.fit(f64(x), { epochs: 2, batchSize: 10, lr: 1e-3, seed: 4 });
        const gpuFit = await gpu.fit(x, { epochs: 2, batchSize: 10, lr: 1e-3, seed: 4 });
        // test/vae.test.ts: 8 Adam steps from identical weights and noise (the rng streams are
        // identical): weights agree to ~1e-5, per-epoch ELBOs (~14 nats) to ~1e-3.
        for (let e = 0; e < 2; e++) expect(Math.abs(gpuFit.history[e].train.elbo - refFit.history[e].train.elbo)).toBeLessThan(2e-3);
        const rp = ref.parameters();
        gpu.parameters().forEach((p, i) => expectClose(p.value, rp[i].value, { atol: 2e-5, rtol: 1e-4 }, p.name));
      });
    }
  });
});
