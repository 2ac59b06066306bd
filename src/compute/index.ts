export { initBackend, activeBackend, parseBackend, BACKENDS, tf } from './backend.js';
export type { BackendChoice, BackendInfo } from './backend.js';
export { Rng } from './rng.js';
export { registerWasmKernels, WASM_EXTRA_KERNELS } from './kernels/index.js';
