// Shared by the integration scripts (run by e2e/tests/sdk.rs against real pods): settings from
// the environment, SDK clients on Node (the ws package as WebSocket), JSON lines on stdout,
// bounded waits, and the delivery checks every scenario makes.

import WebSocket from 'ws';

import { MemoryStorage, PalaverClient } from '../../dist/index.js';

export { MemoryStorage };

export function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (v === undefined) fail(`environment variable ${name} is not set`);
  return v;
}

/** One JSON line on stdout: what the Rust side reads. */
export function out(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

export function fail(why, extra = {}) {
  out({ ok: false, why, ...extra });
  process.exit(1);
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits for `cond` (polled), failing the scenario with `what` after `ms`. */
export async function until(cond, what, ms) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Rejects (failing the scenario) if `p` does not settle within `ms`. */
export async function within(p, what, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A client as an application makes it, plus what its callbacks saw. */
export function client(urls, token, storage = new MemoryStorage()) {
  const c = new PalaverClient({ url: urls, token: () => token, WebSocket, storage, backoff: { initialMs: 100, maxMs: 2000 } });
  const seen = { events: [], errors: [], resumes: 0 };
  c.on('event', (e) => seen.events.push(e));
  c.on('error', (e) => seen.errors.push(e));
  c.on('state', (s) => {
    if (s.state === 'open' && s.resumed) seen.resumes++;
  });
  return { c, seen, storage };
}

export async function open(cl, what) {
  cl.c.connect();
  await until(() => cl.c.state === 'open', `${what} to connect`, 20000);
}

/** The (channel, seq) sequence the event callback saw: strictly increasing per channel. */
export function orderProblem(events) {
  const last = new Map();
  for (const e of events) {
    const prev = last.get(e.channel) ?? -Infinity;
    if (e.seq <= prev) return `channel ${e.channel}: seq ${e.seq} after ${prev} (a duplicate or out of order)`;
    last.set(e.channel, e.seq);
  }
  return undefined;
}

export function messageSeqs(events, channel) {
  return events.filter((e) => e.channel === channel && e.kind === 'message').map((e) => e.seq);
}

/** Every event of a channel after `after`, from REST history. */
export async function history(c, channel, after) {
  const all = [];
  for (let from = after; ; ) {
    const page = await c.rest.events(channel, { after: from, limit: 200 });
    all.push(...page.events);
    if (!page.has_more || page.events.length === 0) return all;
    from = page.events[page.events.length - 1].seq;
  }
}

/** The client's folded view of `channel` against what history renders now, message by message. */
export async function viewProblem(cl, channel) {
  const view = cl.c.channel(channel);
  const pending = view.messages.filter((m) => m.pending);
  if (pending.length > 0) return `${pending.length} messages still pending in the view`;
  const first = view.messages[0]?.seq;
  if (first === undefined) return 'the view is empty';
  const rendered = (await history(cl.c, channel, first - 1)).filter((e) => e.kind === 'message' && (!e.thread || e.also_channel));
  const shape = (m) =>
    JSON.stringify({
      id: m.id, seq: m.seq, user: m.user, text: m.text ?? null, edited_at: m.edited_at ?? null, deleted: m.deleted ?? false,
      state_seq: m.state_seq, reply_count: m.reply_count ?? 0, reactions: m.reactions ?? [],
    });
  const got = view.messages.map(shape);
  const want = rendered.map(shape);
  if (got.length !== want.length) return `the view has ${got.length} messages from seq ${first}, history ${want.length}`;
  for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) return `view ${got[i]} != history ${want[i]}`;
  return undefined;
}
