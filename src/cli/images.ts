/**
 * Pictures the CLI writes: grids of examples (samples, reconstructions) and
 * density heatmaps, as RGBA rasters encoded to PNG by pngjs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';

export class Raster {
  readonly width: number;
  readonly height: number;
  /** RGBA, row-major, 4 bytes per pixel. */
  readonly data: Buffer;

  constructor(width: number, height: number, background: readonly [number, number, number] = [255, 255, 255]) {
    this.width = width;
    this.height = height;
    this.data = Buffer.alloc(width * height * 4);
    for (let i = 0; i < width * height; i++) {
      this.data[4 * i] = background[0];
      this.data[4 * i + 1] = background[1];
      this.data[4 * i + 2] = background[2];
      this.data[4 * i + 3] = 255;
    }
  }

  set(x: number, y: number, rgb: readonly [number, number, number]): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = 4 * (y * this.width + x);
    this.data[o] = rgb[0];
    this.data[o + 1] = rgb[1];
    this.data[o + 2] = rgb[2];
  }

  /** Copies `src` with its top-left corner at (x, y). */
  blit(src: Raster, x: number, y: number): void {
    for (let r = 0; r < src.height; r++) {
      const ty = y + r;
      if (ty < 0 || ty >= this.height) continue;
      for (let c = 0; c < src.width; c++) {
        const tx = x + c;
        if (tx < 0 || tx >= this.width) continue;
        src.data.copy(this.data, 4 * (ty * this.width + tx), 4 * (r * src.width + c), 4 * (r * src.width + c) + 4);
      }
    }
  }

  /** PNG bytes: 8-bit greyscale when every pixel is grey (a quarter of the size), else RGB. */
  toPng(): Buffer {
    const png = new PNG({ width: this.width, height: this.height });
    this.data.copy(png.data);
    let grey = true;
    for (let i = 0; i < this.data.length && grey; i += 4) grey = this.data[i] === this.data[i + 1] && this.data[i] === this.data[i + 2];
    return PNG.sync.write(png, { colorType: grey ? 0 : 2 });
  }

  /** Writes the PNG to a temporary file and renames it, so a reader never sees half a file. */
  save(file: string): void {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, this.toPng());
    fs.renameSync(tmp, file);
  }
}

export interface GridOptions {
  /** Examples per grid row (default: a square-ish grid). */
  columns?: number;
  /** Pixels per value (default 2). */
  scale?: number;
  /** Pixels between cells (default 2). */
  gap?: number;
  /**
   * Value range mapped to black..white: [0, 1] for probabilities (default);
   * 'auto' uses the min and max of all values (Gaussian data).
   */
  range?: [number, number] | 'auto';
}

function valueRange(values: ArrayLike<number>, range: GridOptions['range']): [number, number] {
  if (range !== 'auto' && range !== undefined) return range;
  if (range === undefined) return [0, 1];
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if (values[i] < lo) lo = values[i];
    if (values[i] > hi) hi = values[i];
  }
  return hi > lo ? [lo, hi] : [lo - 0.5, lo + 0.5];
}

/**
 * `count` examples of shape [rows, cols] (row-major, one after another in
 * `values`) drawn as grey images, dark digits on white as on paper: value
 * `hi` is black.
 */
export function imageGrid(values: ArrayLike<number>, count: number, shape: readonly [number, number], options: GridOptions = {}): Raster {
  const [rows, cols] = shape;
  const columns = Math.max(1, Math.min(count, options.columns ?? Math.ceil(Math.sqrt(count))));
  const gridRows = Math.ceil(count / columns);
  const scale = options.scale ?? 2;
  // Strips (one-row examples) get height so they stay visible.
  const cellH = rows === 1 ? Math.max(8, scale) : rows * scale;
  const cellW = cols * scale;
  const gap = options.gap ?? 2;
  const [lo, hi] = valueRange(values, options.range);
  const img = new Raster(gap + columns * (cellW + gap), gap + gridRows * (cellH + gap), [160, 160, 160]);
  for (let k = 0; k < count; k++) {
    const x0 = gap + (k % columns) * (cellW + gap);
    const y0 = gap + Math.floor(k / columns) * (cellH + gap);
    for (let py = 0; py < cellH; py++) {
      const r = rows === 1 ? 0 : Math.floor(py / scale);
      for (let px = 0; px < cellW; px++) {
        const c = Math.floor(px / scale);
        const v = values[k * rows * cols + r * cols + c];
        const t = Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
        const g = Math.round(255 * (1 - t));
        img.set(x0 + px, y0 + py, [g, g, g]);
      }
    }
  }
  return img;
}

/** Rasters side by side, top-aligned, `gap` background pixels apart. */
export function sideBySide(parts: Raster[], gap = 8, background: readonly [number, number, number] = [255, 255, 255]): Raster {
  const width = parts.reduce((w, p) => w + p.width, 0) + gap * (parts.length + 1);
  const height = Math.max(...parts.map((p) => p.height)) + 2 * gap;
  const out = new Raster(width, height, background);
  let x = gap;
  for (const p of parts) {
    out.blit(p, x, gap);
    x += p.width + gap;
  }
  return out;
}

// Viridis at nine evenly spaced points (matplotlib's table), interpolated linearly.
const VIRIDIS: readonly (readonly [number, number, number])[] = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];

/** Viridis colour of t in [0, 1]. */
export function viridis(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS[i];
  const b = VIRIDIS[i + 1];
  return [Math.round(a[0] + f * (b[0] - a[0])), Math.round(a[1] + f * (b[1] - a[1])), Math.round(a[2] + f * (b[2] - a[2]))];
}

/**
 * A density on a `size` × `size` grid (row 0 at the top) as a viridis
 * heatmap, scaled so the largest value is yellow and 0 is dark purple.
 */
export function densityHeatmap(density: ArrayLike<number>, size: number, max?: number): Raster {
  let top = max ?? 0;
  if (max === undefined) for (let i = 0; i < density.length; i++) if (density[i] > top) top = density[i];
  const img = new Raster(size, size);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) img.set(x, y, viridis(top > 0 ? density[y * size + x] / top : 0));
  return img;
}

/**
 * 2-D points drawn on a `size` × `size` picture of the square
 * [-extent, extent]², y up, as a 2-D histogram (darker = more points).
 */
export function scatterPlot(points: ArrayLike<number>, count: number, size: number, extent: number): Raster {
  const hist = new Float64Array(size * size);
  let max = 0;
  for (let k = 0; k < count; k++) {
    const px = Math.floor(((points[2 * k] + extent) / (2 * extent)) * size);
    const py = Math.floor(((extent - points[2 * k + 1]) / (2 * extent)) * size);
    if (px < 0 || py < 0 || px >= size || py >= size) continue;
    const v = ++hist[py * size + px];
    if (v > max) max = v;
  }
  const img = new Raster(size, size);
  for (let i = 0; i < size * size; i++) {
    if (hist[i] === 0) continue;
    // Square root: single points stay visible beside dense regions.
    const t = Math.sqrt(hist[i] / max);
    const g = Math.round(200 * (1 - t));
    img.set(i % size, Math.floor(i / size), [g, g, Math.min(255, g + 40)]);
  }
  return img;
}
