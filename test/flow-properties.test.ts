/**
 * Properties every registered flow must have, checked for each family in the
 * registry (a family registered in src/flows/index.ts is covered at once) on
 * every backend (describeBackends): shapes, finite outputs, log-det equal to
 * log|det| of the numerical Jacobian, inverse(forward(x)) ≈ x where an
 * inverse exists, gradients of a scalar loss against central finite
 * differences, shared and amortized, and a NaN or Inf in one input row never
 * giving that row a finite result. On the float32 backends each flow also
 * agrees with the reference flow built from the same seed.
 *
 * Tolerances: the reference (float64) differentiates with h = 1e-6 (entries to
 * ~1e-9); cpu and cuda (float32) with h = 1e-2, whose truncation (h²·f‴/6 ≈
 * 2e-5) and rounding (2⁻²⁴·|f|/h ≈ 1e-5) errors put log-dets and gradients
 * within ~1e-3. The float32 round trip keeps ~1e-4 (a few float32 roundings
 * per layer and direction).
 *
 * Skip list: none. Every flow runs on every available backend; a backend
 * that is not available here (cuda without a device) is skipped with the
 * reason in its suite title.
 */
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend';
import type { FloatArray } from '../src/backend/types';
import { backendByName } from '../src/backend';
import { FlowVaeError } from '../src/errors';
import '../src/flows';
import type { Flow } from '../src/flows/flow';
import { FLOW_FAMILIES } from '../src/flows/registry';
import { logAbsDet } from './flow-stack-helpers';
import { describeBackends, dot, expectClose, randomArray } from './helpers';

const reference = backendByName('reference');
const DIM = 3;
const BATCH = 2;

interface Case {
  name: string;
  make: (backend: Backend) => Flow;
}

function cases(): Case[] {
  const list: Case[] = [];
  for (const [name, family] of Object.entries(FLOW_FAMILIES)) {
    for (const amortized of [false, true]) {
      if (amortized ? !family.amortizable : !family.shareable) continue;
      list.push({
        name: `${name} ${amortized ? 'amortized' : 'shared'}`,
        make: (backend) => family.create({ dim: DIM, layers: 2, amortized, seed: 5, backend, extra: {} }),
      });
    }
  }
  return list;
}

/** Finite-difference step and tolerances for a backend's element type (see the header). */
function precision(backend: Backend) {
  return backend.dtype === 'float64'
    ? { h: 1e-6, logDet: 1e-6, roundTrip: { atol: 1e-5, rtol: 1e-5 }, grad: { atol: 1e-6, rtol: 1e-5 } }
    : { h: 1e-2, logDet: 2e-3, roundTrip: { atol: 2e-4, rtol: 2e-4 }, grad: { atol: 3e-3, rtol: 3e-3 } };
}

function callOptions(flow: Flow, backend: Backend, batch: number, seed: number) {
  return {
    params: flow.amortizedSize > 0 ? backend.from(randomArray(batch * flow.amortizedSize, seed, -0.8, 0.8)) : undefined,
    context: flow.contextDim > 0 ? backend.from(randomArray(batch * flow.contextDim, seed + 1, -1, 1)) : undefined,
  };
}

describe('flow registry', () => {
  it('has the posterior families the VAE offers', () => {
    for (const name of ['planar', 'radial', 'sylvester-orthogonal', 'sylvester-householder', 'sylvester-triangular']) {
      expect(Object.keys(FLOW_FAMILIES)).toContain(name);
    }
  });
});

describeBackends(['reference', 'cpu', 'cuda'], 'flow properties', (backend) => {
  const tol = precision(backend);

  describe.each(cases())('$name', ({ make }) => {
    it('shapes, finite values and log-det vs the numerical Jacobian', () => {
      const flow = make(backend);
      const x = backend.from(randomArray(BATCH * DIM, 1, -1.5, 1.5));
      const opts = callOptions(flow, backend, BATCH, 2);
      const { y, logDet } = flow.forward(x, BATCH, opts);
      expect(y.length).toBe(BATCH * DIM);
      expect(logDet.length).toBe(BATCH);
      expect(Array.from(y).every(Number.isFinite)).toBe(true);
      const ldCopy = Float64Array.from(logDet);
      for (let r = 0; r < BATCH; r++) {
        const jac = new Float64Array(DIM * DIM);
        for (let j = 0; j < DIM; j++) {
          const up = backend.from(x);
          const down = backend.from(x);
          up[r * DIM + j] += tol.h;
          down[r * DIM + j] -= tol.h;
          // The step actually taken (float32 rounds x ± h).
          const step = up[r * DIM + j] - down[r * DIM + j];
          const yu = Float64Array.from(flow.forward(up, BATCH, opts).y);
          const yd = flow.forward(down, BATCH, opts).y;
          for (let i = 0; i < DIM; i++) jac[i * DIM + j] = (yu[r * DIM + i] - yd[r * DIM + i]) / step;
        }
        expect(Math.abs(logAbsDet(jac, DIM) - ldCopy[r])).toBeLessThan(tol.logDet);
      }
    });

    it('inverse(forward(x)) ≈ x (or ERR_NO_INVERSE)', () => {
      const flow = make(backend);
      const x = backend.from(randomArray(BATCH * DIM, 3, -1.5, 1.5));
      const opts = callOptions(flow, backend, BATCH, 4);
      const fwd = flow.forward(x, BATCH, opts);
      const y = backend.from(fwd.y);
      const ld = Float64Array.from(fwd.logDet);
      let inv: { x: FloatArray; logDet: FloatArray };
      try {
        inv = flow.inverse(y, BATCH, opts);
      } catch (e) {
        expect(e).toBeInstanceOf(FlowVaeError);
        expect((e as FlowVaeError).code).toBe('ERR_NO_INVERSE');
        return;
      }
      // Iterative inverses stop at a residual of 1e-6 or better.
      expectClose(inv.x, x, tol.roundTrip, 'x');
      expectClose(
        inv.logDet,
        ld.map((v) => -v),
        tol.roundTrip,
        'logDet',
      );
    });

    it('gradients of a scalar loss vs central finite differences', () => {
      const flow = make(backend);
      const x = backend.from(randomArray(BATCH * DIM, 5, -1.5, 1.5));
      const opts = callOptions(flow, backend, BATCH, 6);
      const wy = backend.from(randomArray(BATCH * DIM, 7));
      const wl = backend.from(randomArray(BATCH, 8));
      // Summed in float64 whatever the backend, so only the flow's own rounding enters.
      const loss = () => {
        const out = flow.forward(x, BATCH, opts);
        return dot(out.y, wy) + dot(out.logDet, wl);
      };
      loss();
      for (const p of flow.parameters()) p.grad.fill(0);
      const grads = flow.backward(wy, wl);
      const gx = Float64Array.from(grads.gradInput);
      const gp = grads.gradParams ? Float64Array.from(grads.gradParams) : null;
      const gc = grads.gradContext ? Float64Array.from(grads.gradContext) : null;
      const paramGrads = flow.parameters().map((p) => Float64Array.from(p.grad));
      const numeric = (target: FloatArray) => {
        const g = new Float64Array(target.length);
        for (let i = 0; i < target.length; i++) {
          const s = target[i];
          target[i] = s + tol.h;
          const hiValue = target[i];
          const up = loss();
          target[i] = s - tol.h;
          const loValue = target[i];
          const down = loss();
          target[i] = s;
          g[i] = (up - down) / (hiValue - loValue);
        }
        return g;
      };
      expectClose(gx, numeric(x), tol.grad, 'input');
      if (gp) expectClose(gp, numeric(opts.params!), tol.grad, 'amortized params');
      if (gc) expectClose(gc, numeric(opts.context!), tol.grad, 'context');
      flow.parameters().forEach((p, i) => expectClose(paramGrads[i], numeric(p.value), tol.grad, p.name));
    });

    it('a NaN or Inf in one input row never gives that row a finite result', () => {
      for (const poison of [NaN, Infinity]) {
        const flow = make(backend);
        const x = backend.from(randomArray(BATCH * DIM, 9, -1.5, 1.5));
        x[DIM + 1] = poison;
        const opts = callOptions(flow, backend, BATCH, 10);
        let out: { y: FloatArray; logDet: FloatArray };
        try {
          out = flow.forward(x, BATCH, opts);
        } catch (e) {
          // Refused, naming the row: the flows built on kernels that count non-finite rows.
          expect(e, String(e)).toBeInstanceOf(FlowVaeError);
          expect((e as FlowVaeError).code).toBe('ERR_NAN');
          expect((e as FlowVaeError).message).toContain('row 1');
          continue;
        }
        const row1 = [...Array.from(out.y.subarray(DIM, 2 * DIM)), out.logDet[1]];
        expect(row1.every(Number.isFinite), `${poison}: row 1 is ${row1.join(', ')}`).toBe(false);
      }
    });

    if (backend.name !== 'reference') {
      it('agrees with the reference flow built from the same seed', () => {
        const flow = make(backend);
        const oracle = make(reference);
        // Same seed, same normals on every backend: the parameters differ only by float32 rounding.
        flow.parameters().forEach((p, i) => oracle.parameters()[i].value.set(p.value));
        const x = backend.from(randomArray(BATCH * DIM, 11, -1.5, 1.5));
        const opts = callOptions(flow, backend, BATCH, 12);
        const oracleOpts = { params: opts.params && Float64Array.from(opts.params), context: opts.context && Float64Array.from(opts.context) };
        const got = flow.forward(x, BATCH, opts);
        const want = oracle.forward(Float64Array.from(x), BATCH, oracleOpts);
        // A few float32 roundings per layer (each family's test file states its own, tighter bound).
        const close = { atol: 1e-4, rtol: 1e-4 };
        expectClose(got.y, want.y, close, 'y');
        expectClose(got.logDet, want.logDet, close, 'logDet');
        const wy = randomArray(BATCH * DIM, 13);
        const wl = randomArray(BATCH, 14);
        for (const p of flow.parameters()) p.grad.fill(0);
        for (const p of oracle.parameters()) p.grad.fill(0);
        const g = flow.backward(backend.from(wy), backend.from(wl));
        const gRef = oracle.backward(wy, wl);
        expectClose(g.gradInput, gRef.gradInput, close, 'gradInput');
        if (gRef.gradParams) expectClose(g.gradParams!, gRef.gradParams, close, 'gradParams');
        if (gRef.gradContext) expectClose(g.gradContext!, gRef.gradContext, close, 'gradContext');
        flow.parameters().forEach((p, i) => expectClose(p.grad, oracle.parameters()[i].grad, close, p.name));
      });
    }
  });
});
