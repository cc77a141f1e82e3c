// PalaverClient: the public face. Wires the session (connection, hello/sync, reconnect),
// delivery (exactly-once ordering), the outbox, the folded views and REST together, and owns
// what is left: the channel list and its counts, read batching, typing throttling, presence,
// and the events the application subscribes to.

import { Delivery } from './delivery.js';
import { PalaverError } from './errors.js';
import { ChannelFold, type LocalSend } from './fold.js';
import { Outbox, sendFrame, type RequestFrame, type SendRecord } from './outbox.js';
import { HttpRestClient, type RestClient } from './rest.js';
import { Session } from './session.js';
import { JsonSlot, MemoryStorage, type Storage } from './storage.js';
import { httpBase, type Frame, type Timers, type WebSocketConstructor } from './transport.js';
import type {
  Ack,
  ChannelEvent,
  ChannelInfo,
  ChannelView,
  ConnectionState,
  ErrorFrame,
  GapFrame,
  HelloFrame,
  JoinedFrame,
  NotificationFrame,
  PresenceFrame,
  ReceiptFrame,
  ServerFrameType,
  ThreadView,
  TypingFrame,
} from './types.js';

export interface ClientOptions {
  /** Base URL(s) of palaverd, http(s):// (the SDK derives ws(s)://…/v1/ws and the REST base
   *  from it; a path prefix such as https://x/chat is kept). Several: on a failed connect the
   *  next one is tried (round robin). */
  url: string | string[];
  /** Called before every connect and on 401: returns the JWT (token refresh hook). */
  token: () => string | Promise<string>;
  /** Where positions (channel -> last seq applied) and the outbox of unacked sends persist.
   *  Default: new MemoryStorage(). Browser: new LocalStorage('palaver:<workspace>:<user>:'). */
  storage?: Storage;
  /** Injected platform pieces (default: globalThis.WebSocket / globalThis.fetch). Any class
   *  shaped like the browser's WebSocket fits, e.g. the ws package's on Node. */
  WebSocket?: WebSocketConstructor;
  fetch?: typeof fetch;
  /** Reconnect backoff: full jitter between initialMs and maxMs (defaults 250 / 15000). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Addition to the contract, for tests: the jitter's random source (default Math.random). */
  random?: () => number;
}

export interface ClientEvents {
  /** resumed: true after a reconnect's sync. */
  state: { state: ConnectionState; resumed: boolean };
  hello: HelloFrame;
  /** Every channel event (message, edit, delete, reaction_add, …, member_join), EXACTLY ONCE and
   *  in seq order per channel, across reconnects, replays and gap paging. */
  event: ChannelEvent;
  /** A channel's view (or one of its threads) changed. */
  change: { channel: string };
  /** The channel list or its unread/mention counts changed. */
  channels: ChannelInfo[];
  typing: TypingFrame;
  presence: PresenceFrame;
  receipt: ReceiptFrame;
  notification: NotificationFrame;
  /** Errors not tied to a request. */
  error: ErrorFrame;
  /** The server refuses the token: after two connects in a row that never opened, a REST probe
   *  (`GET /v1/channels` with the token callback's current token) was answered 401. Browsers hide
   *  the 401 of a refused upgrade, so this is how the app learns it (e.g. to sign the user out).
   *  The client keeps reconnecting with backoff, asking the token callback before each connect. */
  unauthorized: PalaverError;
}

export interface SendOptions {
  thread?: string;
  alsoChannel?: boolean;
  files?: string[];
}

/** Storage keys (under the Storage's own prefix). */
const POSITIONS_KEY = 'positions';
const OUTBOX_KEY = 'outbox';
const READ_BATCH_MS = 1000;
const TYPING_EVERY_MS = 3000;
const RERENDER_DELAY_MS = 200;
/** A fold whose start is not known yet (a channel joined while connected): its first delivered
 *  event sets it. */
const UNKNOWN_FLOOR = Number.MAX_SAFE_INTEGER;

const timers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as ReturnType<typeof setInterval>),
};

type Listener<K extends keyof ClientEvents> = (arg: ClientEvents[K]) => void;

function newCmid(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  // randomUUID exists only in secure contexts; a plain-http dev page falls back.
  if (c?.randomUUID) return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}

export class PalaverClient {
  readonly rest: RestClient;
  private readonly session: Session;
  private readonly delivery: Delivery;
  private readonly outbox: Outbox;
  private readonly positionsSlot: JsonSlot<Record<string, number>>;
  private readonly outboxSlot: JsonSlot<SendRecord[]>;
  private readonly loaded: Promise<void>;
  private readonly listeners = new Map<keyof ClientEvents, Set<Listener<never>>>();
  private readonly folds = new Map<string, ChannelFold>();
  /** The channel list, in hello order then join order. */
  private list: string[] = [];
  private listCache: ChannelInfo[] | undefined;
  private me: string | null = null;
  private workspaceName: string | null = null;
  private readonly presence = new Map<string, PresenceFrame>();
  private presenceSubs: string[] | undefined;
  private presenceStatus: 'online' | 'away' = 'online';
  private readonly reads = new Map<string, { channel: string; seq: number; thread?: string }>();
  /** The highest channel read this client made, per channel, until a hello's (or joined
   *  frame's) read_seq reaches it: re-applied over the counts of a hello from before it. */
  private readonly localReads = new Map<string, number>();
  /** Per channel, the last_seq known at hello (or joined): the notification frames up to it are
   *  already counted in its `mentions`. */
  private readonly mentionsFloor = new Map<string, number>();
  /** Notifications counted in this session (channel\nseq), so a repeated one is not. */
  private readonly mentionsCounted = new Set<string>();
  private readonly fetchFn: typeof fetch;
  private probing = false;
  private readTimer: unknown;
  private readonly typingSent = new Map<string, number>();
  private typingTimer: unknown;
  private readonly rerenders = new Map<string, Set<string>>();
  private rerenderTimer: unknown;
  private readonly changed = new Set<string>();
  private channelsChanged = false;
  private notifyQueued = false;
  private readonly olderLoads = new Map<string, Promise<boolean>>();

  constructor(opts: ClientOptions) {
    const urls = (Array.isArray(opts.url) ? opts.url : [opts.url]).map(httpBase);
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const fetchFn = opts.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (!WS) throw new TypeError('PalaverClient: no WebSocket on this platform; pass opts.WebSocket (Node: the ws package)');
    if (!fetchFn) throw new TypeError('PalaverClient: no fetch on this platform; pass opts.fetch');
    this.fetchFn = fetchFn.bind(globalThis);
    const storage = opts.storage ?? new MemoryStorage();
    const storageError = (e: unknown) =>
      this.emit('error', { t: 'error', code: 'internal', message: `storage write failed: ${String(e)}` });
    this.positionsSlot = new JsonSlot(storage, POSITIONS_KEY, storageError);
    this.outboxSlot = new JsonSlot(storage, OUTBOX_KEY, storageError);

    this.session = new Session(
      {
        urls,
        token: opts.token,
        WebSocket: WS,
        backoff: opts.backoff,
        random: opts.random,
        timers,
        ready: () => this.loaded,
      },
      {
        hello: (h) => this.onHello(h),
        ready: () => this.onReady(),
        frame: (f) => this.onFrame(f),
        lost: () => this.outbox.closed(),
        state: (state, resumed) => this.emit('state', { state, resumed }),
        problem: (e) => this.emit('error', e),
        refused: () => void this.probeToken(opts.token),
      },
    );
    this.rest = new HttpRestClient({ base: () => this.session.base, token: opts.token, fetch: this.fetchFn });
    this.delivery = new Delivery({
      fetchRange: (channel, after, before, limit) => this.rest.events(channel, { after, before, limit }),
      apply: (ev) => this.onDelivered(ev),
      moved: () => void this.positionsSlot.save(this.delivery.positions()),
      setTimeout: timers.setTimeout,
      clearTimeout: timers.clearTimeout,
    });
    this.outbox = new Outbox({
      transmit: (f) => this.session.send(f),
      nextRef: () => this.session.nextRef(),
      persist: (sends) => void this.outboxSlot.save(sends),
      settled: (send, outcome) => this.onSettled(send, outcome),
      now: () => Date.now(),
      setTimeout: timers.setTimeout,
      clearTimeout: timers.clearTimeout,
      random: opts.random,
    });
    this.loaded = this.load();
  }

  get state(): ConnectionState {
    return this.session.state;
  }

  /** The user, from hello. */
  get user(): string | null {
    return this.me;
  }

  /** The workspace, from hello. */
  get workspace(): string | null {
    return this.workspaceName;
  }

  /** Starts connecting; the client then reconnects by itself until close(). */
  connect(): void {
    this.session.start();
  }

  /** Stops for good: pending reads are sent, the socket closed, waiting requests rejected with
   *  code 'closed' (unacked sends stay in storage for the next client on it). */
  async close(): Promise<void> {
    this.flushReads();
    this.session.stop();
    this.delivery.stop();
    this.outbox.rejectAll(new PalaverError('closed', 'the client was closed before an answer came'));
    for (const t of [this.readTimer, this.typingTimer, this.rerenderTimer]) timers.clearTimeout(t);
    await this.loaded.catch(() => undefined);
    await Promise.all([this.positionsSlot.flushed(), this.outboxSlot.flushed()]);
  }

  on<K extends keyof ClientEvents>(name: K, cb: (arg: ClientEvents[K]) => void): () => void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(cb as Listener<never>);
    return () => void set!.delete(cb as Listener<never>);
  }

  /** Every channel the user is in (hello, then joins), with live last_seq/unread/mentions. */
  channels(): ChannelInfo[] {
    if (!this.listCache) this.listCache = this.list.flatMap((id) => (this.folds.has(id) ? [this.folds.get(id)!.info] : []));
    return this.listCache;
  }

  /** The folded state of one channel; the same object until it changes. */
  channel(id: string): ChannelView | undefined {
    return this.folds.get(id)?.view(Date.now());
  }

  /** Addition to the contract: a thread's current view (complete once thread() loaded it). */
  threadView(channel: string, root: string): ThreadView | undefined {
    return this.folds.get(channel)?.thread(root, Date.now());
  }

  /** Pages older history into the view; false when there is no more. */
  loadOlder(channel: string, limit = 50): Promise<boolean> {
    const running = this.olderLoads.get(channel);
    if (running) return running;
    const load = this.pageOlder(channel, limit).finally(() => this.olderLoads.delete(channel));
    this.olderLoads.set(channel, load);
    return load;
  }

  /** Loads a whole thread (REST) into the view; it stays live from then on. */
  async thread(channel: string, root: string): Promise<ThreadView> {
    const fold = this.fold(channel);
    let cursor: string | undefined;
    do {
      const page = await this.rest.threadPage(channel, root, cursor, 200);
      if (page.root) fold.apply(page.root);
      for (const reply of page.replies) fold.apply(reply);
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    this.changedChannel(channel);
    return fold.thread(root, Date.now());
  }

  /** Sends a message. It shows at once as pending in the view; the Promise resolves on the
   *  server's ack (after commit), across reconnects, or rejects with the refusal. */
  send(channel: string, text: string, opts: SendOptions = {}): Promise<Ack> {
    const rec: SendRecord = { cmid: newCmid(), channel, text, ts: new Date().toISOString() };
    if (opts.thread) rec.thread = opts.thread;
    if (opts.alsoChannel) rec.also_channel = true;
    if (opts.files && opts.files.length > 0) rec.files = [...opts.files];
    this.fold(channel).addLocal(localOf(rec));
    this.changedChannel(channel);
    return this.outbox.add(sendFrame(rec), rec);
  }

  edit(channel: string, id: string, text: string): Promise<Ack> {
    return this.outbox.add({ t: 'edit', channel, id, text });
  }

  delete(channel: string, id: string): Promise<Ack> {
    return this.outbox.add({ t: 'delete', channel, id });
  }

  react(channel: string, id: string, emoji: string): Promise<Ack> {
    return this.outbox.add({ t: 'react', channel, id, emoji });
  }

  unreact(channel: string, id: string, emoji: string): Promise<Ack> {
    return this.outbox.add({ t: 'unreact', channel, id, emoji });
  }

  /** Addition to the contract: drops a failed send from the view. */
  dismiss(channel: string, cmid: string): void {
    if (this.folds.get(channel)?.removeLocal(cmid)) this.changedChannel(channel);
  }

  /** Moves the read cursor (of the channel, or of a thread); sent batched, at most once a
   *  second per channel and thread, with the highest seq asked for. */
  markRead(channel: string, seq: number, thread?: string): void {
    const key = `${channel}\n${thread ?? ''}`;
    const held = this.reads.get(key);
    if (held && held.seq >= seq) return;
    this.reads.set(key, thread ? { channel, seq, thread } : { channel, seq });
    if (!thread) {
      if (seq > (this.localReads.get(channel) ?? 0)) this.localReads.set(channel, seq);
      this.readLocally(channel, seq);
    }
    if (this.readTimer === undefined) {
      this.readTimer = timers.setTimeout(() => {
        this.readTimer = undefined;
        this.flushReads();
      }, READ_BATCH_MS);
    }
  }

  /** Tells the channel's members the user is typing; at most one every 3 s per channel/thread
   *  (the server drops more anyway), so it may be called on every keystroke. */
  typing(channel: string, thread?: string): void {
    const key = `${channel}\n${thread ?? ''}`;
    const now = Date.now();
    if (now - (this.typingSent.get(key) ?? -Infinity) < TYPING_EVERY_MS) return;
    const f: RequestFrame = { t: 'typing', channel };
    if (thread) f.thread = thread;
    if (this.session.send({ ...f, ref: this.session.nextRef() })) this.typingSent.set(key, now);
  }

  /** This connection's presence; kept across reconnects. */
  setPresence(status: 'online' | 'away'): void {
    this.presenceStatus = status;
    this.session.send({ t: 'presence', status, ref: this.session.nextRef() });
  }

  /** Replaces the users whose presence is followed (at most 500); re-sent after each reconnect. */
  subscribePresence(users: string[]): void {
    this.presenceSubs = [...new Set(users)];
    this.session.send({ t: 'presence_sub', users: this.presenceSubs, ref: this.session.nextRef() });
  }

  presenceOf(user: string): PresenceFrame | undefined {
    return this.presence.get(user);
  }

  // --- internals -------------------------------------------------------------------------

  private async load(): Promise<void> {
    let positions: Record<string, number> | undefined;
    let sends: SendRecord[] | undefined;
    try {
      [positions, sends] = await Promise.all([this.positionsSlot.load(), this.outboxSlot.load()]);
    } catch (e) {
      // Unreadable storage: start afresh (from the channels' ends) rather than not at all.
      this.emit('error', { t: 'error', code: 'internal', message: `storage read failed: ${String(e)}` });
    }
    for (const [channel, seq] of Object.entries(positions ?? {})) {
      if (typeof seq === 'number' && seq >= 0) this.delivery.setPosition(channel, seq);
    }
    const restored = Array.isArray(sends) ? sends.filter((s) => s && typeof s.cmid === 'string') : [];
    this.outbox.restore(restored);
    for (const s of this.outbox.sends()) this.fold(s.channel).addLocal(localOf(s));
  }

  private fold(channel: string): ChannelFold {
    let f = this.folds.get(channel);
    if (!f) {
      const info: ChannelInfo = { id: channel, name: channel, kind: 'public', last_seq: 0, read_seq: 0, unread: 0, mentions: 0 };
      f = new ChannelFold(info, () => this.me ?? '', UNKNOWN_FLOOR);
      this.folds.set(channel, f);
    }
    return f;
  }

  private onHello(h: HelloFrame): Record<string, number> {
    this.me = h.user;
    this.workspaceName = h.workspace;
    const since: Record<string, number> = {};
    this.mentionsCounted.clear();
    this.mentionsFloor.clear();
    for (const id of this.localReads.keys()) if (!h.channels.some((c) => c.id === id)) this.localReads.delete(id);
    for (const c of h.channels) {
      let pos = this.delivery.position(c.id);
      // A position past the channel's end belongs to another world (a rebuilt database):
      // keeping it would drop every event up to it as a duplicate.
      if (pos === undefined || pos > c.last_seq) {
        pos = c.last_seq;
        this.delivery.setPosition(c.id, pos);
      }
      since[c.id] = pos;
      const fold = this.fold(c.id);
      fold.setInfo(c);
      this.mentionsFloor.set(c.id, c.last_seq);
      if (fold.floor === UNKNOWN_FLOOR) fold.lowerFloor(pos + 1, pos > 0);
      this.reapplyRead(c);
      this.changed.add(c.id);
    }
    this.list = h.channels.map((c) => c.id);
    this.channelsDirty();
    void this.positionsSlot.save(this.delivery.positions());
    this.emit('hello', h);
    this.queueNotify();
    return since;
  }

  private onReady(): void {
    this.outbox.opened();
    if (this.presenceSubs) this.session.send({ t: 'presence_sub', users: this.presenceSubs, ref: this.session.nextRef() });
    if (this.presenceStatus === 'away') this.session.send({ t: 'presence', status: 'away', ref: this.session.nextRef() });
    this.flushReads();
    this.delivery.retryNow();
  }

  /** The dispatch of server frames after hello (which the session takes): one handler per
   *  type of SERVER_FRAME_TYPES but hello, no more and no less (the Record's type says so). */
  private readonly frameHandlers: Record<Exclude<ServerFrameType, 'hello'>, (f: Frame) => void> = {
    event: (f) => this.delivery.push(f as unknown as ChannelEvent),
    gap: (f) => {
      const g = f as unknown as GapFrame;
      this.delivery.gap(g.channel, g.from, g.to);
    },
    ack: (f) => void this.outbox.ack(f.ref, ackOf(f)),
    error: (f) => {
      const e = f as unknown as ErrorFrame;
      if (!this.outbox.error(e.ref, e)) this.emit('error', e);
    },
    joined: (f) => this.onJoined((f as unknown as JoinedFrame).channel),
    typing: (f) => this.onTyping(f as unknown as TypingFrame),
    presence: (f) => {
      const p = f as unknown as PresenceFrame;
      this.presence.set(p.user, p);
      this.emit('presence', p);
    },
    receipt: (f) => this.emit('receipt', f as unknown as ReceiptFrame),
    notification: (f) => this.onNotification(f as unknown as NotificationFrame),
    // The transport's silence timer already saw it: nothing more to do.
    pong: () => {},
  };

  private onFrame(f: Frame): void {
    // Frames of later versions: nothing to do (own keys only, so 'constructor' etc. are no handlers).
    if (Object.hasOwn(this.frameHandlers, f.t)) this.frameHandlers[f.t as Exclude<ServerFrameType, 'hello'>](f);
  }

  private onJoined(c: ChannelInfo): void {
    const known = this.list.includes(c.id);
    if (!known) this.list.push(c.id);
    // The server replays the channel from its member_join: that event starts its position.
    if (!known) this.delivery.forget(c.id);
    this.fold(c.id).setInfo(c);
    this.mentionsFloor.set(c.id, c.last_seq);
    this.reapplyRead(c);
    this.channelsDirty();
    this.changedChannel(c.id);
  }

  /** A hello (or joined frame) brought the server's read_seq: a read this client made above it
   *  (held for its batch when the connection dropped, or sent but not processed) is applied
   *  again over the server's counts, and sent (again) once the connection is ready. */
  private reapplyRead(c: ChannelInfo): void {
    const held = this.localReads.get(c.id);
    if (held === undefined) return;
    // Never past the channel's end (the server's read cursor would not get there either).
    const local = Math.min(held, c.last_seq);
    if (c.read_seq >= local) {
      this.localReads.delete(c.id);
      return;
    }
    const key = `${c.id}\n`;
    if ((this.reads.get(key)?.seq ?? 0) < local) this.reads.set(key, { channel: c.id, seq: local });
    this.readLocally(c.id, local);
  }

  private onTyping(t: TypingFrame): void {
    const fold = this.folds.get(t.channel);
    if (fold) {
      fold.setTyping(t.user, t.thread ?? undefined, Date.now() + t.ttl_ms);
      this.changedChannel(t.channel);
      this.scheduleTypingExpiry();
    }
    this.emit('typing', t);
  }

  private scheduleTypingExpiry(): void {
    timers.clearTimeout(this.typingTimer);
    let next: number | undefined;
    for (const f of this.folds.values()) {
      const at = f.nextTypingExpiry();
      if (at !== undefined && (next === undefined || at < next)) next = at;
    }
    if (next === undefined) return;
    this.typingTimer = timers.setTimeout(() => {
      const now = Date.now();
      for (const [id, f] of this.folds) if (f.expireTyping(now)) this.changedChannel(id);
      this.scheduleTypingExpiry();
    }, Math.max(0, next - Date.now()));
  }

  private onNotification(n: NotificationFrame): void {
    const fold = this.folds.get(n.channel);
    const key = `${n.channel}\n${n.seq}`;
    // hello's `mentions` already counts the unread entries up to its last_seq (the frames sent
    // after the first sync are those same entries): only a later one adds to it.
    if (fold && n.seq > (this.mentionsFloor.get(n.channel) ?? 0) && n.seq > fold.info.read_seq && !this.mentionsCounted.has(key)) {
      this.mentionsCounted.add(key);
      fold.setInfo({ ...fold.info, mentions: fold.info.mentions + 1 });
      this.channelsDirty();
    }
    this.emit('notification', n);
  }

  /** Delivery's sink: every event once, in order per channel. */
  private onDelivered(ev: ChannelEvent): void {
    const fold = this.fold(ev.channel);
    // Delivery is contiguous from its start, so the view is complete from any delivered seq.
    if (ev.seq < fold.floor) fold.lowerFloor(ev.seq, fold.floor === UNKNOWN_FLOOR ? ev.seq > 1 : fold.hasOlder);
    const res = fold.apply(ev);
    // Their message is here: the sender no longer shows as typing there.
    if (ev.kind === 'message' && ev.user) fold.clearTyping(ev.user, ev.thread ?? undefined);
    const info = { ...fold.info, last_seq: Math.max(fold.info.last_seq, ev.seq) };
    if (ev.kind === 'message' && ev.user !== this.me && ev.seq > info.read_seq) info.unread++;
    fold.setInfo(info);
    if (ev.kind === 'member_leave' && ev.user === this.me) this.list = this.list.filter((id) => id !== ev.channel);
    for (const id of res.inexact) this.queueRerender(ev.channel, id);
    this.channelsDirty();
    this.changedChannel(ev.channel);
    this.emit('event', ev);
  }

  private onSettled(send: SendRecord, outcome: { ack: Ack } | { error: PalaverError }): void {
    const fold = this.fold(send.channel);
    if ('error' in outcome) fold.failLocal(send.cmid, outcome.error);
    // Its message may have been delivered before the ack, or be older than this client's
    // start (a restored send acked with its original seq): either way it is in place.
    else if ((this.delivery.position(send.channel) ?? 0) >= (outcome.ack.seq ?? Infinity)) fold.removeLocal(send.cmid);
    this.changedChannel(send.channel);
  }

  private async pageOlder(channel: string, limit: number): Promise<boolean> {
    const fold = this.fold(channel);
    if (!fold.hasOlder) return false;
    const before = fold.floor === UNKNOWN_FLOOR ? undefined : fold.floor;
    const page = await this.rest.events(channel, before === undefined ? { limit } : { before, limit });
    for (const ev of page.events) fold.apply(ev);
    const first = page.events[0];
    if (first) fold.lowerFloor(first.seq, page.has_more && first.seq > 1);
    else fold.lowerFloor(fold.floor, false);
    this.changedChannel(channel);
    return fold.hasOlder;
  }

  /** Two connects in a row never opened: a refused token looks the same as an unreachable
   *  server in a browser, so ask REST (one request, the token callback's current token). */
  private async probeToken(token: () => string | Promise<string>): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      const res = await this.fetchFn(`${this.session.base}/v1/channels`, {
        headers: { authorization: `Bearer ${await token()}`, accept: 'application/json' },
      });
      if (res.status !== 401) return;
      let body: unknown;
      try {
        body = await res.json();
      } catch {
        body = undefined;
      }
      const err =
        body && typeof body === 'object'
          ? PalaverError.from({ code: 'unauthorized', ...(body as object) }, 401)
          : new PalaverError('unauthorized', 'the server refused the token', { status: 401 });
      if (this.session.state !== 'closed') this.emit('unauthorized', err);
    } catch {
      // No answer (the server is unreachable) or no token: nothing learnt; the next failures probe again.
    } finally {
      this.probing = false;
    }
  }

  private readLocally(channel: string, seq: number): void {
    const fold = this.folds.get(channel);
    if (!fold || seq <= fold.info.read_seq) return;
    const info = { ...fold.info, read_seq: seq };
    if (seq >= info.last_seq) {
      info.unread = 0;
      info.mentions = 0;
    } else if (fold.floor <= seq + 1) {
      info.unread = fold.countMessagesAfter(seq, this.me ?? '');
    }
    fold.setInfo(info);
    this.channelsDirty();
  }

  private flushReads(): void {
    timers.clearTimeout(this.readTimer);
    this.readTimer = undefined;
    for (const [key, r] of this.reads) {
      if (!this.session.send({ t: 'read', ...r, ref: this.session.nextRef() })) return;
      this.reads.delete(key);
    }
  }

  private queueRerender(channel: string, id: string): void {
    let ids = this.rerenders.get(channel);
    if (!ids) this.rerenders.set(channel, (ids = new Set()));
    ids.add(id);
    if (this.rerenderTimer !== undefined) return;
    this.rerenderTimer = timers.setTimeout(() => {
      this.rerenderTimer = undefined;
      void this.rerender();
    }, RERENDER_DELAY_MS);
  }

  /** Re-reads messages the fold could not update exactly, from history (one event each). */
  private async rerender(): Promise<void> {
    const work = [...this.rerenders];
    this.rerenders.clear();
    for (const [channel, ids] of work) {
      const fold = this.folds.get(channel);
      for (const id of ids) {
        const m = fold?.get(id);
        if (!fold || !m) continue;
        try {
          const page = await this.rest.events(channel, { after: m.seq - 1, limit: 1 });
          const ev = page.events.find((e) => e.id === id);
          if (ev && fold.rerender(ev)) this.changedChannel(channel);
        } catch {
          // Best effort: the next change of the message or a reload corrects it.
        }
      }
    }
  }

  private channelsDirty(): void {
    this.listCache = undefined;
    this.channelsChanged = true;
    this.queueNotify();
  }

  private changedChannel(channel: string): void {
    this.changed.add(channel);
    this.queueNotify();
  }

  /** `change` and `channels` are coalesced per turn: a replay of a thousand events is one. */
  private queueNotify(): void {
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      if (this.channelsChanged) {
        this.channelsChanged = false;
        this.emit('channels', this.channels());
      }
      const channels = [...this.changed];
      this.changed.clear();
      for (const channel of channels) this.emit('change', { channel });
    });
  }

  private emit<K extends keyof ClientEvents>(name: K, arg: ClientEvents[K]): void {
    const set = this.listeners.get(name);
    if (!set) return;
    for (const cb of [...set]) {
      try {
        (cb as Listener<K>)(arg);
      } catch (e) {
        // An application bug must not break delivery: report it the platform's way, later.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}

function localOf(rec: SendRecord): LocalSend {
  const l: LocalSend = { cmid: rec.cmid, channel: rec.channel, text: rec.text, ts: rec.ts };
  if (rec.thread) l.thread = rec.thread;
  if (rec.also_channel) l.alsoChannel = true;
  return l;
}

function ackOf(f: Frame): Ack {
  const a: Ack = { channel: String(f.channel), id: String(f.id) };
  if (typeof f.seq === 'number') a.seq = f.seq;
  if (typeof f.ts === 'string') a.ts = f.ts;
  if (f.noop === true) a.noop = true;
  return a;
}
