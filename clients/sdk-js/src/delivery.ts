// Exactly-once, in-order delivery per channel. Holds each channel's position (the highest seq
// applied), drops what is at or below it (replays, redeliveries), applies the next seq at
// once, and holds anything further: a hole (seq > position + 1) or a `gap` frame's range is
// paged from REST history before the held events go on. The sink sees every seq once, in order.

import type { ChannelEvent, HistoryPage } from './types.js';

/** The history route's largest page. */
const PAGE = 200;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10000;

export interface DeliveryDeps {
  /** GET /v1/channels/{id}/events with exclusive bounds, ascending. */
  fetchRange(channel: string, after: number, before: number, limit: number): Promise<HistoryPage>;
  /** Called once per seq, in seq order per channel. */
  apply(ev: ChannelEvent): void;
  /** A position moved (persist it). */
  moved(): void;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

interface ChannelDelivery {
  /** Highest seq applied; undefined until known (the first event then sets it). */
  applied: number | undefined;
  held: Map<number, ChannelEvent>;
  /** A gap frame's end: everything up to it must be paged. */
  pageTo: number;
  filling: boolean;
  retryMs: number;
  retryTimer: unknown;
}

export class Delivery {
  private readonly channels = new Map<string, ChannelDelivery>();
  private stopped = false;

  constructor(private readonly deps: DeliveryDeps) {}

  /** Positions to persist and to `sync` from. */
  positions(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [id, st] of this.channels) if (st.applied !== undefined) out[id] = st.applied;
    return out;
  }

  position(channel: string): number | undefined {
    return this.channels.get(channel)?.applied;
  }

  /** Sets a channel's position (restored from storage, or the start of a channel first seen). */
  setPosition(channel: string, seq: number): void {
    this.state(channel).applied = seq;
  }

  /** Forgets a channel's position: its next event starts it (a channel joined while connected). */
  forget(channel: string): void {
    const st = this.channels.get(channel);
    if (st) this.deps.clearTimeout(st.retryTimer);
    this.channels.delete(channel);
  }

  /** An event frame (live or replayed). */
  push(ev: ChannelEvent): void {
    const st = this.state(ev.channel);
    if (st.applied === undefined) st.applied = ev.seq - 1;
    if (ev.seq <= st.applied) return;
    if (ev.seq === st.applied + 1 && !st.filling) {
      this.applyOne(st, ev);
      this.drain(st);
      this.deps.moved();
      return;
    }
    st.held.set(ev.seq, ev);
    this.fill(ev.channel, st);
  }

  /** A gap frame: `from..=to` was not replayed and must be paged. */
  gap(channel: string, from: number, to: number): void {
    const st = this.state(channel);
    if (st.applied === undefined) st.applied = from - 1;
    st.pageTo = Math.max(st.pageTo, to);
    this.fill(channel, st);
  }

  stop(): void {
    this.stopped = true;
    for (const st of this.channels.values()) this.deps.clearTimeout(st.retryTimer);
  }

  private state(channel: string): ChannelDelivery {
    let st = this.channels.get(channel);
    if (!st) {
      st = { applied: undefined, held: new Map(), pageTo: 0, filling: false, retryMs: RETRY_MIN_MS, retryTimer: undefined };
      this.channels.set(channel, st);
    }
    return st;
  }

  private applyOne(st: ChannelDelivery, ev: ChannelEvent): void {
    st.applied = ev.seq;
    this.deps.apply(ev);
  }

  /** Applies held events that are next in line; drops those overtaken by a page. */
  private drain(st: ChannelDelivery): void {
    for (const seq of [...st.held.keys()]) if (seq <= st.applied!) st.held.delete(seq);
    for (let next = st.held.get(st.applied! + 1); next; next = st.held.get(st.applied! + 1)) {
      st.held.delete(next.seq);
      this.applyOne(st, next);
    }
  }

  /** The last seq that must be paged before held events can go on, if any. */
  private missingUpTo(st: ChannelDelivery): number | undefined {
    const applied = st.applied!;
    if (st.pageTo > applied) return st.pageTo;
    let lowest: number | undefined;
    for (const seq of st.held.keys()) if (lowest === undefined || seq < lowest) lowest = seq;
    return lowest !== undefined && lowest > applied + 1 ? lowest - 1 : undefined;
  }

  private async fill(channel: string, st: ChannelDelivery): Promise<void> {
    // While a failed page waits for its retry, new events only join the held ones.
    if (st.filling || this.stopped || st.retryTimer !== undefined) return;
    st.filling = true;
    try {
      for (let upTo = this.missingUpTo(st); upTo !== undefined && !this.stopped; upTo = this.missingUpTo(st)) {
        const page = await this.deps.fetchRange(channel, st.applied!, upTo + 1, PAGE);
        if (this.channels.get(channel) !== st) return;
        for (const ev of [...page.events].sort((a, b) => a.seq - b.seq)) {
          if (ev.seq > st.applied! && ev.seq <= upTo) this.applyOne(st, ev);
        }
        // The page answers for its whole range: with nothing more in it, seqs it lacks do not
        // exist for this reader, so waiting for them would stall the channel forever.
        if (!page.has_more) st.applied = Math.max(st.applied!, upTo);
        this.drain(st);
        this.deps.moved();
      }
      st.retryMs = RETRY_MIN_MS;
    } catch {
      // History unreachable (the pod went away): try again later. A reconnect's replay may
      // bring the missing events first, which push() then takes as they come.
      st.retryTimer = this.deps.setTimeout(() => {
        st.retryTimer = undefined;
        this.fill(channel, st);
      }, st.retryMs);
      st.retryMs = Math.min(RETRY_MAX_MS, st.retryMs * 2);
    } finally {
      st.filling = false;
    }
  }

  /** Pages pending holes now instead of at their retry time (a new connection is up). */
  retryNow(): void {
    for (const [channel, st] of this.channels) {
      if (st.retryTimer === undefined) continue;
      this.deps.clearTimeout(st.retryTimer);
      st.retryTimer = undefined;
      this.fill(channel, st);
    }
  }
}
