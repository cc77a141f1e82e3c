// The outbox: sends persisted with their cmid, re-sent with the same cmid after a reconnect
// and resolved exactly once; rate_limited waits and retries; other refusals reject.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MemoryStorage, PalaverError, type Ack } from '../src/index.js';
import { setup, sleep, until } from './fakes.js';

const channels = [{ id: 'c1', last_seq: 0 }];

test('an unacked send is re-sent with the same cmid after a reconnect and resolves once', async (t) => {
  const s = setup(t);
  s.client.connect();
  const { conn } = await s.server.synced(0, channels);
  let resolutions = 0;
  let acked: Ack | undefined;
  const p = s.client.send('c1', 'hello').then((a) => {
    resolutions++;
    acked = a;
  });
  const first = await conn.frame((f) => f.t === 'send', 'the send');
  assert.equal(first.text, 'hello');
  assert.equal(typeof first.cmid, 'string');
  assert.ok(first.cmid.length >= 1 && first.cmid.length <= 64);
  const stored = JSON.parse((await s.storage.get('outbox'))!);
  assert.deepEqual(
    stored.map((r: { cmid: string }) => r.cmid),
    [first.cmid],
    'persisted before any ack',
  );
  const pending = s.client.channel('c1')!.messages;
  assert.equal(pending.length, 1);
  assert.equal(pending[0]!.pending, true);

  // The connection dies before the ack (pod killed): abnormal closure.
  conn.close(1006);
  const { conn: second } = await s.server.synced(1, channels);
  const again = await second.frame((f) => f.t === 'send', 'the re-send');
  assert.equal(again.cmid, first.cmid, 'same cmid, so the server dedupes');
  assert.notEqual(again.ref, first.ref, 'a fresh ref per transmission');
  const ack = { t: 'ack', ref: again.ref, channel: 'c1', seq: 1, id: 'm1', ts: '2026-01-01T00:00:01Z' };
  second.send(ack);
  second.send(ack); // a duplicate answer must not resolve twice (or anything else)
  await p;
  await sleep(20);
  assert.equal(resolutions, 1);
  assert.deepEqual(acked, { channel: 'c1', seq: 1, id: 'm1', ts: '2026-01-01T00:00:01Z' });
  assert.deepEqual(JSON.parse((await s.storage.get('outbox'))!), [], 'removed from storage once acked');
  assert.equal(second.framesOf('send').length, 1, 'not sent a third time');

  // Its own event then replaces the pending entry.
  second.event({ channel: 'c1', seq: 1, id: 'm1', user: 'me', cmid: first.cmid, text: 'hello' });
  await until(() => s.events.length === 1, 'own event');
  await sleep(1);
  const view = s.client.channel('c1')!.messages;
  assert.deepEqual(
    view.map((m) => [m.id, m.pending ?? false]),
    [['m1', false]],
  );
});

test('a send left in storage by an earlier client is sent by the next one', async (t) => {
  const storage = new MemoryStorage();
  const a = setup(t, {}, storage);
  a.client.connect();
  await a.server.synced(0, channels);
  const lost = a.client.send('c1', 'survives');
  await (await a.server.conn(0)).frame((f) => f.t === 'send', 'first send');
  await a.client.close();
  await assert.rejects(lost, (e: unknown) => e instanceof PalaverError && e.code === 'closed');

  const b = setup(t, {}, storage);
  b.client.connect();
  const { conn } = await b.server.synced(0, channels);
  const f = await conn.frame((x) => x.t === 'send', 'restored send');
  assert.equal(f.text, 'survives');
  assert.equal(b.client.channel('c1')!.messages[0]!.pending, true);
  conn.send({ t: 'ack', ref: f.ref, channel: 'c1', seq: 1, id: 'm1', ts: '2026-01-01T00:00:01Z' });
  await sleep(10);
  assert.deepEqual(JSON.parse((await storage.get('outbox'))!), []);
});

test('rate_limited waits retry_after_ms, then retries with the same cmid', async (t) => {
  const s = setup(t);
  s.client.connect();
  const { conn } = await s.server.synced(0, channels);
  const p = s.client.send('c1', 'slow down');
  const first = await conn.frame((f) => f.t === 'send', 'send');
  const refusedAt = Date.now();
  conn.send({ t: 'error', ref: first.ref, code: 'rate_limited', message: 'slow down', retry_after_ms: 80 });
  const retry = await conn.frame((f) => f.t === 'send' && f.ref !== first.ref, 'the retry');
  const waited = Date.now() - refusedAt;
  assert.ok(waited >= 70, `retried after ${waited} ms, before retry_after_ms`);
  assert.equal(retry.cmid, first.cmid);
  conn.send({ t: 'ack', ref: retry.ref, channel: 'c1', seq: 1, id: 'm1', ts: '2026-01-01T00:00:01Z' });
  assert.equal((await p).seq, 1);
});

test('unavailable is retried; any other refusal rejects with PalaverError and is not retried', async (t) => {
  const s = setup(t);
  s.client.connect();
  const { conn } = await s.server.synced(0, channels);
  const ok = s.client.send('c1', 'one');
  const f1 = await conn.frame((f) => f.t === 'send', 'send one');
  conn.send({ t: 'error', ref: f1.ref, code: 'unavailable', message: 'postgres down' });
  const f1b = await conn.frame((f) => f.t === 'send' && f.ref !== f1.ref, 'retry of one', 3000);
  assert.equal(f1b.cmid, f1.cmid);
  conn.send({ t: 'ack', ref: f1b.ref, channel: 'c1', seq: 1, id: 'm1', ts: '2026-01-01T00:00:01Z' });
  await ok;

  const refused = s.client.send('c1', 'two');
  const f2 = await conn.frame((f) => f.t === 'send' && f.text === 'two', 'send two');
  conn.send({ t: 'error', ref: f2.ref, code: 'forbidden', message: 'archived' });
  await assert.rejects(refused, (e: unknown) => e instanceof PalaverError && e.code === 'forbidden' && e.message === 'archived');
  await sleep(50);
  assert.equal(conn.received.filter((f) => f.t === 'send' && f.text === 'two').length, 1, 'not retried');
  const failed = s.client.channel('c1')!.messages.find((m) => m.cmid === f2.cmid);
  assert.equal(failed?.failed?.code, 'forbidden', 'the view shows why');
  s.client.dismiss('c1', f2.cmid);
  assert.equal(s.client.channel('c1')!.messages.find((m) => m.cmid === f2.cmid), undefined);
  assert.equal(s.errors.length, 0, 'a refusal of a request is not an unowned error');
});

test('changes wait for a connection and resolve with their ack (noop included)', async (t) => {
  const s = setup(t);
  const edit = s.client.edit('c1', 'm1', 'new text');
  const react = s.client.react('c1', 'm1', ':+1:');
  s.client.connect();
  const { conn } = await s.server.synced(0, channels);
  const e = await conn.frame((f) => f.t === 'edit', 'edit');
  const r = await conn.frame((f) => f.t === 'react', 'react');
  assert.deepEqual({ ...e, ref: 0 }, { t: 'edit', channel: 'c1', id: 'm1', text: 'new text', ref: 0 });
  assert.ok(conn.received.indexOf(e) < conn.received.indexOf(r), 'in call order');
  conn.send({ t: 'ack', ref: r.ref, channel: 'c1', id: 'm1', noop: true });
  conn.send({ t: 'ack', ref: e.ref, channel: 'c1', id: 'm1', seq: 2, ts: '2026-01-01T00:00:02Z' });
  assert.deepEqual(await react, { channel: 'c1', id: 'm1', noop: true });
  assert.equal((await edit).seq, 2);
});
