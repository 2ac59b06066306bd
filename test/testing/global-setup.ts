import { rmSync } from 'node:fs';

// A fresh cache per test run, so cached victims never hide a training bug.
export default function setup(): void {
  rmSync('.vitest-cache', { recursive: true, force: true });
}
