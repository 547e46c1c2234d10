/**
 * Progress on stderr: one line rewritten in place on a terminal, a line every few seconds otherwise (CI logs),
 * so stdout stays free for the results.
 */
export class Progress {
  private readonly tty = Boolean(process.stderr.isTTY);
  private lastLineAt = 0;
  private dirty = false;
  private readonly t0 = Date.now();
  constructor(private readonly quiet = false) {}

  private stamp(): string {
    return `[${((Date.now() - this.t0) / 1000).toFixed(1).padStart(6)}s] `;
  }

  /** A transient status line (throttled when not on a terminal). */
  status(text: string): void {
    if (this.quiet) return;
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${this.stamp()}${text}`);
      this.dirty = true;
    } else if (Date.now() - this.lastLineAt >= 2000) {
      process.stderr.write(`${this.stamp()}  ${text}\n`);
      this.lastLineAt = Date.now();
    }
  }

  /** A permanent line (a phase started, a result). */
  log(text: string): void {
    if (this.quiet) return;
    if (this.tty && this.dirty) process.stderr.write('\r\x1b[2K');
    this.dirty = false;
    process.stderr.write(`${this.stamp()}${text}\n`);
    this.lastLineAt = Date.now();
  }
}
