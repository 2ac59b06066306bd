import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { zipSync } from 'fflate';
import { parseIdx } from '../../src/data/formats/idx.js';
import { parseNpz } from '../../src/data/formats/npz.js';
import { DataError } from '../../src/errors.js';

function idx(dims: number[], payload: number[]): Uint8Array {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return new Uint8Array(Buffer.concat([head, Buffer.from(payload)]));
}

function npy(shape: number[], descr: string, body: Uint8Array): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  while ((10 + header.length + 1) % 64 !== 0) header += ' ';
  header += '\n';
  const h = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(h);
  h.writeUInt16LE(header.length, 8);
  return new Uint8Array(Buffer.concat([h, Buffer.from(header, 'latin1'), Buffer.from(body)]));
}

describe('IDX parser', () => {
  it('reads dims and payload, gzipped or not', () => {
    const raw = idx([2, 2, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    for (const b of [raw, new Uint8Array(gzipSync(raw))]) {
      const a = parseIdx(b, 'x');
      expect(a.dims).toEqual([2, 2, 3]);
      expect(Array.from(a.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }
  });

  it('rejects truncated payloads, bad magic and broken gzip with a DataError naming the file', () => {
    expect(() => parseIdx(idx([3, 2], [1, 2, 3]), 'train-images')).toThrow(/train-images: truncated IDX payload/);
    expect(() => parseIdx(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), 'f')).toThrow(DataError);
    const gz = new Uint8Array(gzipSync(idx([2], [1, 2])));
    expect(() => parseIdx(gz.subarray(0, gz.length - 6), 'g.gz')).toThrow(/g.gz: corrupt gzip/);
  });
});

describe('NPZ parser', () => {
  it('reads uint8 arrays from a deflated zip', () => {
    const arr = npy([2, 3], '|u1', new Uint8Array([0, 1, 2, 253, 254, 255]));
    const z = zipSync({ 'arr_0.npy': arr });
    const out = parseNpz(z, 'a.npz');
    expect(out.arr_0.shape).toEqual([2, 3]);
    expect(Array.from(out.arr_0.data as Uint8Array)).toEqual([0, 1, 2, 253, 254, 255]);
  });

  it('rejects a corrupt archive and a truncated array', () => {
    expect(() => parseNpz(new Uint8Array([1, 2, 3, 4]), 'bad.npz')).toThrow(DataError);
    const short = zipSync({ 'arr_0.npy': npy([4], '|u1', new Uint8Array([1, 2])) });
    expect(() => parseNpz(short, 's.npz')).toThrow(/truncated .npy payload/);
  });
});
