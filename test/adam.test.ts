import { afterEach, describe, expect, it } from 'vitest';
import { backendByName, getNumThreads, setNumThreads } from '../src/backend';
import { ADAM_STEP_OPTION_KEYS, type AdamStepOptions } from '../src/backend/kernels/adam';
import { referenceAdam as ref } from '../src/backend/reference/adam';
import { asFloat32Values, expectClose, expectSameBits, hasCpu, randomArray } from './helpers';
import type { Backend } from '../src/backend/backend';
import { describeBackends } from './helpers';

const BASE: AdamStepOptions = {
  lr: 1e-2,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  decoupled: false,
  step: 1,
  maxGradNorm: 0,
};

/** Option sets: plain Adam, L2 decay, AdamW, active clipping, clipping that never triggers, all at once. */
const CONFIGS: [string, Partial<AdamStepOptions>][] = [
  ['adam', {}],
  ['adam + L2 decay', { weightDecay: 0.1 }],
  ['adamw', { weightDecay: 0.5, decoupled: true, beta1: 0.5, beta2: 0.9, eps: 1e-3 }],
  ['adam + clipping', { weightDecay: 0.1, maxGradNorm: 0.3 }],
  ['adamw + loose clipping', { weightDecay: 0.05, decoupled: true, maxGradNorm: 1e6 }],
  ['adamw + clipping', { lr: 3e-3, weightDecay: 0.2, decoupled: true, maxGradNorm: 1 }],
];

/**
 * An independent transcription of PyTorch 1.13: torch.nn.utils.clip_grad_norm_
 * followed by torch.optim.Adam / AdamW (_single_tensor_adam / _single_tensor_adamw),
 * one tensor operation per loop, in float64. `grad` is modified as clip_grad_norm_ does.
 */
function torchStep(param: Float64Array, grad: Float64Array, expAvg: Float64Array, expAvgSq: Float64Array, o: AdamStepOptions): number {
  const n = param.length;
  // clip_grad_norm_: total_norm = ‖g‖₂; clip_coef = max_norm / (total_norm + 1e-6); grads *= min(clip_coef, 1).
  let sumSquares = 0;
  for (let i = 0; i < n; i++) sumSquares += grad[i] ** 2;
  const totalNorm = Math.sqrt(sumSquares);
  if (o.maxGradNorm > 0) {
    const clipCoef = o.maxGradNorm / (totalNorm + 1e-6);
    const clamped = Math.min(clipCoef, 1);
    for (let i = 0; i < n; i++) grad[i] *= clamped;
  }
  if (o.decoupled) {
    // AdamW: param.mul_(1 - lr * weight_decay)
    for (let i = 0; i < n; i++) param[i] *= 1 - o.lr * o.weightDecay;
  } else if (o.weightDecay !== 0) {
    // Adam: grad = grad.add(param, alpha=weight_decay)
    for (let i = 0; i < n; i++) grad[i] += o.weightDecay * param[i];
  }
  // exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
  for (let i = 0; i < n; i++) expAvg[i] = expAvg[i] * o.beta1 + grad[i] * (1 - o.beta1);
  // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
  for (let i = 0; i < n; i++) expAvgSq[i] = expAvgSq[i] * o.beta2 + grad[i] * grad[i] * (1 - o.beta2);
  const biasCorrection1 = 1 - o.beta1 ** o.step;
  const biasCorrection2 = 1 - o.beta2 ** o.step;
  const stepSize = o.lr / biasCorrection1;
  const biasCorrection2Sqrt = Math.sqrt(biasCorrection2);
  // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
  const denom = expAvgSq.map((s) => Math.sqrt(s) / biasCorrection2Sqrt + o.eps);
  // param.addcdiv_(exp_avg, denom, value=-step_size)
  for (let i = 0; i < n; i++) param[i] += -stepSize * (expAvg[i] / denom[i]);
  return totalNorm;
}

/** Gradients for step t (float32 values, so both backends see the same numbers). */
const gradsAt = (n: number, t: number) => asFloat32Values(randomArray(n, 1000 + t, -2, 2));

describe('adam: reference vs a transcription of PyTorch (float64)', () => {
  it.each(CONFIGS)('%s, 5 steps', (_label, config) => {
    const n = 57;
    const p = randomArray(n, 1, -1.5, 1.5);
    const [m, v] = [new Float64Array(n), new Float64Array(n)];
    const [pt, mt, vt] = [Float64Array.from(p), new Float64Array(n), new Float64Array(n)];
    for (let t = 1; t <= 5; t++) {
      const g = gradsAt(n, t);
      const o = { ...BASE, ...config, step: t };
      const norm = ref.step(p, g, m, v, n, o);
      const expectedNorm = torchStep(pt, Float64Array.from(g), mt, vt, o);
      expect(norm).toBeCloseTo(expectedNorm, 13);
    }
    // The same float64 operations in a possibly different order: a few
    // units of 2⁻⁵² relative per step.
    const tol = { atol: 1e-14, rtol: 1e-13 };
    expectClose(p, pt, tol, 'params');
    expectClose(m, mt, tol, 'm');
    expectClose(v, vt, tol, 'v');
  });

  it('takes the closed-form first step p − lr·g/(|g| + eps), also with clipping', () => {
    // Step 1: m̂ = g and v̂ = g², so the update is lr·g/(|g| + eps) for the (clipped) gradient.
    const g = Float64Array.of(3, -4, 0, 1e-9);
    for (const maxGradNorm of [0, 2.5]) {
      const p = Float64Array.of(1, 2, 3, 4);
      const norm = ref.step(p, g, new Float64Array(4), new Float64Array(4), 4, { ...BASE, lr: 0.1, maxGradNorm });
      expect(norm).toBeCloseTo(Math.sqrt(9 + 16 + 1e-18), 14);
      const s = maxGradNorm > 0 ? 2.5 / (Math.sqrt(9 + 16 + 1e-18) + 1e-6) : 1;
      const expected = [1, 2, 3, 4].map((p0, i) => p0 - (0.1 * g[i] * s) / (Math.abs(g[i] * s) + 1e-8));
      expectClose(p, expected, { atol: 1e-15, rtol: 1e-15 }, `params, maxGradNorm ${maxGradNorm}`);
    }
  });

  it('leaves grads untouched and returns NaN for a NaN gradient', () => {
    const g = Float64Array.of(1, NaN, 2);
    const p = Float64Array.of(1, 1, 1);
    expect(ref.step(p, g, new Float64Array(3), new Float64Array(3), 3, BASE)).toBeNaN();
    expect(Array.from(g)).toEqual([1, NaN, 2]);
  });
});

describe.skipIf(!hasCpu())('adam: cpu vs reference, 20 steps', () => {
  const cpu = hasCpu() ? backendByName('cpu') : undefined;
  for (const n of [1, 7, 33, 257, 100003]) {
    it.each(CONFIGS)(`%s at n = ${n}`, (_label, config) => {
      const p0 = asFloat32Values(randomArray(n, n, -1.5, 1.5));
      const [pR, mR, vR] = [Float64Array.from(p0), new Float64Array(n), new Float64Array(n)];
      const [pC, mC, vC] = [Float32Array.from(p0), new Float32Array(n), new Float32Array(n)];
      for (let t = 1; t <= 20; t++) {
        const g = gradsAt(n, t);
        const o = { ...BASE, ...config, step: t };
        const normR = ref.step(pR, g, mR, vR, n, o);
        const normC = cpu!.adam.step(pC, Float32Array.from(g), mC, vC, n, o);
        // Both sum the exact squares of the same float32 values in double, in
        // different orders: relative difference ≤ n·2⁻⁵³ ≈ 1.1e-11 for n = 100003.
        expect(Math.abs(normC - normR)).toBeLessThanOrEqual(1e-11 * normR);
      }
      // cpu keeps p, m, v in float32: each operation rounds by ≤ 2⁻²⁴ ≈ 6e-8
      // relative, about two per step in each quantity, so after 20 steps
      // ≲ 2.4e-6 of the size of the terms involved: |p| + 1 for p (updates
      // ≤ ~lr), |g| ≤ 2 for m, (1 − β₂)·g² ≤ 4e-3 for v (native/test/adam_test.cc
      // measures 3e-7 and 1.4e-6 relative after 10 steps).
      expectClose(pC, pR, { atol: 2.5e-6, rtol: 2.5e-6 }, 'params');
      expectClose(mC, mR, { atol: 5e-7, rtol: 2.5e-6 }, 'm');
      expectClose(vC, vR, { atol: 1e-9, rtol: 2.5e-6 }, 'v');
    });
  }
});

describe.skipIf(!hasCpu())('adam: cpu threads', () => {
  const saved = getNumThreads();
  afterEach(() => setNumThreads(saved));
  it('gives identical parameters, moments and norm at 1 and 2 threads', () => {
    const cpu = backendByName('cpu');
    const n = 100003; // seven blocks of 14288: two threads split them
    for (const maxGradNorm of [0, 50]) {
      const runs = [1, 2].map((threads) => {
        setNumThreads(threads);
        const p = Float32Array.from(randomArray(n, 5));
        const [m, v] = [new Float32Array(n), new Float32Array(n)];
        const norms: number[] = [];
        for (let t = 1; t <= 3; t++) {
          const o = { ...BASE, weightDecay: 0.01, decoupled: true, maxGradNorm, step: t };
          norms.push(cpu.adam.step(p, Float32Array.from(gradsAt(n, t)), m, v, n, o));
        }
        return { p, m, v, norms };
      });
      expectSameBits(runs[1].p, runs[0].p, 'params');
      expectSameBits(runs[1].m, runs[0].m, 'm');
      expectSameBits(runs[1].v, runs[0].v, 'v');
      expect(runs[1].norms).toEqual(runs[0].norms);
    }
  });
});

describe('adam: norm and edge cases', () => {
  const names = hasCpu() ? (['reference', 'cpu'] as const) : (['reference'] as const);
  for (const name of names) {
    it(`${name}: returns ‖g‖₂ before clipping, NaN for a NaN gradient, 0 for n = 0`, () => {
      const b = backendByName(name);
      const n = 1001;
      const g = b.from(gradsAt(n, 1));
      let squares = 0;
      for (const x of g) squares += x * x;
      const norm = b.adam.step(b.from(randomArray(n, 2)), g, b.alloc(n), b.alloc(n), n, { ...BASE, maxGradNorm: 0.5 });
      expect(norm).toBeCloseTo(Math.sqrt(squares), 12);
      expect(norm).toBeGreaterThan(0.5); // clipping was active, the norm is still the unclipped one

      const bad = b.from([1, NaN, 2]);
      expect(b.adam.step(b.from([0, 0, 0]), bad, b.alloc(3), b.alloc(3), 3, BASE)).toBeNaN();
      const empty = b.alloc(0);
      expect(b.adam.step(empty, b.alloc(0), b.alloc(0), b.alloc(0), 0, BASE)).toBe(0);
    });
  }
});

describe('adam: bad arguments', () => {
  const names = hasCpu() ? (['reference', 'cpu'] as const) : (['reference'] as const);
  for (const name of names) {
    it(`${name}: pins the error kind, code and message`, () => {
      const b = backendByName(name);
      const arrayKind = name === 'cpu' ? 'Float32Array' : 'Float64Array';
      const n = 4;
      const p = b.from([1, 2, 3, 4]);
      const [g, m, v] = [b.from([0.1, 0.2, 0.3, 0.4]), b.alloc(n), b.alloc(n)];
      const throwsWith = (options: unknown, kind: ErrorConstructor, code: string, message: string, args = [p, g, m, v]) => {
        let caught: unknown;
        try {
          b.adam.step(args[0], args[1], args[2], args[3], n, options as AdamStepOptions);
        } catch (err) {
          caught = err;
        }
        expect(caught).toBeInstanceOf(kind);
        expect((caught as { code?: string }).code).toBe(code);
        expect((caught as Error).message).toBe(message);
      };
      const keys = ADAM_STEP_OPTION_KEYS.map((k) => `"${k}"`).join(', ');
      throwsWith({ ...BASE, momentum: 0.9 }, RangeError, 'ERR_ARG', `Unknown option "momentum" in "options"; expected one of ${keys}`);
      throwsWith(null, TypeError, 'ERR_ARG', 'Expected options object for "options" but received null');
      // lr's range is ADAM_LIMITS.lr, the bound the training API checks too (test/kernel-errors.test.ts).
      throwsWith({ ...BASE, lr: -0.001 }, RangeError, 'ERR_ARG', 'Expected number in (0, 10] for "lr" but received -0.001 (number)');
      throwsWith({ ...BASE, lr: '1e-3' }, TypeError, 'ERR_ARG', 'Expected number in (0, 10] for "lr" but received "1e-3" (string)');
      throwsWith({ ...BASE, lr: 11 }, RangeError, 'ERR_ARG', 'Expected number in (0, 10] for "lr" but received 11 (number)');
      throwsWith({ ...BASE, eps: NaN }, RangeError, 'ERR_ARG', 'Expected positive finite number for "eps" but received NaN (number)');
      throwsWith({ ...BASE, beta1: 1 }, RangeError, 'ERR_ARG', 'Expected number in [0, 1) for "beta1" but received 1 (number)');
      const { beta2: _omitted, ...noBeta2 } = BASE;
      throwsWith(noBeta2, TypeError, 'ERR_ARG', 'Expected number in [0, 1) for "beta2" but received undefined');
      throwsWith({ ...BASE, weightDecay: -1 }, RangeError, 'ERR_ARG', 'Expected non-negative finite number for "weightDecay" but received -1 (number)');
      throwsWith({ ...BASE, decoupled: 'yes' }, TypeError, 'ERR_ARG', 'Expected boolean for "decoupled" but received "yes" (string)');
      throwsWith({ ...BASE, step: 0 }, RangeError, 'ERR_ARG', 'Expected positive integer for "step" but received 0 (number)');
      throwsWith({ ...BASE, step: 1.5 }, RangeError, 'ERR_ARG', 'Expected positive integer for "step" but received 1.5 (number)');
      throwsWith(
        { ...BASE, maxGradNorm: Infinity },
        RangeError,
        'ERR_ARG',
        'Expected non-negative finite number for "maxGradNorm" but received Infinity (number)',
      );
      throwsWith(BASE, RangeError, 'ERR_SHAPE', `Expected ${arrayKind} of length 4 for "m" but received ${arrayKind}(3)`, [p, g, b.alloc(3), v]);
      // m and v as two views of one buffer that overlap.
      const shared = b.alloc(6);
      const [mView, vView] = [shared.subarray(0, 4), shared.subarray(2, 6)];
      throwsWith(BASE, RangeError, 'ERR_ARG', `Expected array not overlapping "m" for "v" but received ${arrayKind}(4)`, [p, g, mView, vView]);
      // Nothing was touched by the refused calls.
      expect(Array.from(p)).toEqual([1, 2, 3, 4]);
      expect(Array.from(m)).toEqual([0, 0, 0, 0]);
    });
  }
});

// Tensor sizes for stepTensors: an empty tensor, sizes off every SIMD width,
// and one larger than a block (16384) so a tensor spans several blocks.
const TENSOR_SIZES = [5, 0, 1, 17, 40, 33000, 300];
const TOTAL = TENSOR_SIZES.reduce((a, b) => a + b, 0);

/** Views of `flat` cut at TENSOR_SIZES (the tensors of a model, in order). */
function cut<T extends Float32Array | Float64Array>(flat: T): T[] {
  const out: T[] = [];
  let offset = 0;
  for (const n of TENSOR_SIZES) {
    out.push(flat.subarray(offset, offset + n) as T);
    offset += n;
  }
  return out;
}

/** Separate arrays holding the same values as `flat` cut at TENSOR_SIZES (no shared buffer). */
function tensorsOf<T extends Float32Array | Float64Array>(flat: T): T[] {
  return cut(flat).map((view) => view.slice() as T);
}

describe('adam: stepTensors (tensors updated where they live)', () => {
  const names = hasCpu() ? (['reference', 'cpu'] as const) : (['reference'] as const);
  for (const name of names) {
    it.each(CONFIGS)(`${name}: %s equals the flat step over the concatenation, 5 steps`, (_label, config) => {
      const b = backendByName(name);
      const p0 = b.from(asFloat32Values(randomArray(TOTAL, 8, -1.5, 1.5)));
      const [pFlat, mFlat, vFlat] = [p0.slice(), b.alloc(TOTAL), b.alloc(TOTAL)];
      const pTensors = tensorsOf(p0);
      const [m, v] = [b.alloc(TOTAL), b.alloc(TOTAL)];
      for (let t = 1; t <= 5; t++) {
        const g = b.from(gradsAt(TOTAL, t));
        const o = { ...BASE, ...config, step: t };
        const normFlat = b.adam.step(pFlat, g, mFlat, vFlat, TOTAL, o);
        const norm = b.adam.stepTensors(pTensors, tensorsOf(g), m, v, o);
        // The same squares summed in another order (per tensor, per block).
        expect(Math.abs(norm - normFlat)).toBeLessThanOrEqual(1e-12 * normFlat);
      }
      // Element updates are the flat step's arithmetic; only the clipping
      // scale, computed from the norm, may differ in its last bit.
      const clipped = (config.maxGradNorm ?? 0) > 0;
      const tol = clipped ? { atol: 1e-7, rtol: 1e-6 } : { atol: 0, rtol: 0 };
      pTensors.forEach((p, k) => expectClose(p, cut(pFlat)[k], tol, `params[${k}]`));
      expectClose(m, mFlat, tol, 'm');
      expectClose(v, vFlat, tol, 'v');
    });

    it(`${name}: pins the errors of bad tensor lists and overlaps, touching nothing`, () => {
      const b = backendByName(name);
      const kind = name === 'cpu' ? 'Float32Array' : 'Float64Array';
      const p = [b.from([1, 2, 3]), b.from([4])];
      const g = [b.from([0.1, 0.2, 0.3]), b.from([0.4])];
      const [m, v] = [b.alloc(4), b.alloc(4)];
      const fails = (args: unknown[], ctor: ErrorConstructor, code: string, message: string) => {
        let caught: unknown;
        try {
          b.adam.stepTensors(args[0] as never, args[1] as never, args[2] as never, args[3] as never, BASE);
        } catch (err) {
          caught = err;
        }
        expect(caught).toBeInstanceOf(ctor);
        expect((caught as { code?: string }).code).toBe(code);
        expect((caught as Error).message).toBe(message);
      };
      fails([p[0], g, m, v], TypeError, 'ERR_ARG', `Expected array of ${kind} for "params" but received ${kind}(3)`);
      fails([p, [g[0]], m, v], RangeError, 'ERR_SHAPE', `Expected array of 2 ${kind} (one per params) for "grads" but received Array(1)`);
      fails([p, [g[0], [0.4]], m, v], TypeError, 'ERR_ARG', `Expected ${kind} for "grads[1]" but received Array(1)`);
      fails([p, [g[0], b.from([0.4, 0.5])], m, v], RangeError, 'ERR_SHAPE', `Expected ${kind} of length 1 for "grads[1]" but received ${kind}(2)`);
      fails([p, g, b.alloc(5), v], RangeError, 'ERR_SHAPE', `Expected ${kind} of length 4 for "m" but received ${kind}(5)`);
      // Two tensors sharing memory, a gradient inside the moments, v over m.
      const shared = b.alloc(8);
      fails(
        [[shared.subarray(0, 3), shared.subarray(2, 3)], g, m, v],
        RangeError,
        'ERR_ARG',
        `Expected array not overlapping "params[0]" for "params[1]" but received ${kind}(1)`,
      );
      fails(
        [p, [g[0], shared.subarray(1, 2)], shared.subarray(0, 4), v],
        RangeError,
        'ERR_ARG',
        `Expected array not overlapping "m" for "grads[1]" but received ${kind}(1)`,
      );
      fails([p, g, shared.subarray(0, 4), shared.subarray(3, 7)], RangeError, 'ERR_ARG', `Expected array not overlapping "m" for "v" but received ${kind}(4)`);
      expect(Array.from(p[0])).toEqual([1, 2, 3]);
      expect(Array.from(m)).toEqual([0, 0, 0, 0]);
      // Gradients may share memory (they are only read).
      const gShared = b.from([0.1, 0.2, 0.3]);
      b.adam.stepTensors([b.from([1, 2]), b.from([3])], [gShared.subarray(0, 2), gShared.subarray(1, 2)], b.alloc(3), b.alloc(3), BASE);
    });
  }

  it.skipIf(!hasCpu())('cpu: identical results at 1 and 2 threads', () => {
    const cpu = backendByName('cpu');
    const saved = getNumThreads();
    try {
      const runs = [1, 2].map((threads) => {
        setNumThreads(threads);
        const p = tensorsOf(Float32Array.from(randomArray(TOTAL, 6)));
        const [m, v] = [new Float32Array(TOTAL), new Float32Array(TOTAL)];
        const norms: number[] = [];
        for (let t = 1; t <= 3; t++) {
          norms.push(cpu.adam.stepTensors(p, tensorsOf(Float32Array.from(gradsAt(TOTAL, t))), m, v, { ...BASE, maxGradNorm: 20, step: t }));
        }
        return { p, m, v, norms };
      });
      runs[1].p.forEach((p, k) => expectSameBits(p, runs[0].p[k], `params[${k}]`));
      expectSameBits(runs[1].m, runs[0].m, 'm');
      expectSameBits(runs[1].v, runs[0].v, 'v');
      expect(runs[1].norms).toEqual(runs[0].norms);
    } finally {
      setNumThreads(saved);
    }
  });
});

// Folded from the former test/cuda.test.ts. Skipped, with the reason, where no CUDA device is present.
describeBackends(['cuda'], 'cuda vs reference', (cuda: Backend) => {
  const reference = backendByName('reference');
  // (A skipped suite is still collected, with the reference backend: no cpu needed then.)
  const cpu = cuda.name === 'cuda' ? backendByName('cpu') : reference;
  const f32 = (a: ArrayLike<number>): Float32Array => Float32Array.from(a);
  const f64 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a);
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
});
