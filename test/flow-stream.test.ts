/**
 * Amortized planar and radial backward write their parameter gradients with
 * streaming stores when parameters and gradients together outgrow the
 * last-level cache. Test batches are far smaller, so a child process sets
 * FLOWVAE_CACHE_BYTES=1 to take that path on every call and cross-checks it
 * against the reference (test/flow-stream.child.ts).
 */
import { describe, expect, it } from 'vitest';
import { backends } from '../src/backend';
import { hasCpu, runChild } from './helpers';

(hasCpu() ? describe : describe.skip)('streaming gradient stores (skipped when the addon is unavailable)', () => {
  it('the cpu backend reports the cache size its kernels assume', () => {
    const info = backends().find((b) => b.name === 'cpu');
    expect(info?.cacheBytes).toBeGreaterThan(0);
  });

  it('amortized planar and radial gradients agree with the reference when streamed', () => {
    const report = runChild<{ cacheBytes: number; worst: number; cases: number }>('flow-stream.child.ts', {
      FLOWVAE_CACHE_BYTES: '1',
    });
    expect(report.cacheBytes).toBe(1);
    expect(report.cases).toBe(10);
    expect(report.worst).toBeLessThanOrEqual(1);
  });
});
