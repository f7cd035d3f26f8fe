import type { LstmKernels } from '../kernels/lstm';
import type { NativeAddon } from '../native';

type F = Float32Array;

/** Native LSTM kernels (native/cpu/lstm.cc); the binding checks every size and length. */
export function cpuLstm(addon: NativeAddon): LstmKernels {
  return {
    forward: (x, lengths, h0, c0, weightIh, weightHh, biasIh, biasHh, y, hn, cn, stash, batch, steps, inDim, hidden) =>
      addon.lstmForward(
        x as F,
        lengths,
        h0 as F | null,
        c0 as F | null,
        weightIh as F,
        weightHh as F,
        biasIh as F | null,
        biasHh as F | null,
        y as F,
        hn as F,
        cn as F,
        stash as F,
        batch,
        steps,
        inDim,
        hidden,
      ),
    backward: (
      x,
      lengths,
      weightIh,
      weightHh,
      stash,
      dy,
      dhn,
      dcn,
      dx,
      dh0,
      dc0,
      dWeightIh,
      dWeightHh,
      dBiasIh,
      dBiasHh,
      work,
      batch,
      steps,
      inDim,
      hidden,
      accumulate,
    ) =>
      addon.lstmBackward(
        x as F,
        lengths,
        weightIh as F,
        weightHh as F,
        stash as F,
        dy as F | null,
        dhn as F | null,
        dcn as F | null,
        dx as F | null,
        dh0 as F,
        dc0 as F,
        dWeightIh as F | null,
        dWeightHh as F | null,
        dBiasIh as F | null,
        dBiasHh as F | null,
        work as F,
        batch,
        steps,
        inDim,
        hidden,
        accumulate,
      ),
  };
}
