import { describe, it } from 'vitest';
import { nativeBlas, nativeStatus } from '../../src/compute/native.js';
import { kernelSuite } from './kernel-suite.js';

// mse's kernels on the native BLAS (OpenBLAS), against the cpu backend. Reported as skipped, with
// the reason, where the addon was not built.
if (nativeBlas()) kernelSuite('native-BLAS kernels match the cpu backend', true);
else describe('native-BLAS kernels', () => it.skip(`not available here: ${nativeStatus()}`, () => undefined));
