#!/usr/bin/env node
// The bin builds nothing itself: it loads the compiled CLI (built by `npm ci` through `prepare`).
import('../dist/cli/index.js').then((m) => m.main(process.argv)).catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli')) {
    console.error('mse: not built yet; run `npm run build` (npm ci does this through `prepare`)');
    process.exit(1);
  }
  throw err;
});
