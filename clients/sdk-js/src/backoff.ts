// Reconnect delays: "full jitter" exponential backoff (a uniform draw between 0 and a cap
// that doubles per failure, up to maxMs), so a fleet of clients dropped at once by a pod
// restart does not come back in lockstep.

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
}

export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  private attempt = 0;

  constructor(
    opts: BackoffOptions = {},
    private readonly random: () => number = Math.random,
  ) {
    this.initialMs = Math.max(1, opts.initialMs ?? 250);
    this.maxMs = Math.max(this.initialMs, opts.maxMs ?? 15000);
  }

  /** The cap of the next draw: initialMs · 2^failures, at most maxMs. */
  ceiling(): number {
    // 2^attempt overflows to Infinity eventually, which Math.min handles.
    return Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
  }

  /** The delay before the next attempt, in [0, ceiling()); counts one more failure. */
  next(): number {
    const delay = Math.floor(this.random() * this.ceiling());
    this.attempt++;
    return delay;
  }

  /** A session got established: the next failure starts from initialMs again. */
  reset(): void {
    this.attempt = 0;
  }
}
