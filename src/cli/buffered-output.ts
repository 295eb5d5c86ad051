/**
 * Buffered synchronous output for commands that print a lot (audit query/export over a million
 * records): text is gathered into ~1 MiB writes to a file descriptor. A reader that goes away
 * (`| head`) ends the output quietly instead of failing the command.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

/** Thrown by write() once the reader has closed the pipe; the command stops and exits 0. */
export class OutputClosed extends Error {
  constructor() {
    super('the output was closed by its reader');
    this.name = 'OutputClosed';
  }
}

const FLUSH_AT = 1 << 20;
const pause = new Int32Array(new SharedArrayBuffer(4));

/** A buffered writer to a descriptor. */
export class BufferedOutput {
  private parts: string[] = [];
  private size = 0;
  private closedByReader = false;

  private constructor(
    private readonly fd: number,
    private readonly ownsFd: boolean,
  ) {}

  /** Standard output. */
  static stdout(): BufferedOutput {
    return new BufferedOutput(1, false);
  }

  /** A file, created or truncated. */
  static file(file: string): BufferedOutput {
    return new BufferedOutput(openSync(file, 'w', 0o640), true);
  }

  /** Queues text; flushes when enough has gathered. */
  write(text: string): void {
    if (this.closedByReader) throw new OutputClosed();
    this.parts.push(text);
    this.size += text.length;
    if (this.size >= FLUSH_AT) this.flush();
  }

  /** Writes everything queued. */
  flush(): void {
    if (this.parts.length === 0) return;
    const buf = Buffer.from(this.parts.join(''), 'utf8');
    this.parts = [];
    this.size = 0;
    let done = 0;
    while (done < buf.length) {
      try {
        done += writeSync(this.fd, buf, done, buf.length - done);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') {
          // A non-blocking pipe is full: wait for the reader.
          Atomics.wait(pause, 0, 0, 5);
          continue;
        }
        if (code === 'EPIPE') {
          this.closedByReader = true;
          throw new OutputClosed();
        }
        throw err;
      }
    }
  }

  /** Flushes, and closes the descriptor if this sink opened it. */
  close(): void {
    try {
      if (!this.closedByReader) this.flush();
    } finally {
      if (this.ownsFd) closeSync(this.fd);
    }
  }
}
