export { initBackend, activeBackend, parseBackend, BACKENDS, tf } from './backend.js';
export type { BackendChoice, BackendInfo } from './backend.js';
export { Rng } from './rng.js';
export { registerWasmKernels } from './kernels/index.js';
export { nativeBlas, nativeStatus } from './native.js';
