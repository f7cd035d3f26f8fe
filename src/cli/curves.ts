/**
 * Learning curves as a small standalone SVG: ELBO and KL per epoch for the
 * training and validation sets, with the test ELBO marked when known. SVG is
 * text, so this needs no library; browsers and GitHub render it.
 */
export interface Series {
  label: string;
  color: string;
  /** [epoch, value] points; NaN values are skipped. */
  points: [number, number][];
  dashed?: boolean;
}

interface Panel {
  title: string;
  yLabel: string;
  series: Series[];
}

const WIDTH = 360;
const HEIGHT = 260;
const M = { left: 58, right: 12, top: 28, bottom: 40 };

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function formatTick(v: number): string {
  return Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(6)));
}

/**
 * The y range of a panel: the early epochs of a VAE are far below the rest
 * (ELBO −250 at epoch 1, −100 later), so with more than a few epochs the
 * first tenth of the run is left out of the range (the lines are clipped)
 * and the interesting part stays readable.
 */
function yRange(series: Series[]): [number, number] {
  const values: number[] = [];
  for (const s of series) {
    const n = s.points.length;
    const skip = n > 5 ? Math.max(1, Math.floor(n / 10)) : 0;
    s.points.slice(skip).forEach(([, v]) => Number.isFinite(v) && values.push(v));
  }
  if (values.length === 0) for (const s of series) s.points.forEach(([, v]) => Number.isFinite(v) && values.push(v));
  if (values.length === 0) return [0, 1];
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi - lo < 1e-9) {
    lo -= 0.5;
    hi += 0.5;
  }
  const pad = 0.05 * (hi - lo);
  return [lo - pad, hi + pad];
}

/**
 * SVG path data of the polyline through `pts` (epoch, value) with every
 * segment cut to values in [lo, hi]: parts outside are left out and the
 * line resumes where it re-enters.
 */
function clippedPath(pts: [number, number][], lo: number, hi: number, sx: (e: number) => number, sy: (v: number) => number): string {
  const parts: string[] = [];
  let penAt: string | null = null;
  const at = (e: number, v: number) => `${sx(e).toFixed(1)},${sy(v).toFixed(1)}`;
  for (let i = 0; i + 1 < pts.length; i++) {
    const [e0, v0] = pts[i];
    const [e1, v1] = pts[i + 1];
    // The part of the segment with lo ≤ v ≤ hi, as t in [t0, t1] along it.
    let t0 = 0;
    let t1 = 1;
    if (v0 === v1) {
      if (v0 < lo || v0 > hi) continue;
    } else {
      const ta = (lo - v0) / (v1 - v0);
      const tb = (hi - v0) / (v1 - v0);
      t0 = Math.max(0, Math.min(ta, tb));
      t1 = Math.min(1, Math.max(ta, tb));
      if (t0 > t1) continue;
    }
    const start = at(e0 + t0 * (e1 - e0), v0 + t0 * (v1 - v0));
    const end = at(e0 + t1 * (e1 - e0), v0 + t1 * (v1 - v0));
    if (start !== penAt) parts.push(`M${start}`);
    parts.push(`L${end}`);
    penAt = end;
  }
  return parts.join('');
}

function panel(p: Panel, x0: number): string {
  const w = WIDTH - M.left - M.right;
  const h = HEIGHT - M.top - M.bottom;
  const epochs = p.series.flatMap((s) => s.points.map(([e]) => e));
  const xMin = Math.min(1, ...epochs);
  const xMax = Math.max(xMin + 1, ...epochs);
  const [yLo, yHi] = yRange(p.series);
  const sx = (e: number) => M.left + ((e - xMin) / (xMax - xMin)) * w;
  const sy = (v: number) => M.top + (1 - (v - yLo) / (yHi - yLo)) * h;
  const out: string[] = [];
  out.push(`<g transform="translate(${x0},0)">`);
  out.push(`<text x="${M.left + w / 2}" y="18" text-anchor="middle" font-weight="bold">${escapeXml(p.title)}</text>`);
  out.push(`<rect x="${M.left}" y="${M.top}" width="${w}" height="${h}" fill="none" stroke="#999"/>`);
  for (const t of niceTicks(yLo, yHi)) {
    const y = sy(t).toFixed(1);
    out.push(`<line x1="${M.left}" x2="${M.left + w}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    out.push(`<text x="${M.left - 4}" y="${y}" text-anchor="end" dominant-baseline="middle">${formatTick(t)}</text>`);
  }
  for (const t of niceTicks(xMin, xMax, 6).filter((t) => Number.isInteger(t))) {
    const x = sx(t).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${M.top + h}" y2="${M.top + h + 4}" stroke="#999"/>`);
    out.push(`<text x="${x}" y="${M.top + h + 16}" text-anchor="middle">${t}</text>`);
  }
  out.push(`<text x="${M.left + w / 2}" y="${HEIGHT - 6}" text-anchor="middle">epoch</text>`);
  out.push(`<text transform="translate(14,${M.top + h / 2}) rotate(-90)" text-anchor="middle">${escapeXml(p.yLabel)}</text>`);
  // The lines are clipped to the y range here rather than with an SVG clipPath,
  // which some renderers ignore or mishandle inside a transformed group.
  out.push(`<g fill="none" stroke-width="1.8">`);
  for (const s of p.series) {
    const pts = s.points.filter(([, v]) => Number.isFinite(v));
    if (pts.length === 0) continue;
    const dash = s.dashed ? ' stroke-dasharray="5,4"' : '';
    if (pts.length === 1) {
      const [e, v] = pts[0];
      out.push(`<circle cx="${sx(e).toFixed(1)}" cy="${sy(v).toFixed(1)}" r="3" fill="${s.color}" stroke="none"/>`);
    } else {
      const d = clippedPath(pts, yLo, yHi, sx, sy);
      if (d) out.push(`<path d="${d}" stroke="${s.color}"${dash}/>`);
    }
  }
  out.push('</g>');
  // Legend, bottom right inside the plot.
  p.series.forEach((s, i) => {
    const y = M.top + h - 10 - 14 * (p.series.length - 1 - i);
    const x = M.left + w - 110;
    const dash = s.dashed ? ' stroke-dasharray="5,4"' : '';
    out.push(`<line x1="${x}" x2="${x + 18}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${x + 24}" y="${y}" dominant-baseline="middle">${escapeXml(s.label)}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}

export interface CurveHistory {
  epoch: number;
  train: { elbo: number; kl: number };
  validation?: { elbo: number; kl: number };
}

/** ELBO (left) and KL (right) per epoch; the test ELBO as a dashed level line. */
export function learningCurvesSvg(history: CurveHistory[], testElbo?: number, title = ''): string {
  const train = '#1f77b4';
  const val = '#ff7f0e';
  const test = '#2ca02c';
  const elbo: Series[] = [{ label: 'train', color: train, points: history.map((h) => [h.epoch, h.train.elbo]) }];
  const kl: Series[] = [{ label: 'train', color: train, points: history.map((h) => [h.epoch, h.train.kl]) }];
  if (history.some((h) => h.validation)) {
    elbo.push({ label: 'validation', color: val, points: history.map((h) => [h.epoch, h.validation?.elbo ?? NaN]) });
    kl.push({ label: 'validation', color: val, points: history.map((h) => [h.epoch, h.validation?.kl ?? NaN]) });
  }
  if (testElbo !== undefined && Number.isFinite(testElbo) && history.length > 0) {
    const first = history[0].epoch;
    const last = history[history.length - 1].epoch;
    elbo.push({
      label: 'test (final)',
      color: test,
      dashed: true,
      points: [
        [first, testElbo],
        [Math.max(last, first + 1), testElbo],
      ],
    });
  }
  const width = 2 * WIDTH;
  const top = title ? 22 : 0;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${HEIGHT + top}" viewBox="0 0 ${width} ${HEIGHT + top}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
  ];
  if (title) parts.push(`<text x="${width / 2}" y="16" text-anchor="middle" font-size="13">${escapeXml(title)}</text>`);
  parts.push(`<g transform="translate(0,${top})">`);
  parts.push(panel({ title: 'ELBO (nats per example)', yLabel: 'ELBO', series: elbo }, 0));
  parts.push(panel({ title: 'KL (nats per example)', yLabel: 'KL', series: kl }, WIDTH));
  parts.push('</g>', '</svg>', '');
  return parts.join('\n');
}
