/**
 * Residual flows: the exact log-det against the numerical Jacobian, the
 * unbiased estimator (value and Neumann gradient) against the exact values
 * over many draws, the Lipschitz bound of g, the fixed-point inverse and its
 * ERR_NOT_CONVERGED, finite-difference gradients of every parameter and the
 * input on the float64 reference, cpu against reference at awkward sizes,
 * the same bits at any thread count, buffers, and argument errors.
 */
import { describe, expect, it } from 'vitest';
import { backendByName, backends, getNumThreads, setNumThreads } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import type { FloatArray } from '../src/backend/types';
import { FlowVaeError } from '../src/errors';
import { FLOW_FAMILIES, ResidualBlock, type ResidualBlockOptions } from '../src/flows';
import { FlowDistribution } from '../src/distributions/flow-distribution';
import { logAbsDet, thrown } from './flow-stack-helpers';
import { dot, expectClose, hasCpu, randomArray, runCappedSimd } from './helpers';

const reference = backendByName('reference');

function block(options: Partial<ResidualBlockOptions> & { dim: number }, backend: Backend = reference): ResidualBlock {
  return new ResidualBlock({ seed: 3, ...options, backend });
}

/** Jacobian of x ↦ forward(x).y at row r by central differences (h = 1e-6). */
function numericalJacobian(flow: ResidualBlock, x: Float64Array, batch: number, r: number): Float64Array {
  const d = flow.dim;
  const jac = new Float64Array(d * d);
  const h = 1e-6;
  for (let j = 0; j < d; j++) {
    const up = Float64Array.from(x);
    const down = Float64Array.from(x);
    up[r * d + j] += h;
    down[r * d + j] -= h;
    const yu = Float64Array.from(flow.forward(up, batch).y);
    const yd = flow.forward(down, batch).y;
    for (let i = 0; i < d; i++) jac[i * d + j] = (yu[r * d + i] - yd[r * d + i]) / (2 * h);
  }
  return jac;
}

/** Largest singular value of a `[rows, cols]` matrix by 2000 float64 power-iteration steps on WᵀW. */
function sigmaMax(w: ArrayLike<number>, rows: number, cols: number): number {
  let v = new Float64Array(cols).map((_, i) => 1 + 0.1 * i);
  let s = 0;
  for (let it = 0; it < 2000; it++) {
    const u = new Float64Array(rows);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) u[i] += w[i * cols + j] * v[j];
    const nv = new Float64Array(cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) nv[j] += w[i * cols + j] * u[i];
    const norm = Math.sqrt(dot(nv, nv));
    s = Math.sqrt(norm);
    v = nv.map((a) => a / norm);
  }
  return s;
}

const ACTIVATIONS = ['lipswish', 'elu'] as const;

describe('residual flow: exact log-det (reference)', () => {
  for (const activation of ACTIVATIONS) {
    for (const [dim, hidden] of [
      [1, [6]],
      [2, [16, 9]],
      [5, [7, 11, 4]],
    ] as [number, number[]][]) {
      it(`${activation}, D = ${dim}, hidden [${hidden}] vs log|det| of the numerical Jacobian`, () => {
        const flow = block({ dim, hidden, activation, lipschitz: 0.9 });
        const batch = 3;
        const x = randomArray(batch * dim, 11 + dim, -2, 2);
        const logDet = Float64Array.from(flow.forward(x, batch).logDet);
        for (let r = 0; r < batch; r++) {
          // Central differences with h = 1e-6: entries to ~1e-9 (truncation h²·f''' plus
          // rounding 1e-16/h), so log|det| to ~1e-8 for these well-conditioned I + J.
          expect(Math.abs(logAbsDet(numericalJacobian(flow, x, batch, r), dim) - logDet[r])).toBeLessThan(1e-7);
        }
      });
    }
  }
});

describe('residual flow: estimator (reference)', () => {
  // One row repeated: each row of a batch draws its own Hutchinson vector and series length.
  const dim = 3;
  const hidden = [8, 8];
  const rows = 500;
  const batches = 24;

  it('the mean of the log-det estimate is within 5 standard errors of the exact value', () => {
    const exact = block({ dim, hidden, logDet: 'exact' });
    const est = block({ dim, hidden, logDet: 'estimator' });
    const x0 = randomArray(dim, 21, -1.5, 1.5);
    const x = new Float64Array(rows * dim);
    for (let r = 0; r < rows; r++) x.set(x0, r * dim);
    const target = exact.forward(x.subarray(0, dim), 1).logDet[0];
    let sum = 0;
    let sq = 0;
    const n = rows * batches;
    for (let b = 0; b < batches; b++) {
      const ld = est.forward(x, rows).logDet;
      for (let r = 0; r < rows; r++) {
        sum += ld[r];
        sq += ld[r] * ld[r];
      }
    }
    const mean = sum / n;
    const se = Math.sqrt((sq / n - mean * mean) / n);
    // An unbiased estimator's mean lies within 5 standard errors with probability 1 − 6e-7.
    expect(Math.abs(mean - target)).toBeLessThan(5 * se);
    // … and the estimate is informative: its standard error is small next to |logDet|.
    expect(se).toBeLessThan(0.1 * Math.abs(target));
  });

  it('the Neumann-series gradient is unbiased for the exact gradient (input and every parameter)', () => {
    const exact = block({ dim, hidden, logDet: 'exact' });
    const est = block({ dim, hidden, logDet: 'estimator' });
    const x0 = randomArray(dim, 22, -1.5, 1.5);
    const x = new Float64Array(rows * dim);
    for (let r = 0; r < rows; r++) x.set(x0, r * dim);
    const dy = new Float64Array(rows * dim);
    const dl = new Float64Array(rows).fill(1);
    exact.forward(x.subarray(0, dim), 1);
    const exactGrads = exact.backward(dy.subarray(0, dim), dl.subarray(0, 1));
    const target = [Float64Array.from(exactGrads.gradInput), ...exact.parameters().map((p) => Float64Array.from(p.grad))];
    // Per batch: the mean gradient over its rows; then mean and standard error over batches.
    const perBatch: Float64Array[][] = [];
    for (let b = 0; b < batches; b++) {
      for (const p of est.parameters()) p.grad.fill(0);
      est.forward(x, rows);
      const g = est.backward(dy, dl);
      const gx = new Float64Array(dim);
      for (let r = 0; r < rows; r++) for (let j = 0; j < dim; j++) gx[j] += g.gradInput[r * dim + j] / rows;
      perBatch.push([gx, ...est.parameters().map((p) => Float64Array.from(p.grad, (v) => v / rows))]);
    }
    let worst = 0;
    target.forEach((t, k) => {
      for (let i = 0; i < t.length; i++) {
        let m = 0;
        let s2 = 0;
        for (const pb of perBatch) m += pb[k][i] / batches;
        for (const pb of perBatch) s2 += (pb[k][i] - m) ** 2 / (batches - 1);
        const se = Math.sqrt(s2 / batches);
        // 6 standard errors (t with 23 degrees of freedom: two-sided tail 3e-6 per value) plus float64 rounding.
        const z = Math.abs(m - t[i]) / (6 * se + 1e-12);
        worst = Math.max(worst, z);
      }
    });
    expect(worst).toBeLessThan(1);
  });

  it('reproduces from the seed and noiseOffset', () => {
    const a = block({ dim: 20, hidden: [12] });
    expect(a.logDetMode).toBe('estimator');
    const x = randomArray(4 * 20, 5);
    const first = Float64Array.from(a.forward(x, 4).logDet);
    const second = Float64Array.from(a.forward(x, 4).logDet);
    expect(Array.from(second)).not.toEqual(Array.from(first));
    a.noiseOffset = 0;
    expect(Array.from(a.forward(x, 4).logDet)).toEqual(Array.from(first));
    const b = block({ dim: 20, hidden: [12] });
    expect(Array.from(b.forward(x, 4).logDet)).toEqual(Array.from(first));
  });
});

describe('residual flow: Lipschitz bound of g (reference)', () => {
  for (const activation of ACTIVATIONS) {
    it(`${activation}: σ_max of every normalized layer ≤ c and ‖g(a) − g(b)‖ ≤ c‖a − b‖, also with inflated weights`, () => {
      const c = 0.9;
      const dim = 4;
      const flow = block({ dim, hidden: [10, 7], activation, lipschitz: c, logDet: 'exact' });
      const widths = [dim, 10, 7, dim];
      const check = () => {
        flow.normalizedWeights().forEach((w, l) => {
          // σ̂ is converged power iteration: σ_max(W·c/σ̂) = c·σ_max/σ̂ = c to ~1e-12.
          expect(sigmaMax(w, widths[l + 1], widths[l])).toBeLessThanOrEqual(c * (1 + 1e-9));
        });
        const n = 400;
        const a = randomArray(n * dim, 31, -3, 3);
        const b = Float64Array.from(a, (v, i) => v + 0.5 * Math.sin(7 * i) * (i % 3 === 0 ? 1 : 0.01));
        const ga = flow.residual(a, n);
        const gb = flow.residual(b, n);
        let worst = 0;
        for (let r = 0; r < n; r++) {
          let num = 0;
          let den = 0;
          for (let j = 0; j < dim; j++) {
            num += (ga[r * dim + j] - gb[r * dim + j]) ** 2;
            den += (a[r * dim + j] - b[r * dim + j]) ** 2;
          }
          worst = Math.max(worst, Math.sqrt(num / den));
        }
        // Lip(g) ≤ Π σ_max(W_l)·Lip(φ)^(L−1) ≤ c³ here; the measured ratio must not exceed c.
        expect(worst).toBeLessThanOrEqual(c);
        expect(worst).toBeGreaterThan(0);
      };
      check();
      // Inflate the raw weights 50-fold: the normalization still caps every layer at c.
      for (const p of flow.parameters()) if (p.name.endsWith('weight')) for (let i = 0; i < p.value.length; i++) p.value[i] *= 50;
      flow.forward(randomArray(2 * dim, 3), 2, { training: true });
      check();
    });
  }

  it('power iteration runs on training forwards only; u and v are buffers', () => {
    const flow = block({ dim: 3, hidden: [5] });
    expect(flow.buffers().map((b) => b.name)).toEqual(['g.0.weight_u', 'g.0.weight_v', 'g.2.weight_u', 'g.2.weight_v']);
    expect(flow.parameters().map((p) => p.name)).toEqual(['g.0.weight', 'g.0.bias', 'g.2.weight', 'g.2.bias']);
    const w = flow.parameters()[0].value;
    for (let i = 0; i < w.length; i++) w[i] += 0.3 * Math.cos(i);
    const before = flow.buffers().map((b) => Array.from(b.value));
    const x = randomArray(6, 1);
    flow.forward(x, 2);
    flow.inverse(Float64Array.from(flow.forward(x, 2).y), 2);
    expect(flow.buffers().map((b) => Array.from(b.value))).toEqual(before);
    flow.forward(x, 2, { training: true });
    expect(flow.buffers().map((b) => Array.from(b.value))).not.toEqual(before);
  });
});

describe('residual flow: inverse (reference)', () => {
  for (const activation of ACTIVATIONS) {
    for (const logDet of ['exact', 'estimator'] as const) {
      it(`${activation}, ${logDet}: inverse(forward(x)) = x, log-dets opposite`, () => {
        const dim = 5;
        const batch = 7;
        const flow = block({ dim, hidden: [12, 12], activation, logDet });
        const x = randomArray(batch * dim, 41, -3, 3);
        flow.noiseOffset = 100;
        const fwd = flow.forward(x, batch);
        const y = Float64Array.from(fwd.y);
        const ld = Float64Array.from(fwd.logDet);
        flow.noiseOffset = 100; // the same Hutchinson vectors and series lengths
        const inv = flow.inverse(y, batch);
        // Stops at ‖Δx‖∞ ≤ 1e-9, so ‖x − f⁻¹(y)‖∞ ≤ 1e-9·c/(1 − c) = 3.3e-8.
        expectClose(inv.x, x, { atol: 4e-8, rtol: 0 }, 'x');
        // The log-det at a point 3.3e-8 away: its derivative is O(1), so 1e-7.
        expectClose(
          inv.logDet,
          ld.map((v) => -v),
          { atol: 1e-7, rtol: 0 },
          'logDet',
        );
      });
    }
  }

  it('throws ERR_NOT_CONVERGED naming the rows past the iteration budget', () => {
    const flow = block({ dim: 2, hidden: [8], maxInverseIterations: 3 });
    const y = Float64Array.from([0, 0, 2.5, -2.5, 0.1, 0.1]);
    const e = thrown(() => flow.inverse(y, 3));
    expect(e).toBeInstanceOf(FlowVaeError);
    expect(e.code).toBe('ERR_NOT_CONVERGED');
    expect(e.message).toMatch(/^ResidualFlow\.inverse did not converge for rows? [0-9, ]+ \(\d+ in all\) within 3 iterations \(tolerance 1e-9\)$/);
    expect(e.message).toContain('1');
  });
});

describe('residual flow: gradients vs central finite differences (reference)', () => {
  const cases: [string, Partial<ResidualBlockOptions> & { dim: number }][] = [
    ['lipswish, D = 3, two hidden layers, normalization active', { dim: 3, hidden: [5, 4], lipschitz: 0.3 }],
    ['elu, D = 3, two hidden layers', { dim: 3, hidden: [6, 5], activation: 'elu', lipschitz: 0.97 }],
    ['lipswish, D = 1', { dim: 1, hidden: [4] }],
    ['elu, D = 2, three hidden layers', { dim: 2, hidden: [3, 4, 3], activation: 'elu', lipschitz: 0.6 }],
  ];
  for (const [name, options] of cases) {
    it(name, () => {
      const flow = block({ ...options, logDet: 'exact' });
      const batch = 3;
      const d = flow.dim;
      const x = randomArray(batch * d, 51, -1.5, 1.5);
      const wy = randomArray(batch * d, 52);
      const wl = randomArray(batch, 53);
      const loss = () => {
        const out = flow.forward(x, batch);
        return dot(out.y, wy) + dot(out.logDet, wl);
      };
      loss();
      for (const p of flow.parameters()) p.grad.fill(0);
      const g = flow.backward(wy, wl);
      const gx = Float64Array.from(g.gradInput);
      const grads = flow.parameters().map((p) => Float64Array.from(p.grad));
      const numeric = (target: FloatArray) => {
        const out = new Float64Array(target.length);
        for (let i = 0; i < target.length; i++) {
          const s = target[i];
          target[i] = s + 1e-6;
          const up = loss();
          target[i] = s - 1e-6;
          const down = loss();
          target[i] = s;
          out[i] = (up - down) / 2e-6;
        }
        return out;
      };
      // Central differences (h = 1e-6) of a smooth float64 loss: truncation ~1e-12·f''',
      // rounding ~1e-16/1e-6 = 1e-10 per evaluation; ELU's φ'' jumps at 0 but no
      // pre-activation lies within 1e-6 of 0 for these seeds.
      const tol = { atol: 1e-7, rtol: 1e-6 };
      expectClose(gx, numeric(x), tol, 'input');
      flow.parameters().forEach((p, i) => expectClose(grads[i], numeric(p.value), tol, p.name));
    });
  }
});

describe('residual flow: errors', () => {
  it('names the bad option', () => {
    expect(thrown(() => block({ dim: 2, lipschitz: 1.2 })).message).toBe('Expected number in (0, 1) for "lipschitz" but received 1.2 (number)');
    expect(thrown(() => block({ dim: 2, activation: 'relu' as never })).message).toBe(
      'Expected one of "lipswish", "elu" for "activation" but received "relu" (string)',
    );
    expect(thrown(() => block({ dim: 65, logDet: 'exact' })).message).toBe('Expected dim ≤ 64 for "logDet" "exact" but dim is 65; use "estimator"');
    expect(thrown(() => block({ dim: 2, hidden: [3, 0] })).message).toBe('Expected positive integer for "hidden[1]" but received 0 (number)');
    const flow = block({ dim: 2 });
    expect(thrown(() => flow.forward(new Float64Array(4), 2, { context: new Float64Array(2) })).message).toMatch(/"context"/);
    expect(thrown(() => flow.backward(new Float64Array(4), new Float64Array(2))).message).toBe('ResidualFlow.backward called before a successful forward');
    const e = thrown(() => flow.forward(Float64Array.from([0, 0, NaN, 1]), 2));
    expect(e.code).toBe('ERR_NAN');
    expect(e.message).toBe('ResidualFlow.forward: row 1 of "x" is not finite');
  });

  it('is registered as the flow family "residual" (shared parameters only)', () => {
    expect(FLOW_FAMILIES.residual.shareable).toBe(true);
    expect(FLOW_FAMILIES.residual.amortizable).toBe(false);
    const flow = FLOW_FAMILIES.residual.create({ dim: 2, layers: 3, amortized: false, seed: 1, backend: reference, extra: { hidden: [6] } });
    expect(flow.parameters().map((p) => p.name)[0]).toBe('0.g.0.weight');
    expect(flow.buffers!().length).toBe(12);
  });

  it('fits in a FlowDistribution in both directions', () => {
    for (const direction of ['generative', 'normalizing'] as const) {
      const dist = FlowDistribution.create({ dim: 2, flow: 'residual', layers: 2, seed: 1, backend: reference, direction, hidden: [8] });
      const x = randomArray(8, 9, -1, 1);
      expect(Array.from(dist.logProb(x)).every(Number.isFinite)).toBe(true);
      const s = dist.sample(3);
      expect(s.x.length).toBe(6);
      expect(Array.from(s.logProb).every(Number.isFinite)).toBe(true);
      // Maximum likelihood and reverse KL: one through forward only, the other through the inverse.
      expect(Number.isFinite(dist.densityGradients(x))).toBe(true);
      const normal = (z: Float64Array, batch: number, logp: Float64Array, grad: Float64Array | null) => {
        for (let r = 0; r < batch; r++) {
          logp[r] = -0.5 * (z[2 * r] ** 2 + z[2 * r + 1] ** 2);
          if (grad) {
            grad[2 * r] = -z[2 * r];
            grad[2 * r + 1] = -z[2 * r + 1];
          }
        }
      };
      expect(Number.isFinite(dist.reverseKLGradients(normal, 4))).toBe(true);
      for (const p of dist.parameters()) expect(Array.from(p.grad).every(Number.isFinite)).toBe(true);
    }
  });
});

describe.skipIf(!hasCpu())('residual flow: cpu vs reference', () => {
  const cpu = hasCpu() ? backendByName('cpu') : reference;
  const shapes: [string, number, number, number[], 'exact' | 'estimator', 'lipswish' | 'elu'][] = [
    ['batch 1, D = 1', 1, 1, [3], 'exact', 'lipswish'],
    ['batch 5, D = 7 (off every SIMD width)', 5, 7, [9, 17], 'exact', 'elu'],
    ['batch 37, D = 2, wide hidden', 37, 2, [64, 33], 'exact', 'lipswish'],
    ['batch 19, D = 33, estimator', 19, 33, [40], 'estimator', 'lipswish'],
    ['batch 1, D = 3, estimator', 1, 3, [5, 5], 'estimator', 'elu'],
  ];
  for (const [name, batch, dim, hidden, logDet, activation] of shapes) {
    it(name, () => {
      const options = { dim, hidden, logDet, activation, seed: 8 };
      const r = block(options, reference);
      const c = block(options, cpu);
      const x = randomArray(batch * dim, 61, -2, 2);
      const x32 = Float32Array.from(x);
      const x64 = Float64Array.from(x32);
      const fr = r.forward(x64, batch, { training: true });
      const fc = c.forward(x32, batch, { training: true });
      // float32 network passes (≤ ~130 terms per sum, values O(1)): 1e-5; the log-det
      // adds the float32 Jacobian's rounding through an LU in float64: 1e-4.
      expectClose(fc.y, fr.y, { atol: 2e-5, rtol: 1e-5 }, 'y');
      expectClose(fc.logDet, fr.logDet, { atol: 1e-4, rtol: 1e-4 }, 'logDet');
      const dy = randomArray(batch * dim, 62);
      const dl = randomArray(batch, 63);
      const gr = r.backward(Float64Array.from(dy), Float64Array.from(dl));
      const gc = c.backward(Float32Array.from(dy), Float32Array.from(dl));
      // Gradients sum over rows and layers in float32: relative 1e-3 of the largest entry.
      expectClose(gc.gradInput, gr.gradInput, { atol: 2e-4, rtol: 1e-3 }, 'gradInput');
      r.parameters().forEach((p, i) => {
        const scale = Math.max(1, ...Array.from(p.grad, Math.abs));
        expectClose(c.parameters()[i].grad, p.grad, { atol: 5e-4 * scale, rtol: 1e-3 }, p.name);
      });
      r.buffers().forEach((b, i) => expectClose(c.buffers()[i].value, b.value, { atol: 1e-4, rtol: 1e-4 }, b.name));
      const y = Float64Array.from(fc.y);
      r.noiseOffset = 7;
      c.noiseOffset = 7;
      const ir = r.inverse(Float64Array.from(Float32Array.from(y)), batch);
      const ic = c.inverse(Float32Array.from(y), batch);
      // Both iterate in float64 to ‖Δx‖∞ ≤ 1e-9; they differ by the float32 rounding of the weights and of x.
      expectClose(ic.x, ir.x, { atol: 2e-5, rtol: 1e-5 }, 'inverse x');
      expectClose(ic.logDet, ir.logDet, { atol: 1e-4, rtol: 1e-4 }, 'inverse logDet');
      expectClose(ic.x, x32, { atol: 3e-5, rtol: 1e-5 }, 'round trip');
    });
  }

  it('gradients are the same bits at 1, 2 and 3 threads', () => {
    const before = getNumThreads();
    try {
      const results: Float32Array[][] = [];
      for (const threads of [1, 2, 3]) {
        setNumThreads(threads);
        const flow = block({ dim: 4, hidden: [32, 32] }, cpu);
        const batch = 300;
        flow.forward(Float32Array.from(randomArray(batch * 4, 71)), batch);
        flow.backward(Float32Array.from(randomArray(batch * 4, 72)), Float32Array.from(randomArray(batch, 73)));
        results.push(flow.parameters().map((p) => Float32Array.from(p.grad)));
      }
      for (const other of results.slice(1)) other.forEach((g, i) => expect(Array.from(g)).toEqual(Array.from(results[0][i])));
    } finally {
      setNumThreads(before);
    }
  });

  it('the scalar and AVX2 paths agree (forward, backward, inverse)', () => {
    const cpuInfo = backends().find((b) => b.name === 'cpu')!;
    if (cpuInfo.simd === 'scalar') return; // nothing to compare on a CPU without AVX2
    const scalar = runCappedSimd<{ simd: string; values: number[] }>('residual.simd.ts', 'scalar');
    const avx2 = runCappedSimd<{ simd: string; values: number[] }>('residual.simd.ts', 'avx2');
    expect(scalar.values.length).toBeGreaterThan(500);
    // sgemm contracts with FMA on AVX2 (one rounding less per product): float32
    // rounding differences, ≤ 1e-4 relative after the LU and the row sums.
    expectClose(avx2.values, scalar.values, { atol: 1e-5, rtol: 1e-4 }, 'avx2 vs scalar');
  });

  it('the binding names bad arguments', () => {
    const k = cpu.residual;
    const sizes = Uint32Array.from([2, 3, 2]);
    const net = new Float32Array(3 * 3 + 2 * 4);
    const y = new Float32Array(4);
    expect(
      thrown(() => k.forward(new Float64Array(4), net, sizes, 'lipswish', null, null, 0.5, 2, y, new Float32Array(2), new Float32Array(2 * 7), 2)).message,
    ).toBe('Expected Float32Array for "x" but received Float64Array(4)');
    expect(
      thrown(() =>
        k.forward(new Float32Array(4), net, Uint32Array.from([2, 3, 1]), 'lipswish', null, null, 0.5, 2, y, new Float32Array(2), new Float32Array(14), 2),
      ).message,
    ).toBe('Expected layer widths [D, H..., D] as a Uint32Array of 2 to 65 integers in [1, 65536] for "sizes" but received Uint32Array(3)');
    expect(
      thrown(() => k.forward(new Float32Array(4), net, sizes, 'lipswish', null, null, 0.5, 2, y, new Float32Array(2), new Float32Array(13), 2)).message,
    ).toBe('Expected Float32Array of length 14 for "stash" but received Float32Array(13)');
  });
});
