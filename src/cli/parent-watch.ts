/**
 * A bench worker must not outlive its parent (SIGKILL included), or it computes a cell nobody will
 * record. The IPC channel's 'disconnect' covers a worker whose event loop turns; a worker deep in
 * a synchronous training step does not see it for a long time, so a watchdog thread checks the
 * parent pid and, once the worker has been orphaned (re-parented), ends the whole process with a
 * real signal, which needs nothing from the busy main thread.
 */
import { Worker } from 'node:worker_threads';

const WATCHDOG = `
const { workerData } = require('node:worker_threads');
setInterval(() => {
  if (process.ppid !== workerData.ppid) process.kill(process.pid, 'SIGKILL');
}, 250);
`;

export function dieWithParent(): void {
  process.on('disconnect', () => process.exit(130));
  const w = new Worker(WATCHDOG, { eval: true, workerData: { ppid: process.ppid } });
  w.unref(); // never keeps the worker process alive by itself
}
