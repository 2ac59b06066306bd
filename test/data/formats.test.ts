import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { zipSync } from 'fflate';
import { parseIdx } from '../../src/data/formats/idx.js';
import { npzMembers, parseNpz, transposeAxes } from '../../src/data/formats/npz.js';
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

describe('NPZ parser: the dtypes numpy.savez writes', () => {
  const le = (T: { BYTES_PER_ELEMENT: number }, vals: number[], set: (v: DataView, o: number, x: number) => void) => {
    const b = new Uint8Array(vals.length * T.BYTES_PER_ELEMENT);
    const v = new DataView(b.buffer);
    vals.forEach((x, i) => set(v, i * T.BYTES_PER_ELEMENT, x));
    return b;
  };

  it('reads big-endian, float16, bool, int8/16, int64 and Fortran-ordered arrays', () => {
    const z = zipSync({
      'be.npy': npy(
        [3],
        '>f4',
        le(Float32Array, [1.5, -2, 3], (v, o, x) => v.setFloat32(o, x, false)),
      ),
      // float16 bit patterns: 1.0 = 0x3c00, -2.5 = 0xc100, 0.5 = 0x3800, +inf = 0x7c00
      'half.npy': npy(
        [4],
        '<f2',
        le(Uint16Array, [0x3c00, 0xc100, 0x3800, 0x7c00], (v, o, x) => v.setUint16(o, x, true)),
      ),
      'bool.npy': npy([3], '|b1', new Uint8Array([1, 0, 1])),
      'i1.npy': npy([2], '|i1', new Uint8Array([0xff, 7])),
      'i2.npy': npy([2], '>i2', new Uint8Array([0xff, 0xfe, 0x01, 0x00])),
      'i8.npy': npy([2], '<i8', new Uint8Array(new BigInt64Array([5n, -1n]).buffer)),
    });
    const out = parseNpz(z, 'a.npz');
    expect(Array.from(out.be.data as Float32Array)).toEqual([1.5, -2, 3]);
    expect(Array.from(out.half.data as Float32Array)).toEqual([1, -2.5, 0.5, Infinity]);
    expect(Array.from(out.bool.data as Uint8Array)).toEqual([1, 0, 1]);
    expect(Array.from(out.i1.data as Int32Array)).toEqual([-1, 7]);
    expect(Array.from(out.i2.data as Int32Array)).toEqual([-2, 256]);
    expect(Array.from(out.i8.data as BigInt64Array)).toEqual([5n, -1n]);
    // [[1, 2, 3], [4, 5, 6]] in Fortran order is stored column by column: 1 4 2 5 3 6
    const f = npy([2, 3], '<i4', new Uint8Array(new Int32Array([1, 4, 2, 5, 3, 6]).buffer));
    const header = Buffer.from(f).toString('latin1').replace("'fortran_order': False", "'fortran_order': True ");
    const ford = parseNpz(zipSync({ 'f.npy': new Uint8Array(Buffer.from(header, 'latin1')) }), 'f.npz').f;
    expect(ford.shape).toEqual([2, 3]);
    expect(Array.from(ford.data as Int32Array)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('transposes axes as numpy does', () => {
    // a = arange(24).reshape(2, 3, 4); a.transpose(0, 2, 1)[1, 3] = [15, 19, 23]
    const a = Float32Array.from({ length: 24 }, (_, i) => i);
    const t = transposeAxes(a, [2, 3, 4], [0, 2, 1]);
    expect(Array.from(t.subarray(12 + 9, 12 + 12))).toEqual([15, 19, 23]);
    expect(Array.from(transposeAxes(Int32Array.from([1, 2, 3, 4, 5, 6]), [2, 3], [1, 0]))).toEqual([1, 4, 2, 5, 3, 6]);
  });

  it('parses only the members asked for, and lists every member', () => {
    const text = npy([2], '<U1', new Uint8Array(8));
    const z = zipSync({ 'x.npy': npy([2], '|u1', new Uint8Array([1, 2])), 'names.npy': text });
    expect(() => parseNpz(z, 'n.npz')).toThrow(/names\.npy: unsupported \.npy dtype <U1 \(text or Python objects/);
    expect(Object.keys(parseNpz(z, 'n.npz', { only: ['x'] }))).toEqual(['x']);
    expect(npzMembers(z).sort()).toEqual(['names', 'x']);
  });

  it('a file that is no zip says what an .npz is; the registry keeps its advice to fetch again', () => {
    const catchIt = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as DataError;
      }
      throw new Error('no error');
    };
    const random = catchIt(() => parseNpz(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), 'r.npz'));
    expect(random.message).toBe('r.npz: is not an .npz (a zip of .npy arrays, as numpy.savez writes)');
    expect(random.hint).toBe('delete the file and fetch it again');
    const single = catchIt(() => parseNpz(npy([2], '|u1', new Uint8Array([1, 2])), 'p.npy', { hint: 'savez' }));
    expect(single.message).toMatch(/p\.npy: is a single \.npy array, not an \.npz/);
    expect(single.hint).toBe('savez');
  });
});
