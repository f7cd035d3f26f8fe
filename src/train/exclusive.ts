/**
 * One training run per model at a time. Two `fit()` calls on one model that
 * overlap (the second started before the first resolved) would interleave
 * their updates on the same weights and optimizer state while each reported
 * a run of its own; the second is refused instead.
 */
import { FlowVaeError } from '../errors';

const training = new WeakSet<object>();

/** Runs `train` unless `model` is training already (then rejects with ERR_BUSY naming `what`). */
export async function trainExclusively<T>(model: object, what: string, train: () => Promise<T>): Promise<T> {
  if (training.has(model)) {
    throw new FlowVaeError('ERR_BUSY', `${what} is already training: a fit() on it has not finished (await it before starting another)`);
  }
  training.add(model);
  try {
    return await train();
  } finally {
    training.delete(model);
  }
}
