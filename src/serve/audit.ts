/**
 * The audit log of `mse serve`: JSON lines, appended through one file descriptor that is opened
 * (and so checked writable) at start-up, rotated by size. Writes are synchronous so that an
 * answer is recorded before it is revealed.
 */
import { closeSync, fstatSync, openSync, renameSync, writeSync } from 'node:fs';
import { MseError } from '../errors.js';

export class AuditLog {
  private fd: number;
  private size: number;
  private closed = false;

  private constructor(
    readonly file: string,
    private readonly maxBytes: number | undefined,
  ) {
    this.fd = AuditLog.openFd(file);
    this.size = fstatSync(this.fd).size;
  }

  private static openFd(file: string): number {
    try {
      return openSync(file, 'a');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new MseError(
        'serve',
        `cannot open the audit log ${file}: ${err.code ?? err.message}`,
        'give --audit-log a writable file in an existing directory',
      );
    }
  }

  /** Open for appending; throws a one-line MseError naming the file when it cannot be written. */
  static open(file: string, maxBytes?: number): AuditLog {
    return new AuditLog(file, maxBytes);
  }

  /** Append one entry; throws the system error on failure (the caller decides what the client sees). */
  write(entry: Record<string, unknown>): void {
    if (this.maxBytes && this.size > this.maxBytes) {
      // rename while still open, then swap descriptors: a failure leaves the old one valid (never a
      // closed number that the process could reuse for another file)
      renameSync(this.file, `${this.file}.${Date.now()}`);
      const next = AuditLog.openFd(this.file);
      closeSync(this.fd);
      this.fd = next;
      this.size = 0;
    }
    const line = Buffer.from(JSON.stringify({ t: new Date().toISOString(), ...entry }) + '\n');
    writeSync(this.fd, line);
    this.size += line.length;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}
