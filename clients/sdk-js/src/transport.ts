// One WebSocket connection: the URL (ws(s)://…/v1/ws?token=, since browsers cannot set headers
// on an upgrade), JSON text frames in and out, the heartbeat (a ping every heartbeat_ms / 2;
// no frame at all for 2 × heartbeat_ms means the link is dead) and how the connection ended.
// It reports its end exactly once; a connection given up locally reports at once rather than
// waiting for a close handshake that a dead link never completes.

/** What the SDK needs of a WebSocket: the browser's and the ws package's both fit (the
 *  handlers are only assigned, never read, so their exact event types do not matter). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: unknown;
  onmessage: unknown;
  onclose: unknown;
  onerror: unknown;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** A server frame: `t` names it; the rest depends on it. */
export type Frame = { t: string } & Record<string, unknown>;

export interface TransportEnd {
  code: number;
  reason: string;
  /** Whether the upgrade succeeded (false: refused or unreachable, e.g. HTTP 401). */
  opened: boolean;
}

export interface TransportHandlers {
  frame(f: Frame): void;
  end(e: TransportEnd): void;
}

/** Closed by the client because the link went silent (an application code: 4000–4999). */
export const CLOSE_SILENT = 4000;

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

/** http(s)://host[/prefix] (or ws(s)://) → the base REST paths are appended to, no trailing slash. */
export function httpBase(url: string): string {
  return url.replace(/^ws(s?):\/\//i, 'http$1://').replace(/\/+$/, '');
}

export function socketUrl(base: string, token: string): string {
  return `${httpBase(base).replace(/^http(s?):\/\//i, 'ws$1://')}/v1/ws?token=${encodeURIComponent(token)}`;
}

export class Transport {
  private ws: WebSocketLike | undefined;
  private opened = false;
  private ended = false;
  private silence: unknown;
  private pinger: unknown;
  private silenceMs = 0;

  constructor(
    WS: WebSocketConstructor,
    url: string,
    private readonly on: TransportHandlers,
    private readonly timers: Timers,
    /** Before the first frame (hello), the link may be silent this long. */
    firstFrameMs: number,
  ) {
    let ws: WebSocketLike;
    try {
      ws = new WS(url);
    } catch (e) {
      // A URL the platform refuses: as good as a failed connect.
      this.finish({ code: 1006, reason: String(e), opened: false });
      return;
    }
    this.ws = ws;
    this.silenceMs = firstFrameMs;
    this.armSilence();
    ws.onopen = () => {
      this.opened = true;
    };
    ws.onmessage = (m: { data: unknown }) => {
      this.armSilence();
      if (typeof m.data !== 'string') return;
      let f: unknown;
      try {
        f = JSON.parse(m.data);
      } catch {
        return;
      }
      if (f && typeof f === 'object' && typeof (f as Frame).t === 'string') this.on.frame(f as Frame);
    };
    ws.onclose = (c: { code: number; reason: string }) => this.finish({ code: c.code, reason: c.reason, opened: this.opened });
    // An error is always followed by close; close carries what there is to know.
    ws.onerror = () => {};
  }

  /** Starts the heartbeat (after hello, which says heartbeat_ms). */
  heartbeat(heartbeatMs: number, ping: () => Frame): void {
    this.silenceMs = 2 * heartbeatMs;
    this.armSilence();
    this.timers.clearInterval(this.pinger);
    this.pinger = this.timers.setInterval(() => this.send(ping()), Math.max(1, Math.floor(heartbeatMs / 2)));
  }

  /** Writes a frame; false when the connection is not open. */
  send(frame: object): boolean {
    const ws = this.ws;
    // 1 = OPEN (the constant is not on every injected implementation's prototype).
    if (!ws || this.ended || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  /** Closes and reports the end now (with this code), not after the close handshake. */
  close(code: number, reason: string): void {
    const ws = this.ws;
    this.finish({ code, reason, opened: this.opened });
    if (!ws) return;
    try {
      ws.close(code, reason);
    } catch {
      // Already closing: nothing more to do.
    }
  }

  private armSilence(): void {
    this.timers.clearTimeout(this.silence);
    this.silence = this.timers.setTimeout(
      () => this.close(CLOSE_SILENT, `no frame for ${this.silenceMs} ms`),
      this.silenceMs,
    );
  }

  private finish(end: TransportEnd): void {
    if (this.ended) return;
    this.ended = true;
    this.timers.clearTimeout(this.silence);
    this.timers.clearInterval(this.pinger);
    if (this.ws) {
      this.ws.onopen = null;
      this.ws.onmessage = null;
      this.ws.onclose = null;
    }
    // Reported asynchronously so the owner never sees the end inside its own call.
    queueMicrotask(() => this.on.end(end));
  }
}
