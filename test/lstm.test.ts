/**
 * The lstm kernel family: cpu against the float64 reference at awkward sizes
 * (batch 1, one step, hidden off the SIMD width, ragged lengths with empty
 * rows, 200 steps), the reference against central finite differences for
 * every input and weight, both against torch.nn.LSTM with the same weights,
 * the argument checks of both backends, and the Lstm module.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { backendByName, getNumThreads, setNumThreads } from '../src/backend';
import { lstmStashSize, lstmWorkSize } from '../src/backend/kernels/lstm';
import type { FloatArray } from '../src/backend/types';
import { Lstm } from '../src/nn/lstm';
import { describeBackends, dot, expectClose, hasCpu, numericalGradient, randomArray, runCappedSimd } from './helpers';
import { CASES, type Case, compareLstm, FORWARD_TOL, gradTol, makeInputs, OUTPUT_NAMES, run, toleranceFor } from './lstm-cases';

const reference = backendByName('reference');

describe.skipIf(!hasCpu())(`lstm: cpu against reference${hasCpu() ? '' : ' (skipped: native addon not built)'}`, () => {
  const cpu = hasCpu() ? backendByName('cpu') : reference;
  for (const [name, c] of CASES) {
    it(name, () => {
      const inp = makeInputs(c, c.batch * 1000 + c.steps * 10 + c.hidden);
      const want = run(reference, c, inp);
      const got = run(cpu, c, inp);
      for (const k of OUTPUT_NAMES) expectClose(got[k], want[k], toleranceFor(k, want[k]), k);
    });
  }

  // simd_level() is fixed per process, so each capped path runs in a child process.
  it.each(['scalar', 'avx2'])('FLOWVAE_SIMD=%s', (level) => {
    const report = runCappedSimd<{ simd: string; worst: number; cases: number }>('lstm.simd.ts', level);
    expect(report.cases).toBe(CASES.length);
    expect(report.worst).toBeLessThanOrEqual(1);
  });

  it('B 100, T 20, H 64 (the benchmark size), the per-row state path matches', () => {
    const c: Case = { batch: 100, steps: 20, inDim: 10, hidden: 64, lengths: null, withState: true, withBias: true };
    c.lengths = Array.from({ length: c.batch }, (_, b) => 1 + ((b * 7) % c.steps));
    const inp = makeInputs(c, 99);
    const want = run(reference, c, inp);
    const got = run(cpu, c, inp);
    for (const k of OUTPUT_NAMES) expectClose(got[k], want[k], toleranceFor(k, want[k]), k);
  });

  it('thread count does not change a bit', () => {
    const c: Case = { batch: 64, steps: 12, inDim: 5, hidden: 40, lengths: null, withState: true, withBias: true };
    c.lengths = Array.from({ length: c.batch }, (_, b) => (b * 5) % (c.steps + 1));
    const inp = makeInputs(c, 5);
    const before = getNumThreads();
    try {
      setNumThreads(1);
      const one = run(cpu, c, inp);
      setNumThreads(Math.max(2, before));
      const many = run(cpu, c, inp);
      for (const k of OUTPUT_NAMES) expect(Buffer.compare(bytes(one[k]), bytes(many[k])), k).toBe(0);
    } finally {
      setNumThreads(before);
    }
  });
});

function bytes(a: FloatArray): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

describe('lstm: both backends', () => {
  const names = hasCpu() ? (['reference', 'cpu'] as const) : (['reference'] as const);
  for (const name of names) {
    const backend = name === 'cpu' ? backendByName('cpu') : reference;

    it(`[${name}] padded steps: their inputs change nothing, their outputs are zero, dy there is ignored`, () => {
      const c: Case = { batch: 3, steps: 5, inDim: 2, hidden: 6, lengths: [5, 2, 0], withState: true, withBias: true };
      const inp = makeInputs(c, 17);
      const a = run(backend, c, inp);
      const changed = { ...inp, x: inp.x.slice(), dy: inp.dy.slice() };
      for (let b = 0; b < c.batch; b++) {
        for (let t = c.lengths![b]; t < c.steps; t++) {
          for (let p = 0; p < c.inDim; p++) changed.x[(b * c.steps + t) * c.inDim + p] = 1e3 + t;
          for (let j = 0; j < c.hidden; j++) changed.dy[(b * c.steps + t) * c.hidden + j] = 7;
        }
      }
      const b2 = run(backend, c, changed);
      for (const k of OUTPUT_NAMES) {
        if (k === 'dx') continue;
        expect(Buffer.compare(bytes(a[k]), bytes(b2[k])), k).toBe(0);
      }
      for (let b = 0; b < c.batch; b++) {
        for (let t = c.lengths![b]; t < c.steps; t++) {
          for (let j = 0; j < c.hidden; j++) expect(a.y[(b * c.steps + t) * c.hidden + j]).toBe(0);
          for (let p = 0; p < c.inDim; p++) expect(a.dx[(b * c.steps + t) * c.inDim + p]).toBe(0);
        }
      }
      // The empty row: (hn, cn) = (h0, c0), and the gradients pass straight through.
      const H = c.hidden;
      expect(Array.from(a.hn.subarray(2 * H, 3 * H))).toEqual(Array.from(backend.from(inp.h0!.subarray(2 * H, 3 * H))));
      expect(Array.from(a.cn.subarray(2 * H, 3 * H))).toEqual(Array.from(backend.from(inp.c0!.subarray(2 * H, 3 * H))));
      expect(Array.from(a.dh0.subarray(2 * H, 3 * H))).toEqual(Array.from(backend.from(inp.dhn.subarray(2 * H, 3 * H))));
      expect(Array.from(a.dc0.subarray(2 * H, 3 * H))).toEqual(Array.from(backend.from(inp.dcn.subarray(2 * H, 3 * H))));
    });

    it(`[${name}] null lengths equal full lengths; accumulate adds`, () => {
      const c: Case = { batch: 2, steps: 3, inDim: 2, hidden: 5, lengths: null, withState: true, withBias: true };
      const inp = makeInputs(c, 21);
      const a = run(backend, c, inp);
      const b = run(backend, c, inp, Uint32Array.from([3, 3]));
      for (const k of OUTPUT_NAMES) expect(Buffer.compare(bytes(a[k]), bytes(b[k])), k).toBe(0);
      // accumulate: run backward again into the same gradients.
      const { batch: B, steps: T, inDim: I, hidden: H } = c;
      const x = backend.from(inp.x);
      const wIh = backend.from(inp.weightIh);
      const wHh = backend.from(inp.weightHh);
      const stash = backend.alloc(lstmStashSize(B, T, H));
      const y = backend.alloc(B * T * H);
      backend.lstm.forward(
        x,
        null,
        backend.from(inp.h0!),
        backend.from(inp.c0!),
        wIh,
        wHh,
        backend.from(inp.biasIh!),
        backend.from(inp.biasHh!),
        y,
        backend.alloc(B * H),
        backend.alloc(B * H),
        stash,
        B,
        T,
        I,
        H,
      );
      const g = { wi: a.dWeightIh.slice(), wh: a.dWeightHh.slice(), bi: a.dBiasIh.slice(), bh: a.dBiasHh.slice() };
      backend.lstm.backward(
        x,
        null,
        wIh,
        wHh,
        stash,
        backend.from(inp.dy),
        backend.from(inp.dhn),
        backend.from(inp.dcn),
        null,
        backend.alloc(B * H),
        backend.alloc(B * H),
        g.wi,
        g.wh,
        g.bi,
        g.bh,
        backend.alloc(lstmWorkSize(B, T, H)),
        B,
        T,
        I,
        H,
        true,
      );
      expectClose(
        g.wi,
        Array.from(a.dWeightIh, (v) => 2 * v),
        { atol: 1e-6, rtol: 1e-6 },
        'dWeightIh',
      );
      expectClose(
        g.wh,
        Array.from(a.dWeightHh, (v) => 2 * v),
        { atol: 1e-6, rtol: 1e-6 },
        'dWeightHh',
      );
      expectClose(
        g.bi,
        Array.from(a.dBiasIh, (v) => 2 * v),
        { atol: 1e-6, rtol: 1e-6 },
        'dBiasIh',
      );
      expectClose(
        g.bh,
        Array.from(a.dBiasHh, (v) => 2 * v),
        { atol: 1e-6, rtol: 1e-6 },
        'dBiasHh',
      );
    });

    it(`[${name}] refuses bad arguments, naming them`, () => {
      const B = 2;
      const T = 3;
      const I = 2;
      const H = 4;
      const A = (n: number) => backend.alloc(n);
      const x = A(B * T * I);
      const wIh = A(16 * I);
      const wHh = A(16 * H);
      const fwd = (over: Partial<Record<string, unknown>>) => () => {
        const a = {
          x,
          lengths: null as Uint32Array | null,
          wIh,
          wHh,
          y: A(B * T * H),
          hn: A(B * H),
          cn: A(B * H),
          stash: A(lstmStashSize(B, T, H)),
          hidden: H,
          ...over,
        } as unknown as Record<string, never>;
        backend.lstm.forward(a.x, a.lengths, null, null, a.wIh, a.wHh, null, null, a.y, a.hn, a.cn, a.stash, B, T, I, a.hidden);
      };
      expect(fwd({ lengths: Uint32Array.from([3, 4]) })).toThrow('Expected Uint32Array of values at most 3 for "lengths" but received Uint32Array(2)');
      expect(fwd({ lengths: Uint32Array.from([3]) })).toThrow('Expected Uint32Array of length 2 for "lengths" but received Uint32Array(1)');
      expect(fwd({ lengths: [3, 3] })).toThrow('Expected Uint32Array or null for "lengths" but received Array(2)');
      expect(fwd({ hidden: 0 })).toThrow('Expected positive integer for "hidden" but received 0 (number)');
      expect(fwd({ wHh: A(16 * H + 1) })).toThrow(/for "weightHh" but received Float(32|64)Array\(65\)/);
      expect(fwd({ y: x.subarray(0, 0) })).toThrow(/for "y" but received/);
      const shared = A(B * T * H + B * H);
      expect(fwd({ y: shared.subarray(0, B * T * H), hn: shared.subarray(B * T * H - 1, B * T * H - 1 + B * H) })).toThrow(/not overlapping "y" for "hn"/);
    });
  }
});

// ---- finite differences on the reference (float64) ----

describe('lstm: reference gradients against central finite differences', () => {
  const c: Case = { batch: 3, steps: 4, inDim: 3, hidden: 5, lengths: [4, 2, 0], withState: true, withBias: true };
  const inp = makeInputs(c, 3);
  const { batch: B, steps: T, inDim: I, hidden: H } = c;
  const lengths = Uint32Array.from(c.lengths!);
  const w = { y: randomArray(B * T * H, 40), hn: randomArray(B * H, 41), cn: randomArray(B * H, 42) };
  const args = {
    x: Float64Array.from(inp.x),
    h0: Float64Array.from(inp.h0!),
    c0: Float64Array.from(inp.c0!),
    weightIh: Float64Array.from(inp.weightIh),
    weightHh: Float64Array.from(inp.weightHh),
    biasIh: Float64Array.from(inp.biasIh!),
    biasHh: Float64Array.from(inp.biasHh!),
  };
  const y = new Float64Array(B * T * H);
  const hn = new Float64Array(B * H);
  const cn = new Float64Array(B * H);
  const stash = new Float64Array(lstmStashSize(B, T, H));
  const loss = () => {
    reference.lstm.forward(args.x, lengths, args.h0, args.c0, args.weightIh, args.weightHh, args.biasIh, args.biasHh, y, hn, cn, stash, B, T, I, H);
    return dot(y, w.y) + dot(hn, w.hn) + dot(cn, w.cn);
  };
  loss();
  const g = {
    x: new Float64Array(B * T * I),
    h0: new Float64Array(B * H),
    c0: new Float64Array(B * H),
    weightIh: new Float64Array(4 * H * I),
    weightHh: new Float64Array(4 * H * H),
    biasIh: new Float64Array(4 * H),
    biasHh: new Float64Array(4 * H),
  };
  reference.lstm.backward(
    args.x,
    lengths,
    args.weightIh,
    args.weightHh,
    stash,
    w.y,
    w.hn,
    w.cn,
    g.x,
    g.h0,
    g.c0,
    g.weightIh,
    g.weightHh,
    g.biasIh,
    g.biasHh,
    new Float64Array(lstmWorkSize(B, T, H)),
    B,
    T,
    I,
    H,
    false,
  );
  // Central differences with step 1e-6 on a smooth function of order 1: truncation ~1e-12,
  // cancellation ~1e-16/1e-6 = 1e-10 per evaluation; 1e-8 leaves a wide margin.
  for (const k of Object.keys(args) as (keyof typeof args)[]) {
    it(k, () => {
      const num = numericalGradient(loss, args[k]);
      expectClose(g[k], num, { atol: 1e-8, rtol: 1e-6 }, k);
    });
  }
});

// ---- torch.nn.LSTM ----

const PYTHON = '/usr/bin/python3';
function pythonHasTorch(): boolean {
  if (!fs.existsSync(PYTHON)) return false;
  return spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8', timeout: 60_000 }).status === 0;
}
const hasTorch = pythonHasTorch();

// Runs nn.LSTM(batch_first=True) in float64 on packed sequences (so padded steps are skipped
// as in flowvae), pads the output with zeros, and differentiates Σ y·wy + Σ hn·whn + Σ cn·wcn.
const PY_LSTM = String.raw`
import json, sys, torch
a = json.load(sys.stdin)
B, T, I, H = a['B'], a['T'], a['I'], a['H']
t = lambda k, *shape: torch.tensor(a[k], dtype=torch.float64).reshape(*shape)
m = torch.nn.LSTM(I, H, batch_first=True).double()
with torch.no_grad():
    m.weight_ih_l0.copy_(t('weightIh', 4 * H, I)); m.weight_hh_l0.copy_(t('weightHh', 4 * H, H))
    m.bias_ih_l0.copy_(t('biasIh', 4 * H)); m.bias_hh_l0.copy_(t('biasHh', 4 * H))
x = t('x', B, T, I).requires_grad_(True)
h0 = t('h0', 1, B, H).requires_grad_(True)
c0 = t('c0', 1, B, H).requires_grad_(True)
lengths = torch.tensor(a['lengths'])
packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
out, (hn, cn) = m(packed, (h0, c0))
y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
loss = (y * t('dy', B, T, H)).sum() + (hn[0] * t('dhn', B, H)).sum() + (cn[0] * t('dcn', B, H)).sum()
loss.backward()
f = lambda v: v.detach().reshape(-1).tolist()
print(json.dumps({'y': f(y), 'hn': f(hn), 'cn': f(cn), 'dx': f(x.grad), 'dh0': f(h0.grad), 'dc0': f(c0.grad),
                  'dWeightIh': f(m.weight_ih_l0.grad), 'dWeightHh': f(m.weight_hh_l0.grad),
                  'dBiasIh': f(m.bias_ih_l0.grad), 'dBiasHh': f(m.bias_hh_l0.grad), 'version': torch.__version__}))
`;

describe.skipIf(!hasTorch)(`lstm against torch.nn.LSTM${hasTorch ? '' : ' (skipped: /usr/bin/python3 without torch)'}`, () => {
  // PyTorch's packed sequences need lengths >= 1.
  const c: Case = { batch: 4, steps: 7, inDim: 5, hidden: 13, lengths: [7, 3, 1, 6], withState: true, withBias: true };
  const inp = makeInputs(c, 77);
  const torchOut = (() => {
    if (!hasTorch) return null;
    const payload = { B: c.batch, T: c.steps, I: c.inDim, H: c.hidden, lengths: c.lengths };
    const arrays = Object.fromEntries(Object.entries(inp).map(([k, v]) => [k, Array.from(v as Float64Array)]));
    const r = spawnSync(PYTHON, ['-c', PY_LSTM], { input: JSON.stringify({ ...payload, ...arrays }), encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, number[]>;
  })();

  it('reference (float64) matches to rounding', () => {
    const ours = run(reference, c, inp);
    // Both in float64 with different summation orders: agreement to ~1e-15 relative; 1e-12 leaves margin.
    for (const k of OUTPUT_NAMES) expectClose(ours[k], torchOut![k], { atol: 1e-12, rtol: 1e-10 }, k);
  });

  it.skipIf(!hasCpu())('cpu (float32) matches within float32 tolerances', () => {
    const ours = run(backendByName('cpu'), c, inp);
    for (const k of OUTPUT_NAMES) {
      const tol = k === 'y' || k === 'hn' || k === 'cn' ? FORWARD_TOL : gradTol(torchOut![k]);
      expectClose(ours[k], torchOut![k], tol, k);
    }
  });
});

// ---- the module ----

describe('Lstm module', () => {
  it('names its parameters as torch.nn.LSTM and runs the kernels', () => {
    const m = new Lstm(reference, { inDim: 3, hidden: 5, seed: 1 });
    expect(m.parameters().map((p) => [p.name, p.shape])).toEqual([
      ['weight_ih_l0', [20, 3]],
      ['weight_hh_l0', [20, 5]],
      ['bias_ih_l0', [20]],
      ['bias_hh_l0', [20]],
    ]);
    const bound = 1 / Math.sqrt(5);
    for (const p of m.parameters()) for (const v of p.value) expect(Math.abs(v)).toBeLessThanOrEqual(bound);
  });

  it('forward/backward equal the kernel calls, gradients accumulate', () => {
    const B = 3;
    const T = 4;
    const m = new Lstm(reference, { inDim: 2, hidden: 3, seed: 7 });
    const x = randomArray(B * T * 2, 1);
    const lengths = Uint32Array.from([4, 1, 0]);
    const h0 = randomArray(B * 3, 2);
    const out = m.forward(x, B, T, { lengths, h0 });
    const dy = randomArray(B * T * 3, 3);
    const dhn = randomArray(B * 3, 4);
    const g1 = m.backward({ dy, dhn });
    const first = m.parameters().map((p) => p.grad.slice());
    // Same through the kernels directly.
    const c: Case = { batch: B, steps: T, inDim: 2, hidden: 3, lengths: [4, 1, 0], withState: true, withBias: true };
    const want = run(reference, c, {
      x,
      h0,
      c0: new Float64Array(B * 3),
      weightIh: Float64Array.from(m.weightIh.value),
      weightHh: Float64Array.from(m.weightHh.value),
      biasIh: Float64Array.from(m.biasIh!.value),
      biasHh: Float64Array.from(m.biasHh!.value),
      dy,
      dhn,
      dcn: new Float64Array(B * 3),
    });
    expect(Array.from(out.y)).toEqual(Array.from(want.y));
    expect(Array.from(out.hn)).toEqual(Array.from(want.hn));
    expect(Array.from(g1.dx!)).toEqual(Array.from(want.dx));
    expect(Array.from(g1.dh0)).toEqual(Array.from(want.dh0));
    expect(Array.from(first[0])).toEqual(Array.from(want.dWeightIh));
    m.forward(x, B, T, { lengths, h0 });
    m.backward({ dy, dhn });
    expectClose(
      m.weightIh.grad,
      Array.from(first[0], (v) => 2 * v),
      { atol: 1e-12, rtol: 1e-12 },
      'accumulated',
    );
  });

  it('refuses backward before forward and bad sizes', () => {
    const m = new Lstm(reference, { inDim: 2, hidden: 3, seed: 1 });
    expect(() => m.backward({})).toThrow(/before forward/);
    expect(() => m.forward(new Float64Array(5), 1, 3)).toThrow(/"x"/);
    expect(() => new Lstm(reference, { inDim: 2, hidden: 0, seed: 1 })).toThrow('Expected positive integer for "hidden" but received 0 (number)');
  });
});

// The CUDA kernels against the reference, where a device is present (skipped with the reason otherwise).
describeBackends(['cuda'], 'lstm: cuda vs reference (tolerances of test/lstm-cases.ts)', (cuda) => {
  for (const [name, c] of CASES) {
    it(name, () => {
      expect(compareLstm(cuda, reference, c, c.batch * 1000 + c.steps * 10 + c.hidden)).toBeLessThanOrEqual(1);
    });
  }
});
