import { describe, expect, it } from 'vitest';
import { nativeBlas, nativeStatus } from '../../src/compute/native.js';
import { Rng } from '../../src/compute/rng.js';

// The native addon splits GEMM rows and convolution chunks between its own threads (OpenBLAS stays
// single-threaded). Every result must be the same bits whatever the thread count, so that a seed
// gives the same CSV on a 2-core laptop and a 64-core node.
const blas = nativeBlas();

function rand(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => r.normal());
}

/** Run f with 1, 2 and 3 threads; each run's output, as plain arrays. */
function byThreads(f: () => Float32Array): number[][] {
  const outs = [1, 2, 3].map((t) => {
    blas!.setThreads(t);
    return Array.from(f());
  });
  blas!.setThreads(1);
  return outs;
}

if (!blas) describe('native threads', () => it.skip(`not available here: ${nativeStatus()}`, () => undefined));
else
  describe('native threads: the same bits for any thread count', () => {
    it('GEMMs large enough to split (plain, transposed, a strided batch, β = 1)', () => {
      const cases: Array<[number, number, number, number, number, number]> = [
        // m, n, k, transA, transB, batch
        [256, 256, 784, 0, 0, 1],
        [784, 256, 64, 1, 0, 1], // dW = hᵀ · dz
        [64, 784, 256, 0, 1, 1], // dh = dz · Wᵀ
        [130, 70, 300, 1, 1, 3],
      ];
      for (const [m, n, k, ta, tb, batch] of cases) {
        const a = rand(batch * m * k, 1);
        const b = rand(batch * k * n, 2);
        const c0 = rand(batch * m * n, 3);
        const outs = byThreads(() => {
          const c = c0.slice();
          blas.sgemm(a, b, c, batch, m, n, k, ta, tb, m * k, k * n, 1);
          return c;
        });
        expect(outs[1]).toEqual(outs[0]);
        expect(outs[2]).toEqual(outs[0]);
        // and it is the product: one entry by hand
        const i = batch - 1;
        const r = m - 1;
        const col = n - 1;
        let want = c0[i * m * n + r * n + col];
        for (let j = 0; j < k; j++) {
          const av = ta ? a[i * m * k + j * m + r] : a[i * m * k + r * k + j];
          const bv = tb ? b[i * k * n + col * k + j] : b[i * k * n + j * n + col];
          want += av * bv;
        }
        expect(outs[0][i * m * n + r * n + col]).toBeCloseTo(want, 2);
      }
    });

    it('a convolution forward pass and both gradients, over many chunks', () => {
      // 40 images 28×28×3, 5×5 filters to 8 channels: 24·24·75 patch values per image, 6 images per chunk
      const [N, H, W, C, F, CO] = [40, 28, 28, 3, 5, 8];
      const OH = H - F + 1;
      const dims = [N, H, W, C, F, F, 1, 1, 0, 0, OH, OH, CO];
      const chunk = 256 * 1024;
      const x = rand(N * H * W * C, 4);
      const w = rand(F * F * C * CO, 5);
      const bias = rand(CO, 6);
      const dy = rand(N * OH * OH * CO, 7);
      const fwd = byThreads(() => {
        const out = new Float32Array(N * OH * OH * CO);
        blas.convForward(x, w, bias, out, ...dims, 1, chunk);
        return out;
      });
      const dw = byThreads(() => {
        const out = new Float32Array(F * F * C * CO);
        blas.convBackpropFilter(x, dy, out, ...dims, chunk);
        return out;
      });
      const dx = byThreads(() => {
        const out = new Float32Array(N * H * W * C).fill(7); // every value is overwritten
        blas.convBackpropInput(dy, w, out, ...dims, chunk);
        return out;
      });
      for (const outs of [fwd, dw, dx]) {
        expect(outs[1]).toEqual(outs[0]);
        expect(outs[2]).toEqual(outs[0]);
      }
      expect(fwd[0].some((v) => v === 0) && fwd[0].some((v) => v > 0)).toBe(true); // ReLU applied
      // dW for one tap by hand: Σ over images and positions of x · dy
      let want = 0;
      for (let n = 0; n < N; n++)
        for (let i = 0; i < OH; i++)
          for (let j = 0; j < OH; j++) want += x[((n * H + i) * W + j) * C] * dy[((n * OH + i) * OH + j) * CO];
      expect(dw[0][0]).toBeCloseTo(want, 1);
    });
  });
