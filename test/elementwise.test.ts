import { afterEach, describe, expect, it } from 'vitest';
import { backendByName, getNumThreads, setNumThreads } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import { ACTIVATIONS, type Activation } from '../src/backend/kernels/elementwise';
import { referenceElementwise as ref } from '../src/backend/reference/elementwise';
import { asFloat32Values, dot, expectClose, expectSameBits, hasCpu, numericalGradient, randomArray, randomNormal } from './helpers';
import { describeBackends } from './helpers';

const ALPHA = 0.3;

describe('elementwise: reference definitions', () => {
  const forward1 = (kind: Activation, x: number, alpha = ALPHA) => {
    const y = new Float64Array(1);
    ref.forward(kind, Float64Array.of(x), y, 1, alpha);
    return y[0];
  };
  const backward1 = (kind: Activation, x: number, dy: number) => {
    const y = Float64Array.of(forward1(kind, x));
    const dx = new Float64Array(1);
    ref.backward(kind, Float64Array.of(x), y, Float64Array.of(dy), dx, 1, ALPHA);
    return dx[0];
  };

  it('matches the closed forms', () => {
    const e = Math.E;
    expect(forward1('identity', -2.5)).toBe(-2.5);
    expect(forward1('relu', -2)).toBe(0);
    expect(forward1('relu', 2)).toBe(2);
    expect(forward1('leaky_relu', -2)).toBeCloseTo(-0.6, 15);
    expect(forward1('elu', -1)).toBeCloseTo(ALPHA * (1 / e - 1), 15);
    expect(forward1('elu', 1.5)).toBe(1.5);
    expect(forward1('tanh', 1)).toBeCloseTo((e - 1 / e) / (e + 1 / e), 15);
    expect(forward1('sigmoid', 2)).toBeCloseTo(1 / (1 + Math.exp(-2)), 15);
    expect(forward1('softplus', 1)).toBeCloseTo(Math.log(1 + e), 15);
    expect(forward1('softplus', 0)).toBeCloseTo(Math.LN2, 15);
  });

  it('stays finite and accurate at extreme inputs', () => {
    expect(forward1('sigmoid', 800)).toBe(1);
    expect(forward1('sigmoid', -800)).toBe(0);
    expect(forward1('sigmoid', -40) / Math.exp(-40)).toBeCloseTo(1, 14);
    expect(forward1('softplus', 800)).toBe(800);
    expect(forward1('softplus', -40) / Math.exp(-40)).toBeCloseTo(1, 14); // log1p keeps e^-40
    expect(forward1('softplus', -800)).toBe(0);
    expect(forward1('tanh', 1e4)).toBe(1);
    expect(forward1('elu', -1e4)).toBe(-ALPHA);
    expect(forward1('elu', -1e-10)).toBeCloseTo(ALPHA * -1e-10 * (1 - 0.5e-10), 24); // expm1: no cancellation
  });

  it('has the stated derivatives at exactly 0', () => {
    expect(backward1('relu', 0, 2)).toBe(0);
    expect(backward1('leaky_relu', 0, 2)).toBeCloseTo(2 * ALPHA, 15);
    expect(backward1('elu', 0, 2)).toBeCloseTo(2 * ALPHA, 15);
    expect(backward1('tanh', 0, 2)).toBe(2);
    expect(backward1('sigmoid', 0, 2)).toBe(0.5);
    expect(backward1('softplus', 0, 2)).toBe(1);
  });

  it('passes NaN through', () => {
    for (const kind of ACTIVATIONS) expect(forward1(kind, NaN)).toBeNaN();
  });
});

describe('elementwise: reference derivatives vs central finite differences (float64)', () => {
  // Away from the kinks at 0 (|x| ≥ 0.01 ≫ h = 1e-6). Central differences
  // err by h²·|f'''|/6 ≲ 1e-12 plus rounding ~1e-16·|f|/h ≲ 1e-9.
  const n = 40;
  const x = randomArray(n, 7, -4, 4).map((v) => (Math.abs(v) < 0.01 ? v + 0.05 : v));
  const w = randomArray(n, 8);
  const tol = { atol: 1e-7, rtol: 1e-7 };
  it.each(ACTIVATIONS)('%s', (kind) => {
    const y = new Float64Array(n);
    const loss = () => {
      ref.forward(kind, x, y, n, ALPHA);
      return dot(y, w);
    };
    const numeric = numericalGradient(loss, x);
    ref.forward(kind, x, y, n, ALPHA);
    const dx = new Float64Array(n);
    ref.backward(kind, x, y, w, dx, n, ALPHA);
    expectClose(dx, numeric, tol, `${kind} dx`);
  });
});

/** Awkward inputs: normals of scale 4 with, every 5th element, ±80, ±1e4, 0, −0, float32 subnormals and edges of the exp range. */
function testInputs(n: number, seed: number): Float64Array {
  const special = [-80, 80, -1e4, 1e4, 0, -0, Math.fround(1e-40), -Math.fround(1e-40), 88.7, -88.7, 100, -100, 0.625, -0.3466];
  const x = randomNormal(n, seed, 4);
  for (let i = 0, k = 0; i < n; i += 5, k++) x[i] = special[k % special.length];
  return asFloat32Values(x);
}

describe.skipIf(!hasCpu())('elementwise: cpu vs reference', () => {
  const cpu = hasCpu() ? backendByName('cpu') : undefined;
  // Forward: the native kernels are within 2.5 float32 ulps of the exact
  // function (native/test/elementwise_test.cc measures it over every binade);
  // one ulp is at most 2⁻²³·|f|, so rtol 2.5·2⁻²³ ≈ 3e-7. Results in the
  // subnormal range are as accurate as their spacing allows: atol of 3
  // subnormal steps (3·2⁻¹⁴⁹ ≈ 4.2e-45).
  const forwardTol = { atol: 4.2e-45, rtol: 3e-7 };
  // Backward from x (elu, softplus): one or two more roundings, rtol 5e-7.
  // From the forward output (tanh: 1 − y², sigmoid: y(1 − y)): cpu's y has an
  // absolute error ≤ 2.5·2⁻²⁴ ≈ 1.5e-7 for |y| ≤ 1, which moves 1 − y² by
  // ≤ 2|y|·1.5e-7 and y(1 − y) by ≤ 1.5e-7, times |dy| ≤ 1: atol 4e-7.
  const backwardTol = (kind: Activation) => (kind === 'tanh' || kind === 'sigmoid' ? { atol: 4e-7, rtol: 5e-7 } : { atol: 4.2e-45, rtol: 5e-7 });

  for (const n of [1, 7, 33, 257, 100003]) {
    it.each(ACTIVATIONS)(`%s at n = ${n}`, (kind) => {
      const x = testInputs(n, n);
      const dy = asFloat32Values(randomArray(n, n + 1));
      const yRef = new Float64Array(n);
      ref.forward(kind, x, yRef, n, ALPHA);
      const yCpu = new Float32Array(n);
      cpu!.elementwise.forward(kind, Float32Array.from(x), yCpu, n, ALPHA);
      expectClose(yCpu, yRef, forwardTol, `${kind} forward`);

      const dxRef = new Float64Array(n);
      ref.backward(kind, x, yRef, dy, dxRef, n, ALPHA);
      const dxCpu = new Float32Array(n);
      cpu!.elementwise.backward(kind, Float32Array.from(x), yCpu, Float32Array.from(dy), dxCpu, n, ALPHA);
      expectClose(dxCpu, dxRef, backwardTol(kind), `${kind} backward`);
    });
  }
});

describe('elementwise: in place', () => {
  const names = hasCpu() ? (['reference', 'cpu'] as const) : (['reference'] as const);
  for (const name of names) {
    it(`${name}: y = x and dx = dy give the out-of-place results`, () => {
      const b: Backend = backendByName(name);
      const n = 301;
      for (const kind of ACTIVATIONS) {
        const x = b.from(testInputs(n, 3));
        const dy = b.from(randomArray(n, 4));
        const y = b.alloc(n);
        const dx = b.alloc(n);
        b.elementwise.forward(kind, x, y, n, ALPHA);
        b.elementwise.backward(kind, x, y, dy, dx, n, ALPHA);
        const inPlace = b.from(x);
        b.elementwise.forward(kind, inPlace, inPlace, n, ALPHA);
        expect(inPlace).toEqual(y);
        b.elementwise.backward(kind, x, y, dy, dy, n, ALPHA);
        expect(dy).toEqual(dx);
      }
    });
  }
});

describe.skipIf(!hasCpu())('elementwise: cpu threads', () => {
  const saved = getNumThreads();
  afterEach(() => setNumThreads(saved));
  it('gives identical results at 1 and 2 threads', () => {
    const cpu = backendByName('cpu');
    const n = 200003; // above two 64k chunks, so two threads split it
    const x = Float32Array.from(testInputs(n, 9));
    const dy = Float32Array.from(randomArray(n, 10));
    for (const kind of ACTIVATIONS) {
      const results = [1, 2].map((threads) => {
        setNumThreads(threads);
        const y = new Float32Array(n);
        const dx = new Float32Array(n);
        cpu.elementwise.forward(kind, x, y, n, ALPHA);
        cpu.elementwise.backward(kind, x, y, dy, dx, n, ALPHA);
        return { y, dx };
      });
      expectSameBits(results[1].y, results[0].y, `${kind} forward`);
      expectSameBits(results[1].dx, results[0].dx, `${kind} backward`);
    }
  });
});

describe('elementwise: bad arguments', () => {
  const names = hasCpu() ? (['reference', 'cpu'] as const) : (['reference'] as const);
  const kinds = ACTIVATIONS.map((a) => `"${a}"`).join(', ');
  for (const name of names) {
    it(`${name}: pins the error kind, code and message`, () => {
      const b = backendByName(name);
      const arrayKind = name === 'cpu' ? 'Float32Array' : 'Float64Array';
      const a = b.alloc(5);
      const throwsWith = (fn: () => void, kind: ErrorConstructor, code: string, message: string) => {
        let caught: unknown;
        try {
          fn();
        } catch (err) {
          caught = err;
        }
        expect(caught).toBeInstanceOf(kind);
        expect((caught as { code?: string }).code).toBe(code);
        expect((caught as Error).message).toBe(message);
      };
      throwsWith(
        () => b.elementwise.forward('gelu' as Activation, a, a, 5, 0),
        RangeError,
        'ERR_ARG',
        `Expected one of ${kinds} for "kind" but received "gelu" (string)`,
      );
      throwsWith(
        () => b.elementwise.backward(4 as unknown as Activation, a, a, a, a, 5, 0),
        TypeError,
        'ERR_ARG',
        `Expected one of ${kinds} for "kind" but received 4 (number)`,
      );
      throwsWith(
        () => b.elementwise.forward('relu', a, b.alloc(4), 5, 0),
        RangeError,
        'ERR_SHAPE',
        `Expected ${arrayKind} of length 5 for "y" but received ${arrayKind}(4)`,
      );
      throwsWith(
        () => b.elementwise.backward('tanh', a, a, b.alloc(6), a, 5, 0),
        RangeError,
        'ERR_SHAPE',
        `Expected ${arrayKind} of length 5 for "dy" but received ${arrayKind}(6)`,
      );
      throwsWith(() => b.elementwise.forward('elu', a, a, 5, NaN), RangeError, 'ERR_ARG', 'Expected finite number for "alpha" but received NaN (number)');
      throwsWith(() => b.elementwise.forward('elu', a, a, -1, 1), RangeError, 'ERR_ARG', 'Expected non-negative integer for "n" but received -1 (number)');
      throwsWith(
        () => b.elementwise.forward('elu', [1, 2] as never, a, 2, 1),
        TypeError,
        'ERR_ARG',
        `Expected ${name === 'cpu' ? 'Float32Array' : 'Float32Array or Float64Array'} for "x" but received Array(2)`,
      );
    });
  }

  it.skipIf(!hasCpu())('cpu refuses Float64Array', () => {
    const cpu = backendByName('cpu');
    expect(() => cpu.elementwise.forward('tanh', new Float64Array(3), new Float32Array(3), 3, 0)).toThrow(
      'Expected Float32Array for "x" but received Float64Array(3)',
    );
  });
});

// Folded from the former test/cuda.test.ts. Skipped, with the reason, where no CUDA device is present.
describeBackends(['cuda'], 'cuda vs reference', (cuda: Backend) => {
  const reference = backendByName('reference');
  const f32 = (a: ArrayLike<number>): Float32Array => Float32Array.from(a);
  describe('elementwise', () => {
    // test/elementwise.test.ts: within 2.5 float32 ulps (rtol 3e-7) or 3
    // subnormal steps; backward one or two roundings more (rtol 5e-7), and
    // from the forward output y (tanh, sigmoid) y's error times |dy| ≤ 1 (atol 4e-7).
    const forwardTol = { atol: 4.2e-45, rtol: 3e-7 };
    const backwardTol = (kind: Activation) => (kind === 'tanh' || kind === 'sigmoid' ? { atol: 4e-7, rtol: 5e-7 } : { atol: 4.2e-45, rtol: 5e-7 });
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
});
