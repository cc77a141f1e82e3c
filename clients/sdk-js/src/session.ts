// The session: keeps one connection up from connect() to close(). Asks the token callback
// before every connect, walks the URLs round robin when a connect fails, answers `hello` with
// `sync` (since: what the client holds) before anything else (any other first frame would make
// the server resume from its own cursor), starts the heartbeat, and after a drop reconnects
// with full-jitter backoff chosen by the close code.

import { Backoff, type BackoffOptions } from './backoff.js';
import type { ConnectionState, ErrorFrame, HelloFrame } from './types.js';
import { Transport, socketUrl, type Frame, type Timers, type TransportEnd, type WebSocketConstructor } from './transport.js';

/** How long an upgraded connection may take to say hello. */
const HELLO_WAIT_MS = 15000;

export interface SessionHandlers {
  /** A connection said hello: returns the `since` of its sync. */
  hello(h: HelloFrame): Record<string, number>;
  /** Sync sent: the connection is ready for requests. */
  ready(resumed: boolean): void;
  /** Any frame after hello. */
  frame(f: Frame): void;
  /** The ready connection is gone (requests in flight on it will never be answered). */
  lost(): void;
  state(state: ConnectionState, resumed: boolean): void;
  /** Something worth telling the app that no request owns (a client bug close, a token failure). */
  problem(e: ErrorFrame): void;
  /** A second connect in a row (and every second one after) failed before the upgrade: refused,
   *  unreachable, or an HTTP 401 that a browser does not show. */
  refused(): void;
}

export interface SessionOptions {
  urls: string[];
  token: () => string | Promise<string>;
  WebSocket: WebSocketConstructor;
  backoff?: BackoffOptions;
  random?: () => number;
  timers: Timers;
  /** Settles when the client's persisted state is loaded (the first connect waits for it). */
  ready: () => Promise<unknown>;
}

/** What a close code asks of the client (docs/protocol.md, Close codes). */
export function closePolicy(code: number, opened: boolean): { nextUrl: boolean; clientBug: boolean } {
  if (!opened) return { nextUrl: true, clientBug: false }; // refused, unreachable, HTTP 401/503
  switch (code) {
    case 1001: // the pod is shutting down: any other pod will do
    case 1013: // that pod could not set the session up
      return { nextUrl: true, clientBug: false };
    case 1007: // we sent invalid UTF-8
    case 1009: // we sent a frame over the size limit
      return { nextUrl: false, clientBug: true };
    default: // 1000 idle, 4008 too slow, 1006 dropped, our own silent-link close
      return { nextUrl: false, clientBug: false };
  }
}

export class Session {
  private readonly backoff: Backoff;
  private transport: Transport | undefined;
  private urlIndex = 0;
  private stateNow: ConnectionState = 'idle';
  private wanted = false;
  private everReady = false;
  private synced = false;
  private retry: unknown;
  private ref = 0;
  /** Connects in a row that ended before the upgrade. */
  private failedConnects = 0;

  constructor(
    private readonly opts: SessionOptions,
    private readonly on: SessionHandlers,
  ) {
    if (opts.urls.length === 0) throw new TypeError('PalaverClient: no url');
    this.backoff = new Backoff(opts.backoff, opts.random);
  }

  get state(): ConnectionState {
    return this.stateNow;
  }

  /** The base URL of the current (or next) connection: REST follows the WebSocket's pod. */
  get base(): string {
    return this.opts.urls[this.urlIndex]!;
  }

  nextRef(): number {
    return ++this.ref;
  }

  start(): void {
    if (this.wanted || this.stateNow === 'closed') return;
    this.wanted = true;
    this.setState('connecting', false);
    void this.opts.ready().then(() => this.attempt());
  }

  /** Writes a frame on the synced connection; false when there is none. */
  send(frame: object): boolean {
    return this.synced && this.transport !== undefined && this.transport.send(frame);
  }

  stop(): void {
    this.wanted = false;
    this.opts.timers.clearTimeout(this.retry);
    const t = this.transport;
    this.transport = undefined;
    this.synced = false;
    t?.close(1000, 'client closed');
    this.setState('closed', false);
  }

  private async attempt(): Promise<void> {
    this.retry = undefined;
    if (!this.wanted) return;
    let token: string;
    try {
      token = await this.opts.token();
    } catch (e) {
      this.on.problem({ t: 'error', code: 'unauthorized', message: `token callback failed: ${String(e)}` });
      this.reconnectLater({ code: 1006, reason: 'no token', opened: false });
      return;
    }
    if (!this.wanted) return;
    const url = socketUrl(this.base, token);
    let said = false;
    const t: Transport = new Transport(
      this.opts.WebSocket,
      url,
      {
        frame: (f) => {
          if (this.transport !== t) return;
          if (!said) {
            if (f.t !== 'hello') return;
            said = true;
            this.onHello(t, f as unknown as HelloFrame);
          } else {
            this.on.frame(f);
          }
        },
        end: (e) => {
          if (this.transport !== t) return;
          this.transport = undefined;
          const wasReady = this.synced;
          this.synced = false;
          if (wasReady) this.on.lost();
          if (e.opened) this.failedConnects = 0;
          else if (++this.failedConnects % 2 === 0 && this.wanted) this.on.refused();
          this.reconnectLater(e);
        },
      },
      this.opts.timers,
      HELLO_WAIT_MS,
    );
    this.transport = t;
  }

  private onHello(t: Transport, h: HelloFrame): void {
    const since = this.on.hello(h);
    t.send({ t: 'sync', ref: this.nextRef(), since });
    t.heartbeat(h.heartbeat_ms > 0 ? h.heartbeat_ms : 30000, () => ({ t: 'ping', ref: this.nextRef() }));
    this.backoff.reset();
    this.synced = true;
    const resumed = this.everReady;
    this.everReady = true;
    this.setState('open', resumed);
    this.on.ready(resumed);
  }

  private reconnectLater(e: TransportEnd): void {
    if (!this.wanted) return;
    const policy = closePolicy(e.code, e.opened);
    if (policy.clientBug) {
      this.on.problem({
        t: 'error',
        code: 'bad_request',
        message: `the server closed the connection with ${e.code} (${e.reason || 'no reason'}): a client bug`,
      });
    }
    if (policy.nextUrl) this.urlIndex = (this.urlIndex + 1) % this.opts.urls.length;
    this.setState(this.everReady ? 'reconnecting' : 'connecting', false);
    // 1000 (idle) included: the app wants a connection until close().
    this.retry = this.opts.timers.setTimeout(() => this.attempt(), this.backoff.next());
  }

  private setState(state: ConnectionState, resumed: boolean): void {
    if (state === this.stateNow && state !== 'open') return;
    this.stateNow = state;
    this.on.state(state, resumed);
  }
}
