/**
 * Numeric CSV input for user data: one example per line, the same number of
 * fields on every line, an optional header line (detected when its fields
 * are not numbers), `#` comment lines and blank lines skipped. Fields may be
 * wrapped in double quotes but may not contain the delimiter. `nan`/`inf`
 * (as NumPy writes them) parse as numbers and are then refused by the
 * finite-value check, which names the row, the column and the file line.
 * Line and field numbers in messages count from 1 (as editors do); rows and
 * columns of the resulting data count from 0 (as array indices do).
 */
import fs from 'node:fs';
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import { createDataset, type Dataset } from './dataset';

export type CsvDelimiter = ',' | ';' | '\t' | 'whitespace';

export interface CsvOptions {
  /** Field separator; 'auto' (default) picks ',', then tab, then ';' from the first line, else runs of whitespace. */
  delimiter?: CsvDelimiter | 'auto';
  /** Whether the first line is a header: 'auto' (default) when any field of it is not a number. */
  header?: boolean | 'auto';
  /** Name used in error messages (the file path when reading a file). */
  name?: string;
}

export interface CsvTable {
  /** Header fields, or null when there is no header line. */
  header: string[] | null;
  rows: number;
  columns: number;
  /** Values, row-major `[rows, columns]`. */
  values: Float64Array;
  /** File line (from 1) of each row. */
  lines: Uint32Array;
}

const CSV_OPTIONS = ['delimiter', 'header', 'name'];

function csvError(name: string, message: string): FlowVaeError {
  return new FlowVaeError('ERR_DATA', `${name}: ${message}`);
}

/** NumPy/pandas spellings of non-finite values, accepted so they reach the finite check with a precise message. */
const SPECIAL_VALUES: Record<string, number> = {
  nan: NaN,
  '+nan': NaN,
  '-nan': NaN,
  inf: Infinity,
  '+inf': Infinity,
  '-inf': -Infinity,
  infinity: Infinity,
  '+infinity': Infinity,
  '-infinity': -Infinity,
};

// A decimal number: optional sign, digits with optional fraction, optional exponent.
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** The number in a field, or undefined when it is not one. */
function parseField(raw: string): number | undefined {
  let field = raw.trim();
  if (field.length >= 2 && field.startsWith('"') && field.endsWith('"')) field = field.slice(1, -1).trim();
  if (NUMBER.test(field)) return Number(field);
  const special = SPECIAL_VALUES[field.toLowerCase()];
  return special;
}

function splitLine(line: string, delimiter: CsvDelimiter): string[] {
  if (delimiter === 'whitespace') return line.trim().split(/\s+/);
  return line.split(delimiter);
}

function detectDelimiter(line: string): CsvDelimiter {
  if (line.includes(',')) return ',';
  if (line.includes('\t')) return '\t';
  if (line.includes(';')) return ';';
  return 'whitespace';
}

function checkOptions(options: CsvOptions, known: string[]): void {
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw rangeError(`Unknown option "${key}" in "options"; expected one of ${known.map((k) => `"${k}"`).join(', ')}`);
    }
  }
  const { delimiter, header } = options;
  if (delimiter !== undefined && ![',', ';', '\t', 'whitespace', 'auto'].includes(delimiter)) {
    const what = 'one of ",", ";", "\\t", "whitespace", "auto"';
    throw (typeof delimiter === 'string' ? rangeError : typeError)(expected(what, 'delimiter', delimiter));
  }
  if (header !== undefined && header !== true && header !== false && header !== 'auto') {
    throw (typeof header === 'string' ? rangeError : typeError)(expected('true, false or "auto"', 'header', header));
  }
}

/** Parses numeric CSV text. */
export function parseCsv(text: string, options: CsvOptions = {}): CsvTable {
  if (typeof text !== 'string') throw typeError(expected('string', 'text', text));
  checkOptions(options, CSV_OPTIONS);
  const name = options.name ?? 'CSV data';
  const headerMode = options.header ?? 'auto';
  let delimiter: CsvDelimiter | 'auto' = options.delimiter ?? 'auto';

  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // byte-order mark
  let header: string[] | null = null;
  let columns = -1;
  let rows = 0;
  let values = new Float64Array(1024);
  let lines = new Uint32Array(64);
  let firstDataLine = 0;
  let lineNumber = 0;
  let start = 0;
  let sawContent = false;

  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    lineNumber++;
    let line = text.slice(start, end);
    start = end + 1;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) {
      if (end === text.length) break;
      continue;
    }
    if (delimiter === 'auto') delimiter = detectDelimiter(trimmed);
    const fields = splitLine(line, delimiter);

    if (!sawContent) {
      sawContent = true;
      // Header evidence is a field of text; an empty field is a data error reported below, not a header.
      const hasText = fields.some((f) => f.trim() !== '' && parseField(f) === undefined);
      const isHeader = headerMode === true || (headerMode === 'auto' && hasText);
      if (isHeader) {
        header = fields.map((f) => f.trim().replace(/^"(.*)"$/, '$1'));
        columns = fields.length;
        if (end === text.length) break;
        continue;
      }
    }
    if (columns < 0) columns = fields.length;
    if (firstDataLine === 0) firstDataLine = lineNumber;
    if (fields.length !== columns) {
      const ref = header !== null ? 'the header has' : `line ${firstDataLine} has`;
      throw csvError(name, `line ${lineNumber} has ${fields.length} fields but ${ref} ${columns}`);
    }
    if ((rows + 1) * columns > values.length) {
      const grown = new Float64Array(Math.max(values.length * 2, (rows + 1) * columns));
      grown.set(values);
      values = grown;
    }
    if (rows + 1 > lines.length) {
      const grown = new Uint32Array(lines.length * 2);
      grown.set(lines);
      lines = grown;
    }
    for (let c = 0; c < columns; c++) {
      const v = parseField(fields[c]);
      if (v === undefined) {
        const shown = fields[c].trim();
        throw csvError(
          name,
          shown === '' ? `line ${lineNumber}, field ${c + 1} is empty` : `line ${lineNumber}, field ${c + 1} is not a number: "${shown.slice(0, 40)}"`,
        );
      }
      values[rows * columns + c] = v;
    }
    lines[rows] = lineNumber;
    rows++;
    if (end === text.length) break;
  }
  if (rows === 0) throw csvError(name, header !== null ? 'no data rows after the header' : 'no data rows (the file is empty)');
  return { header, rows, columns, values: values.slice(0, rows * columns), lines: lines.slice(0, rows) };
}

/** Reads and parses a numeric CSV file. */
export function readCsv(file: string, options: CsvOptions = {}): CsvTable {
  if (typeof file !== 'string') throw typeError(expected('file path string', 'file', file));
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FlowVaeError('ERR_DATA', `${file}: ${code === 'ENOENT' ? 'no such file' : `cannot be read (${(err as Error).message})`}`, {
      cause: err,
    });
  }
  return parseCsv(text, { ...options, name: options.name ?? file });
}

export interface CsvDatasetOptions extends CsvOptions {
  /** Column holding class labels (index from 0, or header name): taken out of the data as integer labels in [0, 255]. */
  labelColumn?: number | string;
  /** Shape of one example (e.g. [28, 28]); defaults to [columns]. */
  shape?: readonly number[];
}

/** Converts a parsed table into a Dataset, with an optional label column. */
export function csvTableToDataset(table: CsvTable, options: CsvDatasetOptions = {}): Dataset {
  checkOptions(options, [...CSV_OPTIONS, 'labelColumn', 'shape']);
  const name = options.name ?? 'CSV data';
  const { rows, columns, values, lines } = table;
  let labelIndex = -1;
  const lc = options.labelColumn;
  if (lc !== undefined) {
    if (typeof lc === 'number') {
      if (!Number.isInteger(lc) || lc < 0 || lc >= columns) throw rangeError(expected(`column index in [0, ${columns})`, 'labelColumn', lc));
      labelIndex = lc;
    } else if (typeof lc === 'string') {
      labelIndex = table.header === null ? -1 : table.header.indexOf(lc);
      if (labelIndex < 0) {
        const known = table.header === null ? 'the file has no header' : `header: ${table.header.slice(0, 10).join(', ')}`;
        throw rangeError(`Expected a column name for "labelColumn" but received "${lc}" (string); ${known}`);
      }
    } else {
      throw typeError(expected('column index or header name', 'labelColumn', lc));
    }
  }
  const dim = labelIndex >= 0 ? columns - 1 : columns;
  if (dim === 0) throw csvError(name, 'no data columns besides the label column');
  const x = new Float32Array(rows * dim);
  const labels = labelIndex >= 0 ? new Uint8Array(rows) : undefined;
  for (let r = 0; r < rows; r++) {
    let out = r * dim;
    for (let c = 0; c < columns; c++) {
      const v = values[r * columns + c];
      if (c === labelIndex) {
        if (!(Number.isInteger(v) && v >= 0 && v <= 255)) {
          throw csvError(name, `line ${lines[r]}, field ${c + 1}: label ${v} is not an integer in [0, 255]`);
        }
        labels![r] = v;
        continue;
      }
      const f = Math.fround(v);
      if (!(f - f === 0)) {
        const col = out - r * dim;
        const what = Number.isFinite(v) ? `${v}, which overflows float32` : Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
        throw csvError(name, `row ${r}, column ${col} is ${what} (line ${lines[r]}, field ${c + 1})`);
      }
      x[out++] = f;
    }
  }
  return createDataset(x, {
    dim,
    name,
    ...(options.shape !== undefined ? { shape: options.shape } : {}),
    ...(labels !== undefined ? { labels } : {}),
  });
}

/** Loads a numeric CSV file as a Dataset (see CsvDatasetOptions). */
export function loadCsvDataset(file: string, options: CsvDatasetOptions = {}): Dataset {
  checkOptions(options, [...CSV_OPTIONS, 'labelColumn', 'shape']);
  const { labelColumn, shape, ...csvOptions } = options;
  const table = readCsv(file, csvOptions);
  const name = options.name ?? file;
  return csvTableToDataset(table, {
    name,
    ...(labelColumn !== undefined ? { labelColumn } : {}),
    ...(shape !== undefined ? { shape } : {}),
  });
}
