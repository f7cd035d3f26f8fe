/**
 * cpu residual-flow kernels: a thin layer over the native addon
 * (native/napi/residual.cc), which checks every argument (Float32Array only,
 * exact lengths, no overlapping outputs).
 */
import { RESIDUAL_ACTIVATIONS, type ResidualKernels } from '../kernels/residual';
import type { NativeAddon } from '../native';
import { checkOneOf } from '../../validate';

type F = Float32Array;

/** The binding's index of an activation name, refused with the reference backend's words. */
function activationIndex(kind: string): number {
  return RESIDUAL_ACTIVATIONS.indexOf(checkOneOf(kind, 'activation', RESIDUAL_ACTIVATIONS));
}

export function cpuResidual(addon: NativeAddon): ResidualKernels {
  // The casts only satisfy the type checker: the binding rejects anything
  // but a Float32Array with a TypeError naming the argument.
  return {
    normalize(weight, u, v, out, sigma, rows, cols, c, iterations) {
      addon.residualNormalize(weight as F, u as F, v as F, out as F, sigma as F, rows, cols, c, iterations);
    },
    normalizeBackward(weight, u, v, sigma, dOut, dWeight, rows, cols, c) {
      addon.residualNormalizeBackward(weight as F, u as F, v as F, sigma, dOut as F, dWeight as F, rows, cols, c);
    },
    forward(x, net, sizes, activation, noise, terms, p, exactTerms, y, logDet, stash, batch) {
      return addon.residualForward(
        x as F,
        net as F,
        sizes,
        activationIndex(activation),
        noise as F | null,
        terms as F | null,
        p,
        exactTerms,
        y as F,
        logDet as F,
        stash as F,
        batch,
      );
    },
    backward(x, net, sizes, activation, exact, stash, dy, dLogDet, dx, dNet, batch) {
      return addon.residualBackward(x as F, net as F, sizes, activationIndex(activation), exact, stash as F, dy as F, dLogDet as F, dx as F, dNet as F, batch);
    },
    inverse(y, net, sizes, activation, noise, terms, p, exactTerms, tol, maxIterations, x, logDet, batch) {
      return addon.residualInverse(
        y as F,
        net as F,
        sizes,
        activationIndex(activation),
        noise as F | null,
        terms as F | null,
        p,
        exactTerms,
        tol,
        maxIterations,
        x as F,
        logDet as F,
        batch,
      );
    },
  };
}
