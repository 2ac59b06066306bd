/**
 * An exclusive lock on a results file (`<file>.lock`), so two mse processes never append to the
 * same CSV: the second one says who holds it and stops. The lock file is created whole (written to
 * a temp file, then hard-linked into place, which fails atomically if it exists), so it always names
 * its holder. A lock whose holder died (SIGKILL, power loss) is taken over when the holder ran on
 * this host and its pid is gone; a lock from another host is never broken automatically (its
 * process cannot be checked from here) — the message says how to remove it by hand.
 *
 * Sharded sweeps write one CSV per shard into the same run directory, so the lock is per file,
 * not per directory: shards on a shared file system run side by side.
 */
import { linkSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { asUserError, MseError } from '../errors.js';

interface Holder {
  pid: number;
  host: string;
  command: string;
  started: string;
}

const held = new Set<string>();
let exitHook = false;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** A lock file's text is untrusted: no terminal escapes in messages. */
function printable(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

function readHolder(lockFile: string): Holder | undefined {
  try {
    if (!statSync(lockFile).isFile()) return undefined; // a FIFO would block the read
    const h = JSON.parse(readFileSync(lockFile, 'utf8')) as Partial<Holder>;
    // kill(0 or -1, 0) succeeds for any caller: such a pid names no holder
    return Number.isSafeInteger(h.pid) && (h.pid as number) > 0 && typeof h.host === 'string'
      ? { pid: h.pid as number, host: h.host, command: String(h.command ?? ''), started: String(h.started ?? '') }
      : undefined;
  } catch {
    return undefined;
  }
}

export class RunLock {
  private released = false;
  private constructor(readonly lockFile: string) {}

  /** Take the lock on `file` or throw a one-line MseError naming its holder. */
  static acquire(file: string): RunLock {
    const lockFile = `${file}.lock`;
    const me: Holder = {
      pid: process.pid,
      host: os.hostname(),
      command: ['mse', ...process.argv.slice(2)].join(' ').slice(0, 300),
      started: new Date().toISOString(),
    };
    const tmp = `${lockFile}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(me) + '\n');
      for (let attempt = 0; ; attempt++) {
        try {
          linkSync(tmp, lockFile);
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
        const h = readHolder(lockFile);
        const stale = h ? h.host === me.host && !alive(h.pid) : ageSeconds(lockFile) > 60; // unreadable: a foreign or damaged lock; old ones are stale
        if (!stale || attempt >= 8) {
          const who = h
            ? printable(
                `pid ${h.pid} on ${h.host}${h.command ? ` (${h.command})` : ''}${h.started ? `, since ${h.started}` : ''}`,
              )
            : 'an unknown process';
          throw new MseError(
            'locked',
            `${file} is in use by another mse run: ${who}`,
            `wait for it to finish or choose another --out; if that process no longer exists, delete ${lockFile}`,
          );
        }
        breakStale(lockFile, h);
      }
    } catch (e) {
      if (e instanceof MseError) throw e;
      throw new MseError(
        'locked',
        `cannot lock ${file}: ${asUserError(e)?.message ?? (e as Error).message}`,
        'choose a writable --out directory',
      );
    } finally {
      rmSync(tmp, { force: true });
    }
    held.add(lockFile);
    if (!exitHook) {
      exitHook = true;
      // process.exit() (the CLI always ends with it) runs 'exit' handlers: release what is still held
      process.on('exit', () => {
        for (const f of held) releaseFile(f);
      });
    }
    return new RunLock(lockFile);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    held.delete(this.lockFile);
    releaseFile(this.lockFile);
  }
}

function ageSeconds(file: string): number {
  try {
    return (Date.now() - statSync(file).mtimeMs) / 1000;
  } catch {
    return Infinity;
  }
}

/**
 * Remove a stale lock only if it still names the dead holder. Breakers take turns through a
 * second lock (`.break`, created exclusively), so two processes that both saw the same stale lock
 * cannot both remove it — the second would otherwise delete the first one's fresh lock.
 */
function breakStale(lockFile: string, h: Holder | undefined): void {
  const breaker = `${lockFile}.break`;
  try {
    writeFileSync(breaker, String(process.pid), { flag: 'wx' });
  } catch {
    // someone else is breaking it (or died doing so: a breaker older than 10 s is stale)
    if (ageSeconds(breaker) > 10) rmSync(breaker, { force: true });
    sleepMs(20);
    return;
  }
  try {
    const now = readHolder(lockFile);
    if (h ? !now || now.pid !== h.pid || now.host !== h.host : now !== undefined) return;
    unlinkSync(lockFile);
  } catch {
    // gone already: the next attempt decides
  } finally {
    rmSync(breaker, { force: true });
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function releaseFile(lockFile: string): void {
  const h = readHolder(lockFile);
  if (h && (h.pid !== process.pid || h.host !== os.hostname())) return; // not ours (never delete another's lock)
  try {
    unlinkSync(lockFile);
  } catch {
    // already removed
  }
}
