/**
 * Planar flows: kernels (cpu against the float64 reference, reference against
 * finite differences, log-det against the numerical Jacobian, inverse), the
 * invertibility reparametrization, extreme inputs, argument errors, the
 * PlanarFlow module, and a FlowSequence mixing planar and radial layers.
 */
import { describe, expect, it } from 'vitest';
import { backendByName, getNumThreads, setNumThreads } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import type { FloatArray } from '../src/backend/types';
import { planarParamSize } from '../src/backend/kernels/planar';
import { loadNative } from '../src/backend/native';
import { FlowVaeError } from '../src/errors';
import { FlowSequence, PlanarFlow, RadialFlow } from '../src/flows';
import {
  crossCheck,
  expectFiniteOrCodedError,
  gradientCheck,
  jacobianCheck,
  roundTripCheck,
  runStack,
  shapeName,
  stackData,
  thrown,
  type FamilyUnderTest,
  type Shape,
} from './flow-stack-helpers';
import { describeBackends, dot, expectClose, hasCpu, randomArray } from './helpers';

const reference = backendByName('reference');
const PLANAR: FamilyUnderTest = { name: 'planar', paramSize: planarParamSize, kernels: (b) => b.planar, saved: 'y' };

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

(hasCpu() ? describe : describe.skip)('planar kernels: cpu against reference (skipped when the addon is unavailable)', () => {
  const cpu = hasCpu() ? backendByName('cpu') : reference;
  it.each(CROSS_SHAPES.map((s, i) => [shapeName(s), s, i] as const))('%s', (_name, s, i) => {
    crossCheck(PLANAR, reference, cpu, s, 100 + 10 * i);
  });
});

(hasCpu() ? describe : describe.skip)('planar kernels: multi-threaded shared backward (skipped when the addon is unavailable)', () => {
  it('B = 40000, D = 3 splits into two tasks whose partial sums agree with the reference', () => {
    const cpu = backendByName('cpu');
    const before = getNumThreads();
    setNumThreads(2);
    try {
      const s = { batch: 40000, dim: 3, layers: 2, amortized: false };
      const d = stackData(PLANAR, s, 500);
      const zeros = new Float64Array(s.batch * s.dim);
      const ref = runStack(reference, PLANAR, s, d, zeros);
      const got = runStack(cpu, PLANAR, s, d, zeros);
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

describe('planar reference: gradients against central finite differences', () => {
  it.each(shapes([[1, 1, 1], [3, 2, 3], [2, 5, 4], [4, 3, 2]]).map((s) => [shapeName(s), s] as const))('%s', (_n, s) => {
    gradientCheck(PLANAR, reference, s, 7);
  });
});

describe('planar reference: log-det against log|det| of the numerical Jacobian', () => {
  it.each(shapes([[2, 1, 3], [2, 2, 1], [2, 5, 3], [2, 8, 4]]).map((s) => [shapeName(s), s] as const))('%s', (_n, s) => {
    jacobianCheck(PLANAR, reference, s, 11);
  });
});

describeBackends(['reference', 'cpu', 'cuda'], 'planar inverse(forward(x)) ≈ x', (backend) => {
  it.each(shapes([[4, 2, 3], [5, 7, 8], [3, 40, 16], [2, 1, 32]]).map((s) => [shapeName(s), s] as const))('%s', (_n, s) => {
    roundTripCheck(PLANAR, backend, s, 13);
  });
});

/** m(x) = −1 + softplus(x), computed independently of the library. */
function m(x: number): number {
  return -1 + Math.log1p(Math.exp(x));
}

describeBackends(['reference', 'cpu', 'cuda'], 'planar: a raw u with wᵀu < −1 is made invertible', (backend) => {
  // w = (1, 0.5), u = (−3, −1): wᵀu = −3.5, so the raw layer z + u tanh(wᵀz + b)
  // has det 1 + (1 − t²)wᵀu = −2.5 at t = 0 (not invertible).
  const w = [1, 0.5];
  const u = [-3, -1];
  const b = 0.25;
  const wu = w[0] * u[0] + w[1] * u[1];
  const wn2 = w[0] ** 2 + w[1] ** 2;
  const uHat = u.map((ui, i) => ui + ((m(wu) - wu) * w[i]) / wn2);

  it('the raw layer would fold (det < 0) and û restores wᵀû = m(wᵀu) > −1', () => {
    expect(1 + wu).toBeLessThan(-2);
    expect(w[0] * uHat[0] + w[1] * uHat[1]).toBeCloseTo(m(wu), 12);
    expect(m(wu)).toBeGreaterThan(-1);
  });

  it('1 + ûᵀψ(z) > 0 across z, equal to the per-layer log-det, and the round trip holds', () => {
    const flow = new PlanarFlow({ dim: 2, layers: 1, backend, keepLayerLogDets: true });
    const [pu, pw, pb] = flow.parameters();
    pu.value.set(u);
    pw.value.set(w);
    pb.value.set([b]);
    // A grid across the fold: wᵀz + b from −4 to 4.
    const n = 41;
    const x = backend.alloc(2 * n);
    for (let i = 0; i < n; i++) {
      x[2 * i] = -4 + (8 * i) / (n - 1) - b;
      x[2 * i + 1] = 0;
    }
    const xCopy = Float64Array.from(x);
    const { y, logDet } = flow.forward(x, n);
    const perLayer = flow.layerLogDets();
    // float32 on cpu: log-det to a few float32 ulps of values near 1.
    const tol = backend.dtype === 'float64' ? 1e-12 : 1e-6;
    for (let i = 0; i < n; i++) {
      const t = Math.tanh(w[0] * xCopy[2 * i] + w[1] * xCopy[2 * i + 1] + b);
      const psi = w.map((wi) => (1 - t * t) * wi);
      const det = 1 + uHat[0] * psi[0] + uHat[1] * psi[1];
      expect(det).toBeGreaterThan(0);
      expect(Math.abs(perLayer[i] - Math.log(det))).toBeLessThan(tol);
      expect(Math.abs(logDet[i] - Math.log(det))).toBeLessThan(tol);
    }
    const back = flow.inverse(backend.from(y), n);
    expectClose(back.x, xCopy, { atol: backend.dtype === 'float64' ? 1e-9 : 2e-5, rtol: 0 }, 'round trip');
  });
});

describeBackends(['reference', 'cpu', 'cuda'], 'planar inverse where plain Newton bounces across the knee of tanh', (backend) => {
  // One layer with wᵀû = m ≈ 4 (a steep tanh): solving α + m·tanh(α + b) = wᵀy
  // from the usual start, Newton jumps between α ≈ −1.7 and α ≈ 3.2 while the
  // bracket shrinks by ~1% a step, and 200 steps are not enough. Found on a
  // planar K = 32 flow fitted to U1; the solver must bisect when Newton stalls.
  it('converges and round-trips', () => {
    const flow = new PlanarFlow({ dim: 1, layers: 1, backend });
    const [pu, pw, pb] = flow.parameters();
    const w = 2.99839;
    const target = 2.161180528510082;
    const mTarget = 4.005307598297108;
    // softplus(wu) − 1 = m  ⇒  wu = log(e^{m+1} − 1); û = m / w.
    pu.value.set([Math.log(Math.expm1(mTarget + 1)) / w]);
    pw.value.set([w]);
    pb.value.set([0.06856092065572739]);
    const y = backend.from([target / w]);
    const { x } = flow.inverse(y, 1);
    const again = flow.forward(backend.from(x), 1).y;
    // float32 on cpu: y ≈ 0.72 to a few ulps (the solve itself is float64).
    expect(Math.abs(again[0] - y[0])).toBeLessThan(backend.dtype === 'float64' ? 1e-12 : 1e-6);
  });
});

/** Applies `edit` to the shared parameters laid out as the kernels see them (u | w | b). */
function editShared(flow: PlanarFlow | RadialFlow, edit: (flat: FloatArray) => void): void {
  const params = flow.parameters();
  const flat = flow.backend.alloc(params.reduce((n, p) => n + p.value.length, 0));
  let offset = 0;
  for (const p of params) {
    flat.set(p.value, offset);
    offset += p.value.length;
  }
  edit(flat);
  offset = 0;
  for (const p of params) {
    p.value.set(flat.subarray(offset, offset + p.value.length));
    offset += p.value.length;
  }
}

describeBackends(['reference', 'cpu', 'cuda'], 'planar: extreme inputs give finite values or a clear error', (backend) => {
  const dim = 3;
  const layers = 4;
  const cases: [string, number, (p: FloatArray) => void][] = [
    ['|z| = 1e4', 1e4, () => {}],
    ['tiny parameters (1e-30)', 1, (p) => p.fill(1e-30)],
    ['w = 0 exactly', 1, (p) => p.fill(0, layers * dim, 2 * layers * dim)],
    ['huge parameters (1e4)', 1, (p) => p.fill(1e4)],
    ['huge u, tiny w', 1, (p) => {
      p.fill(1e4, 0, layers * dim);
      p.fill(1e-3, layers * dim, 2 * layers * dim);
    }],
    ['|z| = 1e4 with huge parameters', 1e4, (p) => p.fill(-1e3)],
  ];
  for (const amortized of [false, true]) {
    it.each(cases)(`%s (${amortized ? 'amortized' : 'shared'})`, (_name, scale, setParams) => {
      const flow = new PlanarFlow({ dim, layers, amortized, seed: 3, backend });
      const batch = 5;
      const x = backend.from(randomArray(batch * dim, 17, -scale, scale));
      let params: FloatArray | undefined;
      if (amortized) {
        params = backend.from(randomArray(batch * flow.amortizedSize, 18, -0.5, 0.5));
        for (let r = 0; r < batch; r++) setParams(params.subarray(r * flow.amortizedSize, (r + 1) * flow.amortizedSize));
      } else {
        editShared(flow, setParams);
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
    const flow = new PlanarFlow({ dim: 2, layers: 2, backend });
    const x = backend.from([0.1, 0.2, 0.3, NaN, 0.5, 0.6]);
    const e = thrown(() => flow.forward(x, 3));
    expect(e).toBeInstanceOf(FlowVaeError);
    expect(e.code).toBe('ERR_NAN');
    expect(e.message).toBe('PlanarFlow.forward: row 1 of "x" is not finite');
  });

  it('a NaN amortized parameter is reported with its row', () => {
    const flow = new PlanarFlow({ dim: 2, layers: 1, amortized: true, backend });
    const params = backend.from(randomArray(2 * flow.amortizedSize, 3));
    params[flow.amortizedSize + 1] = NaN;
    const e = thrown(() => flow.forward(backend.from([0, 0, 0, 0]), 2, { params }));
    expect(e.code).toBe('ERR_NAN');
    expect(e.message).toBe('PlanarFlow.forward: row 1 of "params" is not finite');
  });

  it('a NaN in the inverse input is ERR_NAN, not ERR_NOT_CONVERGED', () => {
    const flow = new PlanarFlow({ dim: 2, layers: 2, backend });
    const e = thrown(() => flow.inverse(backend.from([0.5, NaN]), 1));
    expect(e.code).toBe('ERR_NAN');
    expect(e.message).toBe('PlanarFlow.inverse: row 0 of "y" is not finite');
  });
});

function kernelArgs(backend: Backend) {
  const [batch, dim, layers] = [3, 2, 2];
  const P = planarParamSize(dim);
  return {
    x: backend.alloc(batch * dim),
    params: backend.alloc(layers * P),
    y: backend.alloc(batch * dim),
    logDet: backend.alloc(batch),
    stash: backend.alloc(batch * layers),
    batch,
    dim,
    layers,
  };
}

describeBackends(['reference', 'cpu', 'cuda'], 'planar kernels: bad arguments', (backend) => {
  const kind = backend.dtype === 'float32' ? 'Float32Array' : 'Float64Array';
  const other = backend.dtype === 'float32' ? new Float64Array(6) : new Int32Array(6);
  const a = kernelArgs(backend);
  const call = (over: Partial<Record<string, unknown>>) => () => {
    const v = { ...a, amortized: false, layerLogDet: null, ...over } as Record<string, unknown>;
    return backend.planar.forward(
      v.x as FloatArray,
      v.params as FloatArray,
      v.y as FloatArray,
      v.logDet as FloatArray,
      v.layerLogDet as FloatArray | null,
      v.stash as FloatArray,
      v.batch as number,
      v.dim as number,
      v.layers as number,
      v.amortized as boolean,
    );
  };
  it('valid arguments run', () => {
    expect(call({})()).toBe(0);
  });
  it('wrong array kind', () => {
    const e = thrown(call({ x: other }));
    expect(e).toBeInstanceOf(TypeError);
    expect(e.code).toBe('ERR_ARG');
    const received = other instanceof Float64Array ? 'Float64Array(6)' : 'Int32Array(6)';
    expect(e.message).toBe(`Expected ${backend.dtype === 'float32' ? 'Float32Array' : 'Float32Array or Float64Array'} for "x" but received ${received}`);
  });
  it('wrong length', () => {
    const e = thrown(call({ params: backend.alloc(9) }));
    expect(e).toBeInstanceOf(RangeError);
    expect(e.code).toBe('ERR_SHAPE');
    expect(e.message).toBe(`Expected ${kind} of length 10 for "params" but received ${kind}(9)`);
  });
  it('amortized parameters need batch·K·P values', () => {
    const e = thrown(call({ amortized: true }));
    expect(e.code).toBe('ERR_SHAPE');
    expect(e.message).toBe(`Expected ${kind} of length 30 for "params" but received ${kind}(10)`);
  });
  it('sizes', () => {
    let e = thrown(call({ dim: 0 }));
    expect(e).toBeInstanceOf(RangeError);
    expect(e.message).toBe('Expected positive integer for "dim" but received 0 (number)');
    e = thrown(call({ batch: -1 }));
    expect(e.message).toBe('Expected non-negative integer for "batch" but received -1 (number)');
    e = thrown(call({ layers: 1.5 }));
    expect(e.message).toBe('Expected positive integer for "layers" but received 1.5 (number)');
    e = thrown(call({ layers: '2' }));
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toBe('Expected positive integer for "layers" but received "2" (string)');
    e = thrown(call({ amortized: 1 }));
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toBe('Expected boolean for "amortized" but received 1 (number)');
  });
  it('an output overlapping an input', () => {
    const buf = backend.alloc(12);
    const e = thrown(call({ x: buf.subarray(0, 6), y: buf.subarray(4, 10) }));
    expect(e).toBeInstanceOf(RangeError);
    expect(e.code).toBe('ERR_ARG');
    expect(e.message).toBe(`Expected ${kind} not overlapping "x" for "y" but received ${kind}(6)`);
  });
  it('backward checks its arguments too', () => {
    const e = thrown(() =>
      backend.planar.backward(a.y, a.stash, a.params, a.y, a.logDet, backend.alloc(5), backend.alloc(10), 3, 2, 2, false),
    );
    expect(e.code).toBe('ERR_SHAPE');
    expect(e.message).toBe(`Expected ${kind} of length 6 for "dx" but received ${kind}(5)`);
  });
  if (backend.name === 'cpu') {
    it('too few arguments (binding)', () => {
      const addon = loadNative() as unknown as { planarForward: (...args: unknown[]) => number };
      const e = thrown(() => addon.planarForward(a.x, a.params, a.y));
      expect(e).toBeInstanceOf(TypeError);
      expect(e.message).toBe('planarForward expects 10 arguments but received 3');
    });
  }
});

describeBackends(['reference', 'cpu', 'cuda'], 'PlanarFlow module', (backend) => {
  it('named parameters u [K, D], w [K, D], b [K]; amortizedSize when amortized', () => {
    const flow = new PlanarFlow({ dim: 3, layers: 4, backend });
    expect(flow.parameters().map((p) => [p.name, p.shape])).toEqual([
      ['u', [4, 3]],
      ['w', [4, 3]],
      ['b', [4]],
    ]);
    expect(flow.amortizedSize).toBe(0);
    expect(flow.kind).toBe('planar');
    const am = new PlanarFlow({ dim: 3, layers: 4, amortized: true, backend });
    expect(am.parameters()).toEqual([]);
    expect(am.amortizedSize).toBe(4 * 7);
  });

  it('seeded initialization: uniform on ±1/√D, reproducible, seed-dependent', () => {
    const a = new PlanarFlow({ dim: 4, layers: 3, seed: 9, backend });
    const b = new PlanarFlow({ dim: 4, layers: 3, seed: 9, backend });
    const c = new PlanarFlow({ dim: 4, layers: 3, seed: 10, backend });
    const values = (f: PlanarFlow) => f.parameters().flatMap((p) => Array.from(p.value));
    expect(values(a)).toEqual(values(b));
    expect(values(a)).not.toEqual(values(c));
    expect(values(a).every((v) => Math.abs(v) <= 0.5)).toBe(true);
  });

  it('shared gradients accumulate over backward calls', () => {
    const flow = new PlanarFlow({ dim: 2, layers: 3, seed: 1, backend });
    const x = backend.from(randomArray(8, 2));
    const gy = backend.from(randomArray(8, 3));
    const gl = backend.from(randomArray(4, 4));
    flow.forward(x, 4);
    flow.backward(gy, gl);
    const once = flow.parameters().map((p) => Float64Array.from(p.grad));
    flow.forward(x, 4);
    flow.backward(gy, gl);
    const tol = backend.dtype === 'float64' ? 1e-12 : 1e-5;
    flow.parameters().forEach((p, i) => expectClose(p.grad, once[i].map((v) => 2 * v), { atol: tol, rtol: tol }, p.name));
  });

  it('per-layer log-dets sum to the log-det', () => {
    const flow = new PlanarFlow({ dim: 3, layers: 5, seed: 2, backend, keepLayerLogDets: true });
    const { logDet } = flow.forward(backend.from(randomArray(6, 5)), 2);
    const per = flow.layerLogDets();
    for (let r = 0; r < 2; r++) {
      let s = 0;
      for (let k = 0; k < 5; k++) s += per[r * 5 + k];
      expect(Math.abs(s - logDet[r])).toBeLessThan(backend.dtype === 'float64' ? 1e-12 : 1e-5);
    }
  });

  it('bad options and calls', () => {
    let e = thrown(() => new PlanarFlow({ dim: 2, foo: 1 } as never));
    expect(e).toBeInstanceOf(RangeError);
    expect(e.message).toBe(
      'Unknown option "foo" in "options"; expected one of "dim", "layers", "amortized", "seed", "backend", "keepLayerLogDets"',
    );
    e = thrown(() => new PlanarFlow({ dim: 0, backend }));
    expect(e.message).toBe('Expected positive integer for "dim" but received 0 (number)');
    e = thrown(() => new PlanarFlow({ dim: 2, layers: 0, backend }));
    expect(e.message).toBe('Expected positive integer for "layers" but received 0 (number)');
    e = thrown(() => new PlanarFlow({ dim: 2, amortized: 'yes' as never, backend }));
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toBe('Expected boolean for "amortized" but received "yes" (string)');
    e = thrown(() => new PlanarFlow({ dim: 2, seed: -1, backend }));
    expect(e.message).toBe('Expected integer in [0, 2^53) for "seed" but received -1 (number)');
    e = thrown(() => new PlanarFlow(null as never));
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toBe('Expected options object for "options" but received null');
    e = thrown(() => new PlanarFlow({ dim: 2, backend: {} as never }));
    expect(e.message).toBe('Expected backend name or Backend for "backend" but received object');

    const kind = backend.dtype === 'float32' ? 'Float32Array' : 'Float64Array';
    const shared = new PlanarFlow({ dim: 2, layers: 1, backend, keepLayerLogDets: false });
    e = thrown(() => shared.backward(backend.alloc(2), backend.alloc(1)));
    expect(e.message).toBe('PlanarFlow.backward called before a successful forward');
    e = thrown(() => shared.layerLogDets());
    expect(e.message).toBe('PlanarFlow.layerLogDets needs the option keepLayerLogDets: true');
    e = thrown(() => shared.forward(backend.alloc(3), 2));
    expect(e.code).toBe('ERR_SHAPE');
    expect(e.message).toBe(`Expected ${kind} of length 4 for "x" but received ${kind}(3)`);
    e = thrown(() => shared.forward(backend.alloc(2), 1, { params: backend.alloc(5) }));
    expect(e.message).toBe(`Expected no params (this planar flow has shared parameters) for "params" but received ${kind}(5)`);
    e = thrown(() => shared.forward(backend.alloc(2), 1, { context: backend.alloc(1) }));
    expect(e.message).toBe(`Expected no context (the planar flow is not conditional) for "context" but received ${kind}(1)`);
    e = thrown(() => shared.forward(backend.alloc(2), 1, { param: 1 } as never));
    expect(e.message).toBe('Unknown option "param" in "options"; expected one of "params", "context", "training"');
    const amortized = new PlanarFlow({ dim: 2, layers: 1, amortized: true, backend });
    e = thrown(() => amortized.forward(backend.alloc(2), 1));
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toBe(`Expected ${kind} for "params" but received undefined`);
  });

  if (backend.name === 'cpu') {
    it('initialization matches the reference backend (float32 rounding of the same stream)', () => {
      const cpuFlow = new PlanarFlow({ dim: 5, layers: 3, seed: 4, backend });
      const refFlow = new PlanarFlow({ dim: 5, layers: 3, seed: 4, backend: reference });
      refFlow.parameters().forEach((p, i) => {
        expect(Array.from(cpuFlow.parameters()[i].value)).toEqual(Array.from(p.value, Math.fround));
      });
    });

    it('a Float64Array input on the cpu backend is refused', () => {
      const flow = new PlanarFlow({ dim: 2, backend });
      const e = thrown(() => flow.forward(new Float64Array(2), 1));
      expect(e).toBeInstanceOf(TypeError);
      expect(e.message).toBe('Expected Float32Array for "x" but received Float64Array(2)');
    });
  }
});

describe('FlowSequence mixing planar and radial (shared and amortized) against finite differences', () => {
  it('gradients of the input, the amortized parameters and every shared parameter', () => {
    const dim = 3;
    const batch = 3;
    const seq = new FlowSequence([
      new PlanarFlow({ dim, layers: 2, seed: 1, backend: reference }),
      new RadialFlow({ dim, layers: 2, amortized: true, backend: reference }),
      new PlanarFlow({ dim, layers: 3, amortized: true, backend: reference }),
      new RadialFlow({ dim, layers: 1, seed: 2, backend: reference }),
    ]);
    expect(seq.amortizedSize).toBe(2 * (dim + 2) + 3 * (2 * dim + 1));
    expect(seq.parameters().map((p) => p.name)).toEqual(['0.u', '0.w', '0.b', '3.z0', '3.alpha', '3.beta']);
    const x = randomArray(batch * dim, 21, -1.5, 1.5);
    const params = randomArray(batch * seq.amortizedSize, 22, -0.8, 0.8);
    const wy = randomArray(batch * dim, 23);
    const wl = randomArray(batch, 24);
    const loss = () => {
      const out = seq.forward(x, batch, { params });
      return dot(out.y, wy) + dot(out.logDet, wl);
    };
    loss();
    for (const p of seq.parameters()) p.grad.fill(0);
    const g = seq.backward(wy, wl);
    const gx = Float64Array.from(g.gradInput);
    const gp = Float64Array.from(g.gradParams!);
    const shared = seq.parameters().map((p) => Float64Array.from(p.grad));
    const numeric = (target: FloatArray) =>
      Float64Array.from(target, (_v, i) => {
        const s = target[i];
        target[i] = s + 1e-6;
        const up = loss();
        target[i] = s - 1e-6;
        const down = loss();
        target[i] = s;
        return (up - down) / 2e-6;
      });
    // Central differences in float64: error ~1e-10 (see flow-stack-helpers.ts).
    const tol = { atol: 1e-7, rtol: 1e-6 };
    expectClose(gx, numeric(x), tol, 'input');
    expectClose(gp, numeric(params), tol, 'amortized params');
    seq.parameters().forEach((p, i) => expectClose(shared[i], numeric(p.value), tol, p.name));
  });
});
