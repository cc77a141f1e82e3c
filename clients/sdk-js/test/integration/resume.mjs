// An offline client resumes from its persisted positions (e2e/tests/sdk.rs): it is closed,
// the other user sends, a new client on the same Storage gets exactly what was sent
// meanwhile (nothing from before, nothing twice), and re-sends the send left in its outbox.
// Prints one {"ok":…} line; exits non-zero on failure.
// Env: PALAVER_URLS_A / _B, PALAVER_TOKEN_A / _B, PALAVER_MESSAGES (sent while offline).

import { MemoryStorage, client, env, fail, messageSeqs, open, orderProblem, out, sleep, until, viewProblem, within } from './lib.mjs';

const n = Number(env('PALAVER_MESSAGES', '50'));
const urlsA = env('PALAVER_URLS_A').split(',');
const storage = new MemoryStorage();
const a = client(urlsA, env('PALAVER_TOKEN_A'), storage);
const b = client(env('PALAVER_URLS_B').split(','), env('PALAVER_TOKEN_B'));
await open(a, 'client A');
await open(b, 'client B');
const general = a.c.channels().find((ch) => ch.name === 'general')?.id;
if (!general) fail('A is not in #general');

const before = await within(Promise.all([1, 2, 3].map((i) => b.c.send(general, `before ${i}`))), 'acks before', 20000);
await until(() => before.every((ack) => a.seen.events.some((e) => e.seq === ack.seq)), 'A to see the first messages', 20000);

// A goes away with a send not acked yet: it stays in the outbox in storage.
const orphan = a.c.send(general, 'sent just before closing').catch((e) => e);
await a.c.close();
const position = JSON.parse(await storage.get('positions'))[general];
const leftover = JSON.parse(await storage.get('outbox') ?? '[]');

const offline = [];
for (let i = 0; i < n; i++) offline.push((await within(b.c.send(general, `offline ${i}`), `ack ${i}`, 20000)).seq);

// The same storage on a new client (and another pod first): positions and outbox carry over.
const a2 = client([...urlsA].reverse(), env('PALAVER_TOKEN_A'), storage);
await open(a2, 'client A again');
// Whether that send reached the server before the close or only from the outbox, it is stored once.
const orphanSeq = () => a2.seen.events.find((e) => e.kind === 'message' && e.text === 'sent just before closing')?.seq;
await until(() => offline.every((s) => a2.seen.events.some((e) => e.seq === s)), 'A to get the messages sent while it was offline', 30000);
if (leftover.length > 0) await until(() => orphanSeq() !== undefined, 'the outbox send to be delivered', 30000);

const delivered = messageSeqs(a2.seen.events, general);
const report = { position, offline, delivered, leftover: leftover.length, orphan: orphanSeq() ?? null, closedSend: String((await orphan)?.code ?? 'acked') };
const order = orderProblem(a2.seen.events);
if (order) fail(order, report);
if (a2.seen.events.some((e) => e.channel === general && e.seq <= position)) fail('events at or below the persisted position came again', report);
const expected = [...offline, ...(orphanSeq() ? [orphanSeq()] : [])].sort((x, y) => x - y);
if (JSON.stringify(delivered) !== JSON.stringify(expected)) fail('the resumed client got other messages than those sent while it was offline', report);
// Its event may come with the replay before the re-send's ack: wait for the ack to empty the outbox.
for (const deadline = Date.now() + 20000; JSON.parse(await storage.get('outbox')).length !== 0; await sleep(20)) {
  if (Date.now() > deadline) fail('the outbox is not empty after the resume', report);
}
const view = await viewProblem(a2, general);
if (view) fail(view, report);
await a2.c.close();
await b.c.close();
out({ ok: true, ...report });
process.exit(0);
