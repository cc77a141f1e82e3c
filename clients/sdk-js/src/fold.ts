// The folded state of one channel: its messages with their current state, thread replies,
// the root summaries, and the local sends not delivered yet. Live events, replayed events and
// history pages all go through apply(), which follows the protocol's fold rule (a change
// applies only if its seq is above the message's state_seq), so whatever mix of them arrives,
// the state converges to what REST history renders. Pure: no I/O, no timers.

import type { PalaverError } from './errors.js';
import type { ChannelEvent, ChannelInfo, ChannelView, FileRef, Message, Reaction, ThreadView } from './types.js';

/** The server names at most this many repliers in a root's summary, and reactors per emoji. */
const REPLY_USERS_SHOWN = 10;
const REACTION_USERS_SHOWN = 5;

/** A local send as the view shows it until its message is delivered. */
export interface LocalSend {
  cmid: string;
  channel: string;
  text: string;
  thread?: string;
  alsoChannel?: boolean;
  ts: string;
  failed?: PalaverError;
}

export interface FoldResult {
  /** Whether the view (or one of its threads) changed. */
  changed: boolean;
  /** Messages whose state could not be derived exactly from the event (a summary that names only
   *  the first few users lost one, or more than ten repliers); re-render them from REST. */
  inexact: string[];
}

/** A message as its event (live or rendered) describes it. Absent wire fields stay absent, so
 *  a message folded from live events and the same message rendered by history compare equal. */
export function messageOf(ev: ChannelEvent): Message {
  const m: Message = {
    id: ev.id,
    seq: ev.seq,
    user: ev.user,
    ts: ev.ts,
    text: ev.text ?? null,
    deleted: ev.deleted ?? false,
    reactions: (ev.reactions ?? []).map((r) => ({ ...r, users: [...r.users] })),
    reply_count: ev.reply_count ?? 0,
    reply_users: [...(ev.reply_users ?? [])],
    reply_users_count: ev.reply_users_count ?? 0,
    // A live message is its own state at its seq.
    state_seq: ev.state_seq ?? ev.seq,
  };
  if (ev.cmid) m.cmid = ev.cmid;
  if (ev.thread) m.thread = ev.thread;
  if (ev.also_channel) m.also_channel = true;
  if (ev.edited_at) m.edited_at = ev.edited_at;
  if (ev.last_reply_ts) m.last_reply_ts = ev.last_reply_ts;
  if (ev.files && !m.deleted) m.files = ev.files.map((f: FileRef) => ({ ...f }));
  return m;
}

function isChange(kind: string): boolean {
  return kind === 'edit' || kind === 'delete' || kind === 'reaction_add' || kind === 'reaction_remove';
}

/** Index of the first element whose seq is >= seq, in an array sorted by seq. */
function lowerBound(list: Message[], seq: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Inserts or replaces (same seq) in a seq-sorted array. */
function upsert(list: Message[], m: Message): void {
  const i = lowerBound(list, m.seq);
  if (list[i]?.seq === m.seq) list[i] = m;
  else list.splice(i, 0, m);
}

export class ChannelFold {
  info: ChannelInfo;
  /** Every event with seq >= floor has been folded (the view is complete from there on). */
  floor: number;
  hasOlder = true;
  private readonly byId = new Map<string, Message>();
  private readonly idByCmid = new Map<string, string>();
  /** Top-level messages and also_channel replies, by seq (including roots older than floor,
   *  loaded with their thread; the view shows only the part from floor on). */
  private readonly top: Message[] = [];
  private readonly replies = new Map<string, Message[]>();
  private readonly local: LocalSend[] = [];
  private readonly typingUntil = new Map<string, number>();
  private viewCache: ChannelView | undefined;
  private readonly threadCache = new Map<string, ThreadView>();

  constructor(
    info: ChannelInfo,
    /** The viewer, for `me` in reactions. */
    private readonly me: () => string,
    floor: number,
  ) {
    this.info = { ...info };
    this.floor = floor;
  }

  /** Folds one event (live, replayed or from a history page). */
  apply(ev: ChannelEvent): FoldResult {
    const res: FoldResult = { changed: false, inexact: [] };
    if (ev.kind === 'message') this.applyMessage(ev, res);
    else if (isChange(ev.kind)) this.applyChange(ev, res);
    else if (ev.kind === 'channel_update' && typeof ev.changes?.name === 'string') {
      this.info = { ...this.info, name: ev.changes.name };
      res.changed = true;
    }
    if (res.changed) this.invalidate(ev.thread ?? undefined);
    return res;
  }

  /** Replaces a message by a fresh rendering of it (REST), unless what we hold is newer. */
  rerender(ev: ChannelEvent): boolean {
    const held = this.byId.get(ev.id);
    if (ev.kind !== 'message' || ev.state_seq === undefined || (held && held.state_seq > ev.state_seq)) return false;
    this.store(messageOf(ev));
    this.invalidate(ev.thread ?? undefined);
    return true;
  }

  get(id: string): Message | undefined {
    return this.byId.get(id);
  }

  /** Messages by others after `seq` (unread counts as the server makes them: replies too). */
  countMessagesAfter(seq: number, me: string): number {
    let n = 0;
    for (const m of this.byId.values()) if (m.seq > seq && m.user !== me) n++;
    return n;
  }

  setInfo(info: ChannelInfo): void {
    this.info = { ...info };
    this.viewCache = undefined;
  }

  lowerFloor(floor: number, hasOlder: boolean): void {
    this.floor = Math.min(this.floor, floor);
    this.hasOlder = hasOlder;
    this.viewCache = undefined;
  }

  /** Shows a local send at the end of its list until its message arrives (or stays: failed). */
  addLocal(send: LocalSend): void {
    if (this.idByCmid.has(send.cmid) || this.local.some((l) => l.cmid === send.cmid)) return;
    this.local.push(send);
    this.invalidate(send.thread);
  }

  failLocal(cmid: string, err: PalaverError): void {
    const l = this.local.find((x) => x.cmid === cmid);
    if (!l) return;
    l.failed = err;
    this.invalidate(l.thread);
  }

  /** Drops a local send from the view (a failed one the user dismissed). */
  removeLocal(cmid: string): boolean {
    const i = this.local.findIndex((x) => x.cmid === cmid);
    if (i < 0) return false;
    const [l] = this.local.splice(i, 1);
    this.invalidate(l!.thread);
    return true;
  }

  /** A typing frame: the user shows as typing (in the channel or a thread) until `until`. */
  setTyping(user: string, thread: string | undefined, until: number): void {
    this.typingUntil.set(`${thread ?? ''}\n${user}`, until);
    this.invalidate(thread);
  }

  /** The user's message arrived (in the channel, or in a thread): they no longer show as typing
   *  there. True when they did. */
  clearTyping(user: string, thread: string | undefined): boolean {
    if (!this.typingUntil.delete(`${thread ?? ''}\n${user}`)) return false;
    this.invalidate(thread);
    return true;
  }

  /** Forgets expired typing entries; true when one was dropped. */
  expireTyping(now: number): boolean {
    let dropped = false;
    for (const [k, until] of this.typingUntil) {
      if (until <= now) {
        this.typingUntil.delete(k);
        dropped = true;
        const thread = k.slice(0, k.indexOf('\n'));
        this.invalidate(thread || undefined);
      }
    }
    return dropped;
  }

  /** The earliest typing expiry, to schedule expireTyping. */
  nextTypingExpiry(): number | undefined {
    let min: number | undefined;
    for (const until of this.typingUntil.values()) if (min === undefined || until < min) min = until;
    return min;
  }

  /** The view, the same object until something in it changes. */
  view(now: number): ChannelView {
    if (this.viewCache) return this.viewCache;
    const from = lowerBound(this.top, this.floor);
    const messages = this.top.slice(from);
    for (const l of this.local) if (!l.thread || l.alsoChannel) messages.push(this.localMessage(l));
    this.viewCache = {
      id: this.info.id,
      info: { ...this.info },
      messages,
      hasOlder: this.hasOlder,
      typing: this.typers(undefined, now),
    };
    return this.viewCache;
  }

  thread(root: string, now: number): ThreadView {
    const cached = this.threadCache.get(root);
    if (cached) return cached;
    const replies = [...(this.replies.get(root) ?? [])];
    for (const l of this.local) if (l.thread === root) replies.push(this.localMessage(l));
    const view: ThreadView = { channel: this.info.id, root: this.byId.get(root), replies, typing: this.typers(root, now) };
    this.threadCache.set(root, view);
    return view;
  }

  private typers(thread: string | undefined, now: number): string[] {
    const prefix = `${thread ?? ''}\n`;
    const users: string[] = [];
    for (const [k, until] of this.typingUntil) if (until > now && k.startsWith(prefix)) users.push(k.slice(prefix.length));
    return users;
  }

  private localMessage(l: LocalSend): Message {
    const m: Message = {
      id: l.cmid,
      seq: 0,
      user: this.me(),
      ts: l.ts,
      text: l.text,
      cmid: l.cmid,
      deleted: false,
      reactions: [],
      state_seq: 0,
      pending: true,
    };
    if (l.thread) m.thread = l.thread;
    if (l.alsoChannel) m.also_channel = true;
    if (l.failed) m.failed = l.failed;
    return m;
  }

  private applyMessage(ev: ChannelEvent, res: FoldResult): void {
    const held = this.byId.get(ev.id);
    if (held) {
      // A rendered copy carries the state as of its state_seq: newer than ours replaces ours. A
      // live copy is the message as sent, which we already have.
      if (ev.state_seq !== undefined && ev.state_seq > held.state_seq) {
        this.store(messageOf(ev));
        res.changed = true;
      }
      return;
    }
    this.store(messageOf(ev));
    res.changed = true;
    if (ev.cmid) {
      const i = this.local.findIndex((l) => l.cmid === ev.cmid);
      if (i >= 0) this.local.splice(i, 1);
    }
    if (ev.thread) this.countReply(ev, res);
  }

  /** A reply changes its root's summary, under the fold rule like any change. */
  private countReply(ev: ChannelEvent, res: FoldResult): void {
    const root = this.byId.get(ev.thread!);
    if (!root || ev.seq <= root.state_seq) return;
    const users = root.reply_users ?? [];
    const count = root.reply_users_count ?? 0;
    const next: Message = { ...root, reply_count: (root.reply_count ?? 0) + 1, last_reply_ts: ev.ts, state_seq: ev.seq };
    if (!users.includes(ev.user)) {
      if (count === users.length) {
        // Every replier is named, so this one is new.
        next.reply_users_count = count + 1;
        if (users.length < REPLY_USERS_SHOWN) next.reply_users = [...users, ev.user];
      } else {
        // More than ten repliers and this one is not among the named: whether it is a first
        // reply is not knowable here.
        res.inexact.push(root.id);
      }
    }
    this.store(next);
  }

  private applyChange(ev: ChannelEvent, res: FoldResult): void {
    const target = ev.target === undefined ? undefined : this.byId.get(ev.target);
    // A message we do not hold gets this change with its rendering, when it is loaded.
    if (!target || ev.seq <= target.state_seq) return;
    const next: Message = { ...target, state_seq: ev.seq };
    switch (ev.kind) {
      case 'edit':
        next.text = ev.text ?? null;
        if (ev.edited_at) next.edited_at = ev.edited_at;
        break;
      case 'delete':
        next.text = null;
        next.deleted = true;
        next.reactions = [];
        delete next.files;
        break;
      case 'reaction_add':
        next.reactions = this.addReaction(target.reactions, ev);
        break;
      case 'reaction_remove':
        next.reactions = this.removeReaction(target.reactions, ev, () => res.inexact.push(target.id));
        break;
    }
    this.store(next);
    res.changed = true;
    if (target.thread) this.invalidate(target.thread);
  }

  private addReaction(list: Reaction[], ev: ChannelEvent): Reaction[] {
    const mine = ev.user === this.me();
    const i = list.findIndex((r) => r.emoji === ev.emoji);
    if (i < 0) return [...list, { emoji: ev.emoji ?? '', count: 1, me: mine, users: [ev.user] }];
    const r = list[i]!;
    const users = r.users.length < REACTION_USERS_SHOWN && !r.users.includes(ev.user) ? [...r.users, ev.user] : r.users;
    const out = [...list];
    out[i] = { emoji: r.emoji, count: r.count + 1, me: r.me || mine, users };
    return out;
  }

  private removeReaction(list: Reaction[], ev: ChannelEvent, inexact: () => void): Reaction[] {
    const i = list.findIndex((r) => r.emoji === ev.emoji);
    if (i < 0) return list;
    const r = list[i]!;
    const out = [...list];
    if (r.count <= 1) {
      out.splice(i, 1);
      return out;
    }
    const at = r.users.indexOf(ev.user);
    const users = at < 0 ? r.users : r.users.filter((u) => u !== ev.user);
    // The summary names the first five reactors and orders emoji by their first reactor:
    // losing a named one when more exist, or the first one when other emoji may now come
    // before it, needs the server's rendering.
    if (at >= 0 && (r.count > REACTION_USERS_SHOWN || (at === 0 && list.length > 1))) inexact();
    out[i] = { emoji: r.emoji, count: r.count - 1, me: ev.user === this.me() ? false : r.me, users };
    return out;
  }

  private store(m: Message): void {
    this.byId.set(m.id, m);
    if (m.cmid) this.idByCmid.set(m.cmid, m.id);
    if (!m.thread || m.also_channel) upsert(this.top, m);
    if (m.thread) {
      let list = this.replies.get(m.thread);
      if (!list) this.replies.set(m.thread, (list = []));
      upsert(list, m);
    }
    // A root also heads its thread's view.
    if (this.replies.has(m.id) || this.threadCache.has(m.id)) this.threadCache.delete(m.id);
  }

  private invalidate(thread: string | undefined): void {
    this.viewCache = undefined;
    if (thread) this.threadCache.delete(thread);
  }
}
