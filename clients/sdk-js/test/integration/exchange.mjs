// Two SDK clients exchange messages while the Rust side kills a pod and restarts Redis
// (e2e/tests/sdk.rs): each application callback sequence must be exactly the acked sequence.
// Prints {"sent":n} as acks come in, then one {"ok":…} line; exits non-zero on failure.
// Env: PALAVER_URLS_A / _B (comma-separated base URLs), PALAVER_TOKEN_A / _B,
// PALAVER_MESSAGES (per client), PALAVER_PACE_MS (between rounds).

import { client, env, fail, messageSeqs, open, orderProblem, out, sleep, until, viewProblem, within } from './lib.mjs';

const perClient = Number(env('PALAVER_MESSAGES', '500'));
const pace = Number(env('PALAVER_PACE_MS', '15'));
const a = client(env('PALAVER_URLS_A').split(','), env('PALAVER_TOKEN_A'));
const b = client(env('PALAVER_URLS_B').split(','), env('PALAVER_TOKEN_B'));
await open(a, 'client A');
await open(b, 'client B');
const general = a.c.channels().find((ch) => ch.name === 'general')?.id;
if (!general || !b.c.channels().some((ch) => ch.id === general)) fail('both users should be in #general');

// Alternating sends, not awaited one by one: while a pod is down they wait in the outbox.
const acked = { a: [], b: [] };
let total = 0;
const sends = [];
for (let i = 0; i < perClient; i++) {
  for (const [who, cl] of [['a', a], ['b', b]]) {
    sends.push(
      cl.c.send(general, `${who} ${i}`).then(
        (ack) => {
          acked[who].push(ack.seq);
          total++;
          if (total % 10 === 0) out({ sent: total });
        },
        (e) => fail(`send ${who} ${i} refused: ${e.code} ${e.message}`),
      ),
    );
  }
  await sleep(pace);
}
await within(Promise.all(sends), 'every ack', 90000).catch((e) => fail(String(e)));
out({ sent: total });

// A few changes, so the folded views are checked against history with more than plain messages.
const changes = await within(
  Promise.all([
    a.c.edit(general, await idOf(a, acked.a[0]), 'a 0, edited'),
    b.c.react(general, await idOf(b, acked.a[1]), ':+1:'),
    a.c.react(general, await idOf(a, acked.a[1]), ':+1:'),
    a.c.react(general, await idOf(a, acked.b[0]), ':tada:'),
    b.c.delete(general, await idOf(b, acked.b[2])),
  ]),
  'the acks of the changes',
  30000,
).catch((e) => fail(String(e)));

const all = [...acked.a, ...acked.b].sort((x, y) => x - y);
const want = new Set(all);
if (want.size !== all.length) fail('two sends were acked with the same seq');
const last = Math.max(...all, ...changes.map((c) => c.seq));
for (const [who, cl] of [['a', a], ['b', b]]) {
  // Done when the callback has seen every acked message and change: no fixed sleep.
  await until(() => cl.seen.events.some((e) => e.channel === general && e.seq === last) && messageSeqs(cl.seen.events, general).filter((s) => want.has(s)).length === want.size, `client ${who} to see everything acked`, 60000);
}

const report = { acked: all, general, first: all[0], last: all[all.length - 1], resumes: {}, delivered: {} };
for (const [who, cl] of [['a', a], ['b', b]]) {
  const order = orderProblem(cl.seen.events);
  if (order) fail(`client ${who}: ${order}`, report);
  const delivered = messageSeqs(cl.seen.events, general);
  const missing = all.filter((s) => !delivered.includes(s));
  if (missing.length > 0) fail(`client ${who} never got acked seqs ${missing.slice(0, 10)}`, report);
  // Only these two clients send: every message delivered is one of the acked ones.
  const extra = delivered.filter((s) => !want.has(s));
  if (extra.length > 0) fail(`client ${who} got messages nobody acked: ${extra.slice(0, 10)}`, report);
  const view = await viewProblem(cl, general);
  if (view) fail(`client ${who}: ${view}`, report);
  report.resumes[who] = cl.seen.resumes;
  report.delivered[who] = delivered.length;
}
await a.c.close();
await b.c.close();
out({ ok: true, ...report });
process.exit(0);

/** The id of the acked message with `seq`, from the client's own view. */
async function idOf(cl, seq) {
  await until(() => cl.c.channel(general).messages.some((m) => m.seq === seq), `message ${seq} in the view`, 30000);
  return cl.c.channel(general).messages.find((m) => m.seq === seq).id;
}
