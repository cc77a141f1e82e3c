// Test doubles: an in-memory WebSocket server (its socket class is injected as
// opts.WebSocket; the test plays the server), a fake fetch serving channel history, and
// small async helpers. No network, no real timers beyond short waits.

import { MemoryStorage, PalaverClient } from '../src/index.js';
import type { ChannelEvent, ChannelInfo, ClientOptions, ErrorFrame, HelloFrame } from '../src/index.js';

type Json = Record<string, any>;

/** Resolves when `cond` holds, polling; fails the test after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One connection as the server sees it. */
export class FakeConn {
  /** Frames the client sent, parsed. */
  readonly received: Json[] = [];
  closed: { code: number; reason: string; byClient: boolean } | undefined;

  constructor(
    readonly url: string,
    private readonly socket: FakeSocket,
  ) {}

  get token(): string | null {
    return new URL(this.url).searchParams.get('token');
  }

  /** Server → client. */
  send(frame: Json): void {
    if (this.closed) return;
    this.socket.deliver(JSON.stringify(frame));
  }

  hello(channels: Partial<ChannelInfo>[], extra: Partial<HelloFrame> = {}): void {
    this.send({
      t: 'hello',
      session: 's_1',
      user: 'me',
      workspace: 'w',
      heartbeat_ms: 30000,
      channels: channels.map((c) => ({ name: c.id, kind: 'public', last_seq: 0, read_seq: 0, unread: 0, mentions: 0, ...c })),
      ...extra,
    });
  }

  event(ev: Partial<ChannelEvent> & { channel: string; seq: number }): void {
    this.send({ t: 'event', kind: 'message', id: `m${ev.seq}`, user: 'other', ts: ts(ev.seq), text: `text ${ev.seq}`, ...ev });
  }

  /** The server ends the connection with a close frame. */
  close(code: number, reason = ''): void {
    if (this.closed) return;
    this.closed = { code, reason, byClient: false };
    this.socket.remoteClose(code, reason);
  }

  /** Waits for a client frame matching `pred` (already received or coming). */
  async frame(pred: (f: Json) => boolean, what: string, ms = 2000): Promise<Json> {
    let found: Json | undefined;
    await until(() => (found = this.received.find(pred)) !== undefined, what, ms);
    return found!;
  }

  framesOf(t: string): Json[] {
    return this.received.filter((f) => f.t === t);
  }
}

export function ts(seq: number): string {
  return new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString();
}

/** The server side: hands out connections; `refuse` makes the next connects fail (never open). */
export class FakeServer {
  readonly conns: FakeConn[] = [];
  refuse = 0;
  readonly WebSocket: typeof WebSocket;

  constructor() {
    const server = this;
    class Socket extends FakeSocket {
      constructor(url: string) {
        super(url, server);
      }
    }
    this.WebSocket = Socket as unknown as typeof WebSocket;
  }

  /** The n-th connection (0-based), once the client made it. */
  async conn(n: number, ms = 3000): Promise<FakeConn> {
    await until(() => this.conns.length > n, `connection #${n}`, ms);
    return this.conns[n]!;
  }

  /** The n-th connection after hello and the client's sync. */
  async synced(n: number, channels: Partial<ChannelInfo>[], extra: Partial<HelloFrame> = {}): Promise<{ conn: FakeConn; sync: Json }> {
    const conn = await this.conn(n);
    conn.hello(channels, extra);
    const sync = await conn.frame((f) => f.t === 'sync', 'sync');
    return { conn, sync };
  }
}

export class FakeSocket {
  readyState = 0;
  onopen: ((e: unknown) => void) | null = null;
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  private readonly conn: FakeConn | undefined;

  constructor(
    readonly url: string,
    server: FakeServer,
  ) {
    if (server.refuse > 0) {
      server.refuse--;
      // Like a refused TCP connect or an HTTP 401 before the upgrade.
      setTimeout(() => {
        this.readyState = 3;
        this.onclose?.({ code: 1006, reason: '' });
      }, 1);
      return;
    }
    this.conn = new FakeConn(url, this);
    server.conns.push(this.conn);
    setTimeout(() => {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      this.onopen?.({});
    }, 1);
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.conn!.received.push(JSON.parse(data));
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    if (this.conn && !this.conn.closed) this.conn.closed = { code, reason, byClient: true };
    setTimeout(() => this.onclose?.({ code, reason }), 1);
  }

  deliver(data: string): void {
    // Like a real socket: in order, each in its own task.
    setTimeout(() => {
      if (this.readyState === 1) this.onmessage?.({ data });
    }, 0);
  }

  remoteClose(code: number, reason: string): void {
    setTimeout(() => {
      if (this.readyState >= 2) return;
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }, 0);
  }
}

/** Channel history as the REST routes serve it, and a record of the requests. */
export class FakeRest {
  readonly history = new Map<string, ChannelEvent[]>();
  readonly calls: { method: string; url: URL; headers: Record<string, string>; body: unknown }[] = [];
  /** Requests answered with a network failure while > 0. */
  failing = 0;
  /** Holds history answers until released (to observe what happens meanwhile). */
  gate: Promise<void> | undefined;
  readonly routes: ((method: string, url: URL, body: unknown) => Response | undefined)[] = [];

  readonly fetch: typeof fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input));
    const method = init?.method ?? 'GET';
    const headers = (init?.headers ?? {}) as Record<string, string>;
    const body = typeof init?.body === 'string' ? JSON.parse(init.body) : init?.body;
    this.calls.push({ method, url, headers, body });
    if (this.failing > 0) {
      this.failing--;
      throw new TypeError('fetch failed');
    }
    for (const r of this.routes) {
      const res = r(method, url, body);
      if (res) return res;
    }
    const m = /\/v1\/channels\/([^/]+)\/events$/.exec(url.pathname);
    if (m && method === 'GET') {
      if (this.gate) await this.gate;
      return json(200, this.page(decodeURIComponent(m[1]!), url.searchParams));
    }
    return json(404, { code: 'not_found', message: `no route ${method} ${url.pathname}` });
  };

  put(...events: ChannelEvent[]): void {
    for (const ev of events) {
      const list = this.history.get(ev.channel) ?? [];
      list.push(ev);
      list.sort((a, b) => a.seq - b.seq);
      this.history.set(ev.channel, list);
    }
  }

  historyCalls(): URLSearchParams[] {
    return this.calls.filter((c) => c.url.pathname.endsWith('/events')).map((c) => c.url.searchParams);
  }

  private page(channel: string, q: URLSearchParams): { events: ChannelEvent[]; has_more: boolean } {
    const after = q.has('after') ? Number(q.get('after')) : 0;
    const before = q.has('before') ? Number(q.get('before')) : Infinity;
    const limit = Number(q.get('limit') ?? 50);
    const inRange = (this.history.get(channel) ?? []).filter((e) => e.seq > after && e.seq < before);
    if (q.has('after')) return { events: inRange.slice(0, limit), has_more: inRange.length > limit };
    return { events: inRange.slice(-limit), has_more: inRange.length > limit };
  }
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
}

/** A message event as history renders it (docs/protocol.md "History and replay render state"). */
export function rendered(ev: Partial<ChannelEvent> & { channel: string; seq: number; id: string }): ChannelEvent {
  return {
    kind: 'message',
    user: 'other',
    cmid: null,
    text: `text ${ev.seq}`,
    ts: ts(ev.seq),
    thread: null,
    deleted: false,
    state_seq: ev.seq,
    reactions: [],
    reply_count: 0,
    last_reply_ts: null,
    reply_users: [],
    reply_users_count: 0,
    ...ev,
  };
}

export interface Setup {
  server: FakeServer;
  rest: FakeRest;
  client: PalaverClient;
  storage: MemoryStorage;
  /** Everything the `event` callback saw, in order. */
  events: ChannelEvent[];
  errors: ErrorFrame[];
  tokenCalls: () => number;
}

/** A client on a fake server and fake REST, with fast backoff; closed by `t.after`. */
export function setup(
  t: { after(fn: () => unknown): void },
  opts: Partial<ClientOptions> = {},
  storage = new MemoryStorage(),
): Setup {
  const server = new FakeServer();
  const rest = new FakeRest();
  let tokens = 0;
  const client = new PalaverClient({
    url: 'http://pal.test/chat',
    token: () => `tok${++tokens}`,
    WebSocket: server.WebSocket,
    fetch: rest.fetch,
    storage,
    backoff: { initialMs: 5, maxMs: 20 },
    ...opts,
  });
  const events: ChannelEvent[] = [];
  const errors: ErrorFrame[] = [];
  client.on('event', (e) => events.push(e));
  client.on('error', (e) => errors.push(e));
  t.after(() => client.close());
  return { server, rest, client, storage, events, errors, tokenCalls: () => tokens };
}

export function seqs(events: ChannelEvent[], channel?: string): number[] {
  return events.filter((e) => channel === undefined || e.channel === channel).map((e) => e.seq);
}
