/**
 * Properties every registered flow must have, checked for each family in the
 * registry (a family registered in src/flows/index.ts is covered at once):
 * shapes, finite outputs, log-det equal to log|det| of the numerical
 * Jacobian, inverse(forward(x)) ≈ x where an inverse exists, and gradients of
 * a scalar loss against central finite differences, shared and amortized.
 */
import { describe, expect, it } from 'vitest';
import { backendByName } from '../src/backend';
import type { FloatArray } from '../src/backend/types';
import { FlowVaeError } from '../src/errors';
import '../src/flows';
import type { Flow } from '../src/flows/flow';
import { FLOW_FAMILIES } from '../src/flows/registry';
import { logAbsDet } from './flow-stack-helpers';
import { dot, expectClose, randomArray } from './helpers';

const reference = backendByName('reference');
const DIM = 3;
const BATCH = 2;

interface Case {
  name: string;
  make: () => Flow;
}

function cases(): Case[] {
  const list: Case[] = [];
  for (const [name, family] of Object.entries(FLOW_FAMILIES)) {
    for (const amortized of [false, true]) {
      if (amortized ? !family.amortizable : !family.shareable) continue;
      list.push({
        name: `${name} ${amortized ? 'amortized' : 'shared'}`,
        make: () => family.create({ dim: DIM, layers: 2, amortized, seed: 5, backend: reference, extra: {} }),
      });
    }
  }
  return list;
}

function callOptions(flow: Flow, batch: number, seed: number) {
  return {
    params: flow.amortizedSize > 0 ? randomArray(batch * flow.amortizedSize, seed, -0.8, 0.8) : undefined,
    context: flow.contextDim > 0 ? randomArray(batch * flow.contextDim, seed + 1, -1, 1) : undefined,
  };
}

describe('flow registry', () => {
  it('has the posterior families the VAE offers', () => {
    for (const name of ['planar', 'radial', 'sylvester-orthogonal', 'sylvester-householder', 'sylvester-triangular']) {
      expect(Object.keys(FLOW_FAMILIES)).toContain(name);
    }
  });
});

describe.each(cases())('flow properties: $name', ({ make }) => {
  it('shapes, finite values and log-det vs the numerical Jacobian', () => {
    const flow = make();
    const x = randomArray(BATCH * DIM, 1, -1.5, 1.5);
    const opts = callOptions(flow, BATCH, 2);
    const { y, logDet } = flow.forward(x, BATCH, opts);
    expect(y.length).toBe(BATCH * DIM);
    expect(logDet.length).toBe(BATCH);
    expect(Array.from(y).every(Number.isFinite)).toBe(true);
    const ldCopy = Float64Array.from(logDet);
    const h = 1e-6;
    for (let r = 0; r < BATCH; r++) {
      const jac = new Float64Array(DIM * DIM);
      for (let j = 0; j < DIM; j++) {
        const up = Float64Array.from(x);
        const down = Float64Array.from(x);
        up[r * DIM + j] += h;
        down[r * DIM + j] -= h;
        const yu = Float64Array.from(flow.forward(up, BATCH, opts).y);
        const yd = flow.forward(down, BATCH, opts).y;
        for (let i = 0; i < DIM; i++) jac[i * DIM + j] = (yu[r * DIM + i] - yd[r * DIM + i]) / (2 * h);
      }
      // Central differences: Jacobian entries to ~1e-9, so log|det| to ~1e-8.
      expect(Math.abs(logAbsDet(jac, DIM) - ldCopy[r])).toBeLessThan(1e-6);
    }
  });

  it('inverse(forward(x)) ≈ x (or ERR_NO_INVERSE)', () => {
    const flow = make();
    const x = randomArray(BATCH * DIM, 3, -1.5, 1.5);
    const opts = callOptions(flow, BATCH, 4);
    const fwd = flow.forward(x, BATCH, opts);
    const y = Float64Array.from(fwd.y);
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
    expectClose(inv.x, x, { atol: 1e-5, rtol: 1e-5 }, 'x');
    expectClose(inv.logDet, ld.map((v) => -v), { atol: 1e-5, rtol: 1e-5 }, 'logDet');
  });

  it('gradients of a scalar loss vs central finite differences', () => {
    const flow = make();
    const x = randomArray(BATCH * DIM, 5, -1.5, 1.5);
    const opts = callOptions(flow, BATCH, 6);
    const wy = randomArray(BATCH * DIM, 7);
    const wl = randomArray(BATCH, 8);
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
    const tol = { atol: 1e-6, rtol: 1e-5 };
    const numeric = (target: FloatArray) => {
      const g = new Float64Array(target.length);
      for (let i = 0; i < target.length; i++) {
        const s = target[i];
        target[i] = s + 1e-6;
        const up = loss();
        target[i] = s - 1e-6;
        const down = loss();
        target[i] = s;
        g[i] = (up - down) / 2e-6;
      }
      return g;
    };
    expectClose(gx, numeric(x), tol, 'input');
    if (gp) expectClose(gp, numeric(opts.params!), tol, 'amortized params');
    if (gc) expectClose(gc, numeric(opts.context!), tol, 'context');
    flow.parameters().forEach((p, i) => expectClose(paramGrads[i], numeric(p.value), tol, p.name));
  });
});
