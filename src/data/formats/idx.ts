/** IDX files (LeCun's MNIST format), optionally gzipped. Validates magic, dims and payload length. */
import { gunzipSync } from 'node:zlib';
import { DataError } from '../../errors.js';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export function parseIdx(buf: Uint8Array, file: string): IdxArray {
  let raw: Uint8Array = buf;
  if (buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      raw = gunzipSync(buf);
    } catch (err) {
      throw new DataError(
        `${file}: corrupt gzip stream (${(err as Error).message})`,
        'delete the file and fetch it again',
      );
    }
  }
  if (raw.length < 8 || raw[0] !== 0 || raw[1] !== 0) throw new DataError(`${file}: not an IDX file (bad magic)`);
  if (raw[2] !== 0x08)
    throw new DataError(`${file}: unsupported IDX element type 0x${raw[2].toString(16)} (want unsigned byte)`);
  const nd = raw[3];
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i));
  const header = 4 + 4 * nd;
  const want = dims.reduce((a, b) => a * b, 1);
  if (raw.length - header !== want) {
    throw new DataError(
      `${file}: truncated IDX payload (${raw.length - header} bytes, header says ${want})`,
      'delete the file and fetch it again',
    );
  }
  return { dims, data: raw.subarray(header) };
}
