// mse's pure-wasm kernels (the path on machines without OpenBLAS), against the cpu backend.
process.env.MSE_NATIVE = '0';
const { kernelSuite } = await import('./kernel-suite.js');
kernelSuite('pure-wasm kernels match the cpu backend', false);
