/**
 * Radial flows: kernels (cpu against the float64 reference, reference against
 * finite differences, log-det against the numerical Jacobian, closed-form
 * inverse), the constraint β > −α, the point z = z0, extreme inputs, argument
 * errors and the RadialFlow module.
 */
import { describe, expect, it } from 'vitest';
import { backendByName, getNumThreads, setNumThreads } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import type { FloatArray } from '../src/backend/types';
import { radialParamSize } from '../src/backend/kernels/radial';
import { loadNative } from '../src/backend/native';
import { FlowVaeError } from '../src/errors';
import { RadialFlow } from '../src/flows';
import {
  crossCheck,
  expectFiniteOrCodedError,
  gradientCheck,
  jacobianCheck,
  logAbsDet,
  roundTripCheck,
  runStack,
  shapeName,
  stackData,
  thrown,
  type FamilyUnderTest,
  type Shape,
} from './flow-stack-helpers';
import { describeBackends, expectClose, hasCpu, randomArray } from './helpers';

const reference = backendByName('reference');
const RADIAL: FamilyUnderTest = { name: 'radial', paramSize: radialParamSize, kernels: (b) => b.radial, saved: 'x' };

function shapes(list: [number, number, number][]): Shape[] {
  return list.flatMap(([batch, dim, layers]) => [false, true].map((amortized) => ({ batch, dim, layers, amortized })));
}

// B = 1; D = 1, 2 and off every SIMD width (7, 33); K = 1 and 32; batches that
// leave partial row groups (19, 37 = 2·16 + 5).
const CROSS_SHAPES = shapes([
  [1, 1, 1],
  [1, 2, 3],
  [5, 7, 4],
  [19, 33, 2],
  [3, 2, 32],
  [37, 40, 16],
  [2, 1, 32],
  [21, 8, 5],
]);

(hasCpu() ? describe : describe.skip)('radial kernels: cpu against reference (skipped when the addon is unavailable)', () => {
  const cpu = hasCpu() ? backendByName('cpu') : reference;
  it.each(CROSS_SHAPES.map((s, i) => [shapeName(s), s, i] as const))('%s', (_name, s, i) => {
    crossCheck(RADIAL, reference, cpu, s, 300 + 10 * i);
  });
});

(hasCpu() ? describe : describe.skip)('radial kernels: multi-threaded shared backward (skipped when the addon is unavailable)', () => {
  it('B = 40000, D = 3 splits into two tasks whose partial sums agree with the reference', () => {
    const cpu = backendByName('cpu');
    const before = getNumThreads();
    setNumThreads(2);
    try {
      const s = { batch: 40000, dim: 3, layers: 2, amortized: false };
      const d = stackData(RADIAL, s, 600);
      const zeros = new Float64Array(s.batch * s.dim);
      const ref = runStack(reference, RADIAL, s, d, zeros);
      const got = runStack(cpu, RADIAL, s, d, zeros);
      expect(got.bad).toEqual([0, 0, 0]);
      // Parameter gradients are sums over 40000 rows: float32 over blocks of
      // 512 rows, float64 across blocks and tasks. The per-row terms carry
      // float32 rounding (~eps relative), which adds up like √B·eps·|term|
      // and, with terms of both signs, is best measured against the largest
      // gradient: 1e-5·max|g| (measured at most 7e-7 of it on every SIMD path).
      let scale = 0;
      for (const v of ref.dParams) scale = Math.max(scale, Math.abs(v));
      expectClose(got.dParams, ref.dParams, { atol: 1e-5 * scale, rtol: 0 }, 'dParams');
      // Per-row input gradients involve no batch sums: the cross-check bound 4e-6·K·√D.
      expectClose(got.dx, ref.dx, { atol: 4e-6 * 2 * Math.sqrt(3), rtol: 4e-6 * 2 * Math.sqrt(3) }, 'dx');
    } finally {
      setNumThreads(before);
    }
  });
});

describe('radial reference: gradients against central finite differences', () => {
  it.each(shapes([[1, 1, 1], [3, 2, 3], [2, 5, 4], [4, 3, 2]]).map((s) => [shapeName(s), s] as const))('%s', (_n, s) => {
    gradientCheck(RADIAL, reference, s, 31);
  });
});

describe('radial reference: log-det against log|det| of the numerical Jacobian', () => {
  it.each(shapes([[2, 1, 3], [2, 2, 1], [2, 5, 3], [2, 8, 4]]).map((s) => [shapeName(s), s] as const))('%s', (_n, s) => {
    jacobianCheck(RADIAL, reference, s, 37);
  });
});

describeBackends(['reference', 'cpu', 'cuda'], 'radial inverse(forward(x)) ≈ x', (backend) => {
  it.each(shapes([[4, 2, 3], [5, 7, 8], [3, 40, 16], [2, 1, 32]]).map((s) => [shapeName(s), s] as const))('%s', (_n, s) => {
    roundTripCheck(RADIAL, backend, s, 41);
  });
});

/** Writes z0, α̃, β̃ of every layer into a RadialFlow's shared parameters. */
function setShared(flow: RadialFlow, z0: number[], alphaRaw: number, betaRaw: number): void {
  const [pz, pa, pb] = flow.parameters();
  for (let k = 0; k < flow.layers; k++) pz.value.set(z0, k * flow.dim);
  pa.value.fill(alphaRaw);
  pb.value.fill(betaRaw);
}

const softplus = (x: number) => Math.log1p(Math.exp(x));

describeBackends(['reference', 'cpu', 'cuda'], 'radial: constraint and special points', (backend) => {
  const tol = backend.dtype === 'float64' ? 1e-10 : 2e-6;

  it('β → −α (β̃ = −30) stays invertible: det > 0 and the round trip holds away from z0', () => {
    const flow = new RadialFlow({ dim: 2, layers: 1, backend });
    setShared(flow, [0.3, -0.2], 0.5, -30);
    const x = backend.from([1.3, 0.8, -0.7, 0.1, 0.35, -0.25]);
    const xs = Float64Array.from(x);
    const { y, logDet } = flow.forward(x, 3);
    const alpha = softplus(0.5);
    const beta = -alpha + softplus(-30);
    for (let r = 0; r < 3; r++) {
      const dz = [xs[2 * r] - 0.3, xs[2 * r + 1] + 0.2];
      const rad = Math.hypot(dz[0], dz[1]);
      const h = 1 / (alpha + rad);
      // 1 + βh and 1 + βh + βh'r, both positive because β > −α.
      const a = 1 + beta * h;
      const b = 1 + beta * h - beta * rad * h * h;
      expect(a).toBeGreaterThan(0);
      expect(b).toBeGreaterThan(0);
      // log-det to float32 relative accuracy of its arguments (absolute 1e-6 on the log).
      expect(Math.abs(logDet[r] - (Math.log(a) + Math.log(b)))).toBeLessThan(backend.dtype === 'float64' ? 1e-12 : 1e-6);
    }
    const back = flow.inverse(backend.from(y), 3);
    expectClose(back.x, xs, { atol: backend.dtype === 'float64' ? 1e-9 : 1e-5, rtol: 0 }, 'round trip');
  });

  it('z = z0 exactly: y = z0, log-det = D·log(softplus(β̃)/α), finite gradients', () => {
    const dim = 3;
    const flow = new RadialFlow({ dim, layers: 1, backend });
    setShared(flow, [0.25, -0.5, 0.75], 0.2, 0.4);
    const x = backend.from([0.25, -0.5, 0.75]);
    const { y, logDet } = flow.forward(x, 1);
    expectClose(y, [0.25, -0.5, 0.75], { atol: 0, rtol: 0 }, 'y');
    expect(Math.abs(logDet[0] - dim * Math.log(softplus(0.4) / softplus(0.2)))).toBeLessThan(tol);
    const g = flow.backward(backend.from([1, -1, 0.5]), backend.from([1]));
    expect(Array.from(g.gradInput).every(Number.isFinite)).toBe(true);
    expect(flow.parameters().every((p) => Array.from(p.grad).every(Number.isFinite))).toBe(true);
    // y = z0 + (1 + β/α)(z − z0) near z0, so ∂(gᵀy)/∂z = (1 + β/α)g.
    const ratio = 1 + (softplus(0.4) - softplus(0.2)) / softplus(0.2);
    expectClose(g.gradInput, [ratio, -ratio, 0.5 * ratio], { atol: tol, rtol: tol }, 'dx');
  });

  it('the closed-form inverse gives z0 back from y = z0', () => {
    const flow = new RadialFlow({ dim: 2, layers: 2, backend });
    setShared(flow, [0.1, 0.2], -1, 1);
    const { x } = flow.inverse(backend.from([0.1, 0.2]), 1);
    expectClose(x, [0.1, 0.2], { atol: tol, rtol: 0 }, 'x');
  });

  it('numerical Jacobian at β close to −α (D = 3)', () => {
    if (backend.dtype !== 'float64') return; // finite differences need float64
    const flow = new RadialFlow({ dim: 3, layers: 2, backend });
    setShared(flow, [0.1, -0.1, 0.2], 1.5, -8);
    const x0 = [0.4, 0.3, -0.2];
    const ld = flow.forward(backend.from(x0), 1).logDet[0];
    const jac = new Float64Array(9);
    for (let j = 0; j < 3; j++) {
      const up = [...x0];
      const down = [...x0];
      up[j] += 1e-6;
      down[j] -= 1e-6;
      const yu = Float64Array.from(flow.forward(backend.from(up), 1).y);
      const yd = flow.forward(backend.from(down), 1).y;
      for (let i = 0; i < 3; i++) jac[i * 3 + j] = (yu[i] - yd[i]) / 2e-6;
    }
    expect(Math.abs(logAbsDet(jac, 3) - ld)).toBeLessThan(1e-6);
  });
});

describeBackends(['reference', 'cpu', 'cuda'], 'radial: extreme inputs give finite values or a clear error', (backend) => {
  const dim = 3;
  const layers = 4;
  const KD = layers * dim;
  const cases: [string, number, (p: FloatArray) => void][] = [
    ['|z| = 1e4', 1e4, () => {}],
    ['tiny parameters (1e-30)', 1, (p) => p.fill(1e-30)],
    ['huge parameters (1e4)', 1, (p) => p.fill(1e4)],
    ['huge α̃, β̃ → −∞ (β → −α)', 1, (p) => {
      p.fill(1e4, KD, KD + layers);
      p.fill(-1e4, KD + layers);
    }],
    ['α̃ → −∞ (α → 0)', 1, (p) => p.fill(-1e4, KD, KD + layers)],
    ['|z| = 1e4 with huge parameters', 1e4, (p) => p.fill(-1e3)],
  ];
  for (const amortized of [false, true]) {
    it.each(cases)(`%s (${amortized ? 'amortized' : 'shared'})`, (_name, scale, setParams) => {
      const flow = new RadialFlow({ dim, layers, amortized, seed: 3, backend });
      const batch = 5;
      const x = backend.from(randomArray(batch * dim, 17, -scale, scale));
      let params: FloatArray | undefined;
      if (amortized) {
        params = backend.from(randomArray(batch * flow.amortizedSize, 18, -0.5, 0.5));
        for (let r = 0; r < batch; r++) setParams(params.subarray(r * flow.amortizedSize, (r + 1) * flow.amortizedSize));
      } else {
        const [pz, pa, pb] = flow.parameters();
        const flat = backend.alloc(KD + 2 * layers);
        flat.set(pz.value, 0);
        flat.set(pa.value, KD);
        flat.set(pb.value, KD + layers);
        setParams(flat);
        pz.value.set(flat.subarray(0, KD));
        pa.value.set(flat.subarray(KD, KD + layers));
        pb.value.set(flat.subarray(KD + layers));
      }
      const options = params ? { params } : undefined;
      const forward = expectFiniteOrCodedError(() => {
        const out = flow.forward(x, batch, options);
        return [out.y, out.logDet];
      }, ['ERR_NAN']);
      if (forward === 'finite') {
        expectFiniteOrCodedError(() => {
          const g = flow.backward(backend.from(randomArray(batch * dim, 19)), backend.from(randomArray(batch, 20)));
          return g.gradParams ? [g.gradInput, g.gradParams] : [g.gradInput, ...flow.parameters().map((p) => p.grad)];
        }, ['ERR_NAN']);
        expectFiniteOrCodedError(() => {
          const y = backend.from(flow.forward(x, batch, options).y);
          const inv = flow.inverse(y, batch, options);
          return [inv.x, inv.logDet];
        }, ['ERR_NAN', 'ERR_NOT_CONVERGED']);
      }
    });
  }

  it('a NaN input is reported with its row', () => {
    const flow = new RadialFlow({ dim: 2, layers: 2, backend });
    const e = thrown(() => flow.forward(backend.from([0.1, 0.2, 0.3, 0.4, Infinity, 0.6]), 3));
    expect(e).toBeInstanceOf(FlowVaeError);
    expect(e.code).toBe('ERR_NAN');
    expect(e.message).toBe('RadialFlow.forward: row 2 of "x" is not finite');
  });

  it('a NaN gradient is reported with its row', () => {
    const flow = new RadialFlow({ dim: 2, layers: 2, backend });
    flow.forward(backend.from([0.1, 0.2, 0.3, 0.4]), 2);
    const e = thrown(() => flow.backward(backend.from([0, 0, NaN, 0]), backend.from([1, 1])));
    expect(e.code).toBe('ERR_NAN');
    expect(e.message).toBe('RadialFlow.backward: row 1 of "gradOutput" is not finite');
  });
});

describeBackends(['reference', 'cpu', 'cuda'], 'radial kernels: bad arguments', (backend) => {
  const kind = backend.dtype === 'float32' ? 'Float32Array' : 'Float64Array';
  const [batch, dim, layers] = [3, 2, 2];
  const x = backend.alloc(batch * dim);
  const params = backend.alloc(layers * radialParamSize(dim));
  const stash = backend.alloc(batch * layers);
  it('wrong length of the saved input', () => {
    const e = thrown(() =>
      backend.radial.backward(backend.alloc(5), stash, params, x, backend.alloc(3), backend.alloc(6), backend.alloc(8), batch, dim, layers, false),
    );
    expect(e).toBeInstanceOf(RangeError);
    expect(e.code).toBe('ERR_SHAPE');
    expect(e.message).toBe(`Expected ${kind} of length 6 for "x" but received ${kind}(5)`);
  });
  it('parameters are dim + 2 per layer', () => {
    const e = thrown(() => backend.radial.forward(x, backend.alloc(10), backend.alloc(6), backend.alloc(3), null, stash, batch, dim, layers, false));
    expect(e.code).toBe('ERR_SHAPE');
    expect(e.message).toBe(`Expected ${kind} of length 8 for "params" but received ${kind}(10)`);
  });
  it('an inverse output overlapping its input', () => {
    const e = thrown(() => backend.radial.inverse(x, params, x, backend.alloc(3), batch, dim, layers, false));
    expect(e).toBeInstanceOf(RangeError);
    expect(e.message).toBe(`Expected ${kind} not overlapping "y" for "x" but received ${kind}(6)`);
  });
  it('a missing optional output is allowed, a wrong one is not', () => {
    expect(backend.radial.forward(x, params, backend.alloc(6), backend.alloc(3), null, stash, batch, dim, layers, false)).toBe(0);
    const e = thrown(() =>
      backend.radial.forward(x, params, backend.alloc(6), backend.alloc(3), backend.alloc(5), stash, batch, dim, layers, false),
    );
    expect(e.message).toBe(`Expected ${kind} of length 6 for "layerLogDet" but received ${kind}(5)`);
  });
  if (backend.name === 'cpu') {
    it('too few arguments (binding)', () => {
      const addon = loadNative() as unknown as { radialInverse: (...args: unknown[]) => number };
      const e = thrown(() => addon.radialInverse(x));
      expect(e).toBeInstanceOf(TypeError);
      expect(e.message).toBe('radialInverse expects 8 arguments but received 1');
    });
  }
});

describeBackends(['reference', 'cpu', 'cuda'], 'RadialFlow module', (backend: Backend) => {
  it('named parameters z0 [K, D], alpha [K], beta [K]; amortizedSize when amortized', () => {
    const flow = new RadialFlow({ dim: 3, layers: 4, backend });
    expect(flow.parameters().map((p) => [p.name, p.shape])).toEqual([
      ['z0', [4, 3]],
      ['alpha', [4]],
      ['beta', [4]],
    ]);
    expect(flow.kind).toBe('radial');
    const am = new RadialFlow({ dim: 3, layers: 4, amortized: true, backend });
    expect(am.parameters()).toEqual([]);
    expect(am.amortizedSize).toBe(4 * 5);
  });

  it('backward uses the input of the last forward', () => {
    const flow = new RadialFlow({ dim: 2, layers: 3, seed: 5, backend });
    const x1 = backend.from(randomArray(4, 1));
    const x2 = backend.from(randomArray(4, 2));
    flow.forward(x1, 2);
    for (const p of flow.parameters()) p.grad.fill(0);
    const g1 = Float64Array.from(flow.backward(backend.from([1, 0, 0, 1]), backend.from([1, 1])).gradInput);
    flow.forward(x2, 2);
    flow.forward(x1, 2);
    const g2 = flow.backward(backend.from([1, 0, 0, 1]), backend.from([1, 1])).gradInput;
    expectClose(g2, g1, { atol: 0, rtol: 0 }, 'same forward, same gradient');
  });

  it('bad options', () => {
    let e = thrown(() => new RadialFlow({ dim: 2, layers: 2, amortized: false, context: 3 } as never));
    expect(e).toBeInstanceOf(RangeError);
    expect(e.message).toBe(
      'Unknown option "context" in "options"; expected one of "dim", "layers", "amortized", "seed", "backend", "keepLayerLogDets"',
    );
    e = thrown(() => new RadialFlow({ dim: 2.5, backend }));
    expect(e.message).toBe('Expected positive integer for "dim" but received 2.5 (number)');
    e = thrown(() => new RadialFlow({ dim: 2, keepLayerLogDets: 1 as never, backend }));
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toBe('Expected boolean for "keepLayerLogDets" but received 1 (number)');
  });

  if (backend.name === 'cpu') {
    it('module forward and backward match the reference module with the same parameters', () => {
      const cpuFlow = new RadialFlow({ dim: 5, layers: 6, seed: 8, backend });
      const refFlow = new RadialFlow({ dim: 5, layers: 6, seed: 8, backend: reference });
      refFlow.parameters().forEach((p, i) => expect(Array.from(cpuFlow.parameters()[i].value)).toEqual(Array.from(p.value, Math.fround)));
      const x = Float64Array.from(Float32Array.from(randomArray(35, 9, -2, 2)));
      const a = cpuFlow.forward(backend.from(x), 7);
      const b = refFlow.forward(x, 7);
      // Same bounds as the kernel cross-check (K = 6, D = 5).
      const growth = 6 * Math.sqrt(5);
      expectClose(a.y, b.y, { atol: 2e-7 * growth * 2, rtol: 0 }, 'y');
      expectClose(a.logDet, b.logDet, { atol: 2e-7 * growth * 4, rtol: 0 }, 'logDet');
      const gy = randomArray(35, 10);
      const gl = randomArray(7, 11);
      const ga = cpuFlow.backward(backend.from(gy), backend.from(gl));
      const gb = refFlow.backward(gy, gl);
      expectClose(ga.gradInput, gb.gradInput, { atol: 4e-6 * growth * 4, rtol: 0 }, 'dx');
      refFlow.parameters().forEach((p, i) => expectClose(cpuFlow.parameters()[i].grad, p.grad, { atol: 4e-6 * growth * 20, rtol: 0 }, p.name));
    });
  }
});
