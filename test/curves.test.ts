/**
 * curves.svg draws its lines without an SVG clipPath (renderers that ignore
 * or mishandle one inside a transformed group drew no curves): the lines are
 * cut to the plot here, so every path point lies inside its panel's plot.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { learningCurvesSvg } from '../src/cli/curves';

// VAE-like: epoch 1 far below the rest, so the early part is outside the y range.
const history = Array.from({ length: 30 }, (_, i) => ({
  epoch: i + 1,
  train: { elbo: i === 0 ? -250 : -100 - 40 / (i + 1), kl: i === 0 ? 2 : 20 + i / 3 },
  validation: { elbo: i === 0 ? -240 : -102 - 40 / (i + 1), kl: i === 0 ? 3 : 21 + i / 3 },
}));

describe('curves.svg', () => {
  const svg = learningCurvesSvg(history, -103, 'test');

  it('has no clipPath, and every point of every line lies inside its panel (x 58–348, y 28–220)', () => {
    expect(svg).not.toContain('clip');
    const paths = [...svg.matchAll(/<path d="([^"]+)"/g)].map((m) => m[1]);
    expect(paths.length).toBeGreaterThanOrEqual(4);
    for (const d of paths) {
      for (const [, x, y] of d.matchAll(/[ML](-?[\d.]+),(-?[\d.]+)/g)) {
        expect(Number(x)).toBeGreaterThanOrEqual(58 - 0.05);
        expect(Number(x)).toBeLessThanOrEqual(348 + 0.05);
        expect(Number(y)).toBeGreaterThanOrEqual(28 - 0.05);
        expect(Number(y)).toBeLessThanOrEqual(220 + 0.05);
      }
    }
    // The line leaves the range after epoch 1 and is drawn from where it enters.
    expect(paths[0].startsWith('M')).toBe(true);
  });

  // librsvg (Debian's librsvg2-bin, what many viewers and converters use) renders it as a viewer would.
  const rsvg = ['/usr/bin/rsvg-convert', '/usr/local/bin/rsvg-convert'].find((c) => fs.existsSync(c));
  it.skipIf(!rsvg)('rendered by librsvg, the train curve puts its colour inside the ELBO plot (skipped without rsvg-convert)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowvae-curves-'));
    fs.writeFileSync(path.join(dir, 'c.svg'), svg);
    execFileSync(rsvg!, ['-o', path.join(dir, 'c.png'), path.join(dir, 'c.svg')]);
    const png = PNG.sync.read(fs.readFileSync(path.join(dir, 'c.png')));
    fs.rmSync(dir, { recursive: true, force: true });
    // Pixels close to the train colour #1f77b4 inside the ELBO plot (x 58–348, y 28–220).
    let blue = 0;
    for (let y = 29; y < 220; y++) {
      for (let x = 59; x < 348; x++) {
        const i = 4 * (y * png.width + x);
        if (Math.abs(png.data[i] - 0x1f) < 40 && Math.abs(png.data[i + 1] - 0x77) < 40 && Math.abs(png.data[i + 2] - 0xb4) < 40) blue++;
      }
    }
    expect(blue).toBeGreaterThan(200);
  });
});
