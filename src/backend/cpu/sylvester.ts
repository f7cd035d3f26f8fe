import { SYLVESTER_VARIANTS, checkSylvesterShape, type SylvesterKernels, type SylvesterShape } from '../kernels/sylvester';
import type { NativeAddon } from '../native';

/** The shape as the addon's leading numeric arguments (checked here and again in the binding). */
function shapeArgs(shape: SylvesterShape): [number, number, number, number, number] {
  const s = checkSylvesterShape(shape);
  return [SYLVESTER_VARIANTS.indexOf(s.variant), s.dim, s.m, s.layers, s.householders];
}

/** Native Sylvester kernels; the binding checks every size and array (Float32Array only). */
export function cpuSylvester(addon: NativeAddon): SylvesterKernels {
  const f32 = (a: unknown) => a as Float32Array;
  return {
    orthogonalize: (shape, sets, params, q, options) =>
      addon.sylvesterOrthogonalize(...shapeArgs(shape), sets, f32(params), f32(q), options?.maxSteps, options?.tolerance),
    orthogonalizeBackward: (shape, sets, params, gradQ, gradParams, options) =>
      addon.sylvesterOrthogonalizeBackward(...shapeArgs(shape), sets, f32(params), f32(gradQ), f32(gradParams), options?.maxSteps, options?.tolerance),
    forward: (shape, batch, amortized, x, params, q, y, logDet, saved) =>
      addon.sylvesterForward(...shapeArgs(shape), batch, amortized, f32(x), f32(params), f32(q), f32(y), f32(logDet), saved as Float32Array | null),
    backward: (shape, batch, amortized, params, q, saved, gradY, gradLogDet, gradX, gradParams, gradQ) =>
      addon.sylvesterBackward(
        ...shapeArgs(shape),
        batch,
        amortized,
        f32(params),
        f32(q),
        f32(saved),
        f32(gradY),
        f32(gradLogDet),
        f32(gradX),
        f32(gradParams),
        f32(gradQ),
      ),
    inverse: (shape, batch, amortized, y, params, q, x, logDet, options) =>
      addon.sylvesterInverse(
        ...shapeArgs(shape),
        batch,
        amortized,
        f32(y),
        f32(params),
        f32(q),
        f32(x),
        f32(logDet),
        options?.maxIterations,
        options?.tolerance,
      ),
  };
}
