/**
 * The environment variables flowvae reads, checked in one place before they
 * take effect: a value the native library would ignore (it falls back to its
 * default) or misread is refused with a RangeError (code ERR_ENV) naming the
 * variable, rather than silently running with a setting the user did not ask
 * for. Empty values count as unset.
 */
import { rangeError } from '../errors';
import { BACKEND_NAMES, MAX_THREADS } from './types';

const INTEGER = /^[0-9]+$/;

interface Rule {
  what: string;
  ok: (value: string) => boolean;
}

export const ENVIRONMENT: Record<string, Rule> = {
  FLOWVAE_BACKEND: { what: `one of ${BACKEND_NAMES.map((n) => `"${n}"`).join(', ')}`, ok: (v) => (BACKEND_NAMES as readonly string[]).includes(v) },
  FLOWVAE_NUM_THREADS: { what: `integer from 1 to ${MAX_THREADS}`, ok: (v) => INTEGER.test(v) && Number(v) >= 1 && Number(v) <= MAX_THREADS },
  FLOWVAE_SIMD: { what: 'one of "scalar", "avx2", "avx512" (a cap on the vector instructions used)', ok: (v) => ['scalar', 'avx2', 'avx512'].includes(v) },
  FLOWVAE_CACHE_BYTES: { what: 'positive integer (bytes)', ok: (v) => INTEGER.test(v) && Number(v) > 0 && Number.isSafeInteger(Number(v)) },
  FLOWVAE_DISABLE_NATIVE: { what: '"1" or "0"', ok: (v) => v === '1' || v === '0' },
};

/** Throws for the first variable of ENVIRONMENT whose value is set and invalid. */
export function checkEnvironment(env: NodeJS.ProcessEnv = process.env): void {
  for (const [name, rule] of Object.entries(ENVIRONMENT)) {
    const value = env[name];
    if (value !== undefined && value !== '' && !rule.ok(value)) {
      throw rangeError(`Expected ${rule.what} for the environment variable ${name} but received ${JSON.stringify(value)}`, 'ERR_ENV');
    }
  }
}
