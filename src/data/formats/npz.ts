/** NumPy .npz (a zip of .npy members), as KMNIST ships. Only what we need: uint8/int/float arrays, C order. */
import { unzipSync } from 'fflate';
import { DataError } from '../../errors.js';

export interface NpyArray {
  shape: number[];
  dtype: string;
  data: Uint8Array | Int32Array | Float32Array | Float64Array | BigInt64Array;
}

export function parseNpz(buf: Uint8Array, file: string): Record<string, NpyArray> {
  let members: Record<string, Uint8Array>;
  try {
    members = unzipSync(buf);
  } catch (err) {
    throw new DataError(
      `${file}: corrupt npz/zip archive (${(err as Error).message})`,
      'delete the file and fetch it again',
    );
  }
  const out: Record<string, NpyArray> = {};
  for (const [name, bytes] of Object.entries(members))
    out[name.replace(/\.npy$/, '')] = parseNpy(bytes, `${file}:${name}`);
  return out;
}

export function parseNpy(b: Uint8Array, file: string): NpyArray {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (b.length < 10 || magic.some((m, i) => b[i] !== m)) throw new DataError(`${file}: not a .npy array`);
  const major = b[6];
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hlen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  const header = new TextDecoder('latin1').decode(b.subarray(hstart, hstart + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeTxt = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeTxt === undefined) throw new DataError(`${file}: malformed .npy header`);
  if (fortran) throw new DataError(`${file}: Fortran-ordered arrays are not supported`);
  const shape = shapeTxt
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  const count = shape.reduce((a, c) => a * c, 1);
  const body = b.slice(hstart + hlen);
  const typed = (bytesPer: number, make: (ab: ArrayBuffer) => NpyArray['data']): NpyArray['data'] => {
    if (body.length !== count * bytesPer)
      throw new DataError(`${file}: truncated .npy payload (${body.length} bytes, want ${count * bytesPer})`);
    return make(body.buffer);
  };
  let data: NpyArray['data'];
  switch (descr) {
    case '|u1':
    case '<u1':
      data = typed(1, (ab) => new Uint8Array(ab));
      break;
    case '<i4':
      data = typed(4, (ab) => new Int32Array(ab));
      break;
    case '<i8':
      data = typed(8, (ab) => new BigInt64Array(ab));
      break;
    case '<f4':
      data = typed(4, (ab) => new Float32Array(ab));
      break;
    case '<f8':
      data = typed(8, (ab) => new Float64Array(ab));
      break;
    default:
      throw new DataError(`${file}: unsupported .npy dtype ${descr}`);
  }
  return { shape, dtype: descr, data };
}
