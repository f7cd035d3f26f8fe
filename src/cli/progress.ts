/**
 * What a command prints while it runs, in one of three modes:
 *
 *   - tty:   a live one-line progress bar (redrawn with \r at most 10 times a
 *            second) with log lines printed above it;
 *   - plain: log lines only (one per epoch), for pipes, files and CI;
 *   - json:  one JSON object per line (NDJSON) on stdout, nothing else.
 *
 * The bar is a few lines of code rather than a library: the libraries
 * (cli-progress and friends) bring several dependencies for string widths and
 * colours, and the plain and JSON modes, which a CLI needs anyway, would still
 * be ours.
 */
import { formatDuration } from './args';

export type OutputMode = 'tty' | 'plain' | 'json';

export function outputMode(json: boolean | undefined, stream: NodeJS.WriteStream = process.stdout): OutputMode {
  if (json) return 'json';
  return stream.isTTY && process.env.TERM !== 'dumb' ? 'tty' : 'plain';
}

export class Output {
  readonly mode: OutputMode;
  private readonly stream: NodeJS.WriteStream;
  private barText = '';
  private lastDraw = 0;

  constructor(mode: OutputMode, stream: NodeJS.WriteStream = process.stdout) {
    this.mode = mode;
    this.stream = stream;
  }

  /** A human-readable line (dropped in JSON mode); keeps the bar below it on a terminal. */
  log(line: string): void {
    if (this.mode === 'json') return;
    if (this.mode === 'tty' && this.barText) {
      this.stream.write(`\r\x1b[2K${line}\n${this.barText}`);
    } else {
      this.stream.write(`${line}\n`);
    }
  }

  /** A machine-readable event (JSON mode only). */
  event(type: string, payload: Record<string, unknown>): void {
    if (this.mode !== 'json') return;
    this.stream.write(`${JSON.stringify({ type, ...payload })}\n`);
  }

  /** Redraws the progress line (terminal only; throttled unless `force`). */
  bar(text: string, force = false): void {
    if (this.mode !== 'tty') return;
    const now = performance.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const columns = this.stream.columns || 100;
    this.barText = text.length >= columns ? text.slice(0, columns - 1) : text;
    this.stream.write(`\r\x1b[2K${this.barText}`);
  }

  /** Removes the progress line. */
  clearBar(): void {
    if (this.mode === 'tty' && this.barText) this.stream.write('\r\x1b[2K');
    this.barText = '';
  }
}

/** `[=======>      ]` of `width` characters for done/total. */
export function barGraphic(done: number, total: number, width: number): string {
  const f = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  const filled = Math.floor(f * width);
  const head = filled < width ? '>' : '';
  return `[${'='.repeat(filled)}${head}${' '.repeat(Math.max(0, width - filled - head.length))}]`;
}

/**
 * Estimates the time left from work units done since a start time: a
 * smoothed rate, so one slow batch does not swing the estimate.
 */
export class Eta {
  private readonly start = performance.now();
  private startUnits: number | undefined;

  /** Seconds left for `total - done` units at the rate seen so far. */
  estimate(done: number, total: number): number {
    if (this.startUnits === undefined) {
      this.startUnits = done;
      return NaN;
    }
    const seconds = (performance.now() - this.start) / 1000;
    const rate = (done - this.startUnits) / seconds;
    return rate > 0 ? (total - done) / rate : NaN;
  }

  format(done: number, total: number): string {
    return formatDuration(this.estimate(done, total));
  }
}
