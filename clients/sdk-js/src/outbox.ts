// The outbox: requests waiting for their ack. Sends carry a client-generated cmid and are
// persisted until acked or refused, and every new connection re-sends them with the same cmid
// (the server stores a cmid once and answers a repeat with the original ack), so a send is
// stored exactly once however often the connection drops. Message changes (edit, delete, react,
// unreact) wait in memory and are repeated the same way: the protocol answers a repeated change
// with a no-op ack. Each request's Promise settles once: on its ack, or on a refusal; a
// rate_limited refusal waits retry_after_ms and an unavailable one backs off, then both retry.

import { Backoff } from './backoff.js';
import { PalaverError } from './errors.js';
import type { Ack, ErrorFrame } from './types.js';

/** A send as persisted (storage key "outbox"), in the order of the send() calls. */
export interface SendRecord {
  cmid: string;
  channel: string;
  text: string;
  thread?: string;
  also_channel?: boolean;
  files?: string[];
  /** When send() was called (ISO), for the pending message's ts. */
  ts: string;
}

/** A frame without its ref (the outbox adds a fresh one per transmission). */
export type RequestFrame = { t: string } & Record<string, unknown>;

type Entry = {
  frame: RequestFrame;
  /** Present for sends: the persisted record. */
  send?: SendRecord;
  /** Absent for sends restored from storage (nobody awaits them in this process). */
  settle?: { resolve: (a: Ack) => void; reject: (e: PalaverError) => void };
  /** queued: to transmit; inflight: transmitted on the current connection. */
  phase: 'queued' | 'inflight';
};

export interface OutboxDeps {
  /** Writes a frame on the open connection; false when there is none. */
  transmit(frame: RequestFrame & { ref: number }): boolean;
  nextRef(): number;
  /** The persisted sends changed. */
  persist(sends: SendRecord[]): void;
  /** A send was acked or refused (the view drops or marks its pending message). */
  settled(send: SendRecord, outcome: { ack: Ack } | { error: PalaverError }): void;
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  random?: () => number;
}

export function sendFrame(rec: SendRecord): RequestFrame {
  const f: RequestFrame = { t: 'send', channel: rec.channel, cmid: rec.cmid, text: rec.text };
  if (rec.thread) f.thread = rec.thread;
  if (rec.also_channel) f.also_channel = true;
  if (rec.files && rec.files.length > 0) f.files = rec.files;
  return f;
}

export class Outbox {
  private readonly entries: Entry[] = [];
  private readonly byRef = new Map<number, Entry>();
  private open = false;
  /** Nothing is transmitted before this time (a rate_limited answer said when). */
  private pausedUntil = 0;
  private timer: unknown;
  private readonly unavailable: Backoff;

  constructor(private readonly deps: OutboxDeps) {
    this.unavailable = new Backoff({ initialMs: 500, maxMs: 10000 }, deps.random);
  }

  /** Sends left over by an earlier client on the same storage. */
  restore(sends: SendRecord[]): void {
    for (const send of sends) {
      if (this.entries.some((e) => e.send?.cmid === send.cmid)) continue;
      this.entries.push({ frame: sendFrame(send), send, phase: 'queued' });
    }
  }

  /** The sends not acked yet, oldest first. */
  sends(): SendRecord[] {
    return this.entries.flatMap((e) => (e.send ? [e.send] : []));
  }

  add(frame: RequestFrame, send?: SendRecord): Promise<Ack> {
    return new Promise<Ack>((resolve, reject) => {
      this.entries.push({ frame, send, settle: { resolve, reject }, phase: 'queued' } as Entry);
      if (send) this.deps.persist(this.sends());
      this.flush();
    });
  }

  /** A connection is ready (synced): transmit everything waiting, in order. */
  opened(): void {
    this.open = true;
    this.unavailable.reset();
    this.flush();
  }

  /** The connection is gone: what was in flight there will never be answered; send it again. */
  closed(): void {
    this.open = false;
    this.byRef.clear();
    for (const e of this.entries) e.phase = 'queued';
  }

  /** An ack; false if the ref is not one of ours. */
  ack(ref: unknown, ack: Ack): boolean {
    const e = typeof ref === 'number' ? this.byRef.get(ref) : undefined;
    if (!e) return false;
    this.byRef.delete(ref as number);
    this.finish(e, { ack });
    return true;
  }

  /** An error frame; false if it answers none of ours. */
  error(ref: unknown, frame: ErrorFrame): boolean {
    const e = typeof ref === 'number' ? this.byRef.get(ref) : undefined;
    if (!e) return false;
    this.byRef.delete(ref as number);
    if (frame.code === 'rate_limited') {
      e.phase = 'queued';
      this.pausedUntil = Math.max(this.pausedUntil, this.deps.now() + (frame.retry_after_ms ?? 1000));
      this.schedule(this.pausedUntil - this.deps.now());
    } else if (frame.code === 'unavailable') {
      // A dependency of the server is down: back off, and try again on a new connection too.
      e.phase = 'queued';
      this.schedule(this.unavailable.next());
    } else {
      this.finish(e, { error: PalaverError.from(frame) });
    }
    return true;
  }

  /** The client is closing: settle every waiting Promise (persisted sends stay for the next client). */
  rejectAll(err: PalaverError): void {
    this.deps.clearTimeout(this.timer);
    this.open = false;
    for (const e of this.entries) e.settle?.reject(err);
    this.entries.length = 0;
    this.byRef.clear();
  }

  private finish(e: Entry, outcome: { ack: Ack } | { error: PalaverError }): void {
    const i = this.entries.indexOf(e);
    if (i < 0) return;
    this.entries.splice(i, 1);
    if (e.send) {
      this.deps.persist(this.sends());
      this.deps.settled(e.send, outcome);
    }
    if ('ack' in outcome) e.settle?.resolve(outcome.ack);
    else e.settle?.reject(outcome.error);
  }

  private schedule(ms: number): void {
    this.deps.clearTimeout(this.timer);
    this.timer = this.deps.setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, Math.max(0, ms));
  }

  private flush(): void {
    if (!this.open) return;
    const wait = this.pausedUntil - this.deps.now();
    if (wait > 0) {
      if (this.timer === undefined) this.schedule(wait);
      return;
    }
    for (const e of this.entries) {
      if (e.phase !== 'queued') continue;
      const ref = this.deps.nextRef();
      if (!this.deps.transmit({ ...e.frame, ref })) return;
      e.phase = 'inflight';
      this.byRef.set(ref, e);
    }
  }
}
