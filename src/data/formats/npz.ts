/**
 * NumPy .npz (a zip of .npy members), as KMNIST ships and as `numpy.savez` writes the user's own
 * arrays (`-d npz:path=F`). Numbers of every common dtype (bool, int8…64, uint8…64, float16/32/64, either
 * byte order, C or Fortran order); not text or Python objects.
 */
import { unzipSync } from 'fflate';
import { DataError } from '../../errors.js';

export interface NpyArray {
  shape: number[];
  dtype: string;
  data: Uint8Array | Int32Array | Float32Array | Float64Array | BigInt64Array;
}

export interface NpzOptions {
  /** parse only these members (names without .npy): the others are not even decompressed */
  only?: readonly string[];
  /** the advice for a file that is no readable zip (default: the registry's — fetch it again) */
  hint?: string;
}

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
const member = (name: string) => name.replace(/\.npy$/, '');

/** The members' names (without .npy), read from the zip's directory only; [] for a file that is no zip. */
export function npzMembers(buf: Uint8Array): string[] {
  const names: string[] = [];
  try {
    unzipSync(buf, { filter: (f) => (names.push(member(f.name)), false) });
  } catch {
    return [];
  }
  return names;
}

export function parseNpz(buf: Uint8Array, file: string, opts: NpzOptions = {}): Record<string, NpyArray> {
  let members: Record<string, Uint8Array>;
  const only = opts.only;
  try {
    members = unzipSync(buf, only ? { filter: (f) => only.includes(member(f.name)) } : undefined);
  } catch (err) {
    const zip = buf[0] === 0x50 && buf[1] === 0x4b; // 'PK'
    const npy = NPY_MAGIC.every((m, i) => buf[i] === m);
    throw new DataError(
      `${file}: ${
        zip
          ? `corrupt npz/zip archive (${(err as Error).message})`
          : `is ${npy ? 'a single .npy array, ' : ''}not an .npz (a zip of .npy arrays, as numpy.savez writes)`
      }`,
      opts.hint ?? 'delete the file and fetch it again',
    );
  }
  const out: Record<string, NpyArray> = {};
  for (const [name, bytes] of Object.entries(members)) out[member(name)] = parseNpy(bytes, `${file}:${name}`);
  return out;
}

/** IEEE half precision, bit pattern `h`, as a number. */
function half(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return sign * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : sign * Infinity;
  return sign * 2 ** (e - 15) * (1 + f / 1024);
}

/** How each numeric dtype is read: the typed array it becomes and the DataView getter for a non-native one. */
type Reader = { make: (n: number) => NpyArray['data']; get: (v: DataView, o: number, le: boolean) => number | bigint };
const READERS: Record<string, Reader> = {
  b1: { make: (n) => new Uint8Array(n), get: (v, o) => (v.getUint8(o) ? 1 : 0) },
  u1: { make: (n) => new Uint8Array(n), get: (v, o) => v.getUint8(o) },
  i1: { make: (n) => new Int32Array(n), get: (v, o) => v.getInt8(o) },
  i2: { make: (n) => new Int32Array(n), get: (v, o, le) => v.getInt16(o, le) },
  u2: { make: (n) => new Int32Array(n), get: (v, o, le) => v.getUint16(o, le) },
  i4: { make: (n) => new Int32Array(n), get: (v, o, le) => v.getInt32(o, le) },
  u4: { make: (n) => new Float64Array(n), get: (v, o, le) => v.getUint32(o, le) },
  i8: { make: (n) => new BigInt64Array(n), get: (v, o, le) => v.getBigInt64(o, le) },
  u8: { make: (n) => new Float64Array(n), get: (v, o, le) => Number(v.getBigUint64(o, le)) },
  f2: { make: (n) => new Float32Array(n), get: (v, o, le) => half(v.getUint16(o, le)) },
  f4: { make: (n) => new Float32Array(n), get: (v, o, le) => v.getFloat32(o, le) },
  f8: { make: (n) => new Float64Array(n), get: (v, o, le) => v.getFloat64(o, le) },
};
/** dtypes whose little-endian bytes are already the typed array READERS makes */
const NATIVE: Record<string, (b: ArrayBuffer) => NpyArray['data']> = {
  b1: (b) => new Uint8Array(b).map((v) => (v ? 1 : 0)),
  u1: (b) => new Uint8Array(b),
  i4: (b) => new Int32Array(b),
  i8: (b) => new BigInt64Array(b),
  f4: (b) => new Float32Array(b),
  f8: (b) => new Float64Array(b),
};

export function parseNpy(b: Uint8Array, file: string): NpyArray {
  if (b.length < 10 || NPY_MAGIC.some((m, i) => b[i] !== m)) throw new DataError(`${file}: not a .npy array`);
  const major = b[6];
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hlen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  const header = new TextDecoder('latin1').decode(b.subarray(hstart, hstart + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeTxt = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeTxt === undefined) throw new DataError(`${file}: malformed .npy header`);
  const shape = shapeTxt
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  const m = /^([<>|=])([biuf]\d)$/.exec(descr);
  const reader = m ? READERS[m[2]] : undefined;
  if (!m || !reader)
    throw new DataError(
      `${file}: unsupported .npy dtype ${descr}${/[OUSV]/.test(descr) ? ' (text or Python objects, not numbers)' : ''}`,
      'save numbers: np.asarray(a, dtype=np.float32), or int64 class indices for labels',
    );
  const bytesPer = Number(m[2].slice(1));
  const count = shape.reduce((a, c) => a * c, 1);
  const body = b.slice(hstart + hlen);
  if (body.length !== count * bytesPer)
    throw new DataError(`${file}: truncated .npy payload (${body.length} bytes, want ${count * bytesPer})`);
  const little = m[1] !== '>';
  let data: NpyArray['data'];
  if (little && NATIVE[m[2]]) data = NATIVE[m[2]](body.buffer);
  else {
    data = reader.make(count);
    const v = new DataView(body.buffer);
    const out = data as unknown as { [i: number]: number | bigint };
    for (let i = 0; i < count; i++) out[i] = reader.get(v, i * bytesPer, little);
  }
  // Fortran order is C order of the reversed shape: reverse the axes back
  if (fortran && shape.length > 1)
    data = transposeAxes(
      data,
      [...shape].reverse(),
      shape.map((_, i) => shape.length - 1 - i),
    );
  return { shape, dtype: descr, data };
}

/** `data` of C-order `shape` with its axes permuted (numpy's `a.transpose(perm)`), as a new array of its type. */
export function transposeAxes<T extends NpyArray['data']>(
  data: T,
  shape: readonly number[],
  perm: readonly number[],
): T {
  const rank = shape.length;
  const strides = new Array<number>(rank);
  for (let k = rank - 1, s = 1; k >= 0; s *= shape[k], k--) strides[k] = s;
  const outShape = perm.map((p) => shape[p]);
  const outStrides = perm.map((p) => strides[p]); // the input stride of each output axis
  const out = data.slice() as T;
  const src = data as unknown as ArrayLike<number | bigint>;
  const dst = out as unknown as { [i: number]: number | bigint };
  const idx = new Array<number>(rank).fill(0);
  let from = 0;
  for (let o = 0; o < data.length; o++) {
    dst[o] = src[from];
    for (let k = rank - 1; k >= 0; k--) {
      // odometer over the output's index, tracking the input offset
      if (++idx[k] < outShape[k]) {
        from += outStrides[k];
        break;
      }
      from -= (outShape[k] - 1) * outStrides[k];
      idx[k] = 0;
    }
  }
  return out;
}

/** One split of a classification .npz, as datasets hold it. */
export interface NpzSplit {
  x: Float32Array;
  y: Int32Array;
  n: number;
}

/** x_train, y_train, x_test, y_test of a user's .npz, checked and converted (see `npzExamples`). */
export interface NpzExamples {
  /** [features] or [h, w, c] */
  inputShape: number[];
  numClasses: number;
  train: NpzSplit;
  test: NpzSplit;
  /** x was uint8, now scaled to [0, 1] */
  uint8: boolean;
  /** what was read differently from how it was saved (channels first, one-hot labels) */
  notes: string[];
}

const dims = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/**
 * Examples of a classifier from the arrays `x_train`, `y_train`, `x_test`, `y_test`: x as [n, features]
 * or images [n, h, w, c] ([n, h, w] is one channel; [n, c, h, w] as PyTorch saves it is transposed, and
 * said so), uint8 scaled to [0, 1]; y as class indices 0…k−1 ([n] or one-hot [n, k]). Everything else
 * is one line naming the array (`where` starts each message) and how to save it instead; `file` starts
 * each note.
 */
export function npzExamples(arrays: Record<string, NpyArray>, where: string, file = where): NpzExamples {
  const notes: string[] = [];
  const [xTr, xTe] = [arrays.x_train, arrays.x_test];
  for (const [name, a] of [['x_train', xTr] as const, ['x_test', xTe] as const]) {
    if (a.shape.length < 2 || a.shape.length > 4)
      throw new DataError(`${where}: ${name} must be [n, features] or [n, h, w, c], got ${dims(a.shape)}`);
    if (!a.shape[0])
      throw new DataError(
        `${where}: ${name} has no examples (${dims(a.shape)})`,
        'a victim is measured on its test split: save examples in x_test and y_test too',
      );
  }
  let shape = xTr.shape.slice(1);
  if (xTe.shape.slice(1).join() !== shape.join())
    throw new DataError(
      `${where}: x_train's examples are ${dims(shape)} but x_test's are ${dims(xTe.shape.slice(1))}; they must match`,
    );
  const uint8 = /u1$/.test(xTr.dtype);
  if (uint8 !== /u1$/.test(xTe.dtype))
    throw new DataError(
      `${where}: x_train is ${xTr.dtype} but x_test is ${xTe.dtype}; uint8 images are scaled to [0, 1], so save both alike`,
    );
  let channelsFirst = false;
  if (shape.length === 2) {
    shape = [...shape, 1];
    notes.push(`${file}: x is [n, h, w]: read as one-channel images [n, h, w, 1]`);
  } else if (shape.length === 3) {
    const chan = (c: number) => c === 1 || c === 3;
    if (chan(shape[0]) && chan(shape[2]))
      throw new DataError(
        `${where}: x_train is ${dims(xTr.shape)}: channels first or last?`,
        'save images as [n, h, w, c]: x.transpose(0, 2, 3, 1) if they are [n, c, h, w]',
      );
    if (chan(shape[0])) {
      channelsFirst = true;
      shape = [shape[1], shape[2], shape[0]];
      notes.push(`${file}: x is [n, c, h, w] (channels first, as PyTorch saves it): transposed to [n, h, w, c]`);
    }
  }
  const floats = (name: string, a: NpyArray): Float32Array => {
    const data = channelsFirst ? transposeAxes(a.data, a.shape, [0, 2, 3, 1]) : a.data;
    const scale = uint8 ? 1 / 255 : 1;
    const x = new Float32Array(data.length);
    let bad = 0;
    for (let i = 0; i < data.length; i++) {
      x[i] = Number(data[i]) * scale;
      if (!Number.isFinite(x[i])) bad++;
    }
    if (bad)
      throw new DataError(
        `${where}: ${name} holds ${bad} NaN or infinite values (or beyond float32's range)`,
        'replace them (numpy.nan_to_num) or drop those examples',
      );
    return x;
  };
  const trY = labels('y_train', arrays.y_train, xTr.shape[0], where);
  const teY = labels('y_test', arrays.y_test, xTe.shape[0], where);
  if (trY.oneHot || teY.oneHot) notes.push(`${file}: one-hot labels [n, k] read as class indices (argmax)`);
  if (trY.oneHot && teY.oneHot && trY.oneHot !== teY.oneHot)
    throw new DataError(`${where}: y_train is one-hot over ${trY.oneHot} classes but y_test over ${teY.oneHot}`);
  let max = trY.oneHot - 1;
  const seen = new Set<number>();
  for (const v of trY.y) {
    if (v > max) max = v;
    seen.add(v);
  }
  const k = max + 1;
  for (const v of teY.y)
    if (v >= k)
      throw new DataError(
        `${where}: y_test holds label ${v}, but y_train's labels are 0…${max}`,
        'number classes alike in both splits',
      );
  if (seen.size < 2) throw new DataError(`${where}: y_train holds ${seen.size} class; a classifier needs at least 2`);
  if (!trY.oneHot && 2 * (k - seen.size) > k)
    throw new DataError(
      `${where}: labels must be class indices 0…k−1; remap them (y_train holds ${seen.size} distinct labels from 0 to ${max})`,
      'classes, y = np.unique(y, return_inverse=True) numbers them 0…k−1 (map y_test with the same classes)',
    );
  return {
    inputShape: shape,
    numClasses: k,
    train: { x: floats('x_train', xTr), y: trY.y, n: xTr.shape[0] },
    test: { x: floats('x_test', xTe), y: teY.y, n: xTe.shape[0] },
    uint8,
    notes,
  };
}

/** Class indices from [n], [n, 1] or one-hot [n, k] labels; `oneHot` is k for one-hot labels, else 0. */
function labels(name: string, a: NpyArray, n: number, where: string): { y: Int32Array; oneHot: number } {
  const s = a.shape;
  if (s.length > 2 || s.length < 1)
    throw new DataError(`${where}: ${name} is ${dims(s)}; labels are [n] class indices (or one-hot [n, k])`);
  if (s[0] !== n)
    throw new DataError(`${where}: ${name} has ${s[0]} labels for ${n} examples (x_${name.slice(2)} is [${n}, …])`);
  const width = s.length === 2 ? s[1] : 1;
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (width === 1) {
      const v = Number(a.data[i]);
      if (!Number.isInteger(v) || v < 0)
        throw new DataError(
          `${where}: ${name} holds ${Number.isFinite(v) ? +v.toPrecision(7) : v} (index ${i}); labels must be class indices 0…k−1`,
          Number.isInteger(v) ? 'remap the labels to 0…k−1' : 'labels are whole numbers: y.astype(np.int64)',
        );
      y[i] = v;
      continue;
    }
    let hot = -1;
    for (let j = 0; j < width; j++) {
      const v = Number(a.data[i * width + j]);
      if (v !== 0 && (v !== 1 || hot >= 0))
        throw new DataError(
          `${where}: ${name} is ${dims(s)} but row ${i} is not one-hot; give class indices [n]`,
          'y.argmax(1) if the rows are scores',
        );
      if (v === 1) hot = j;
    }
    if (hot < 0)
      throw new DataError(`${where}: ${name} is ${dims(s)} but row ${i} is all zeros; give class indices [n]`);
    y[i] = hot;
  }
  return { y, oneHot: width > 1 ? width : 0 };
}
