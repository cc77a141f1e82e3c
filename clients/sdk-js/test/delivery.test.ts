// Exactly-once in-order delivery: dedupe of replays, holes filled from REST before anything
// after them is emitted, gap frames paged, positions persisted and used by the next sync.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MemoryStorage } from '../src/index.js';
import { rendered, seqs, setup, sleep, until } from './fakes.js';

test('replayed and redelivered events are emitted once, across a reconnect', async (t) => {
  const s = setup(t);
  s.client.connect();
  const { conn, sync } = await s.server.synced(0, [{ id: 'c1', last_seq: 0 }]);
  assert.deepEqual(sync.since, { c1: 0 });
  for (const seq of [1, 2, 3, 2, 3, 1]) conn.event({ channel: 'c1', seq });
  conn.event({ channel: 'c1', seq: 4 });
  await until(() => s.events.length >= 4, '4 events');
  await sleep(10);
  assert.deepEqual(seqs(s.events), [1, 2, 3, 4]);

  conn.close(1001, 'going away');
  const second = await s.server.synced(1, [{ id: 'c1', last_seq: 5 }]);
  assert.deepEqual(second.sync.since, { c1: 4 }, 'the resume starts from the last applied seq');
  for (const seq of [3, 4, 5]) second.conn.event({ channel: 'c1', seq });
  await until(() => s.events.length >= 5, 'event 5');
  await sleep(10);
  assert.deepEqual(seqs(s.events), [1, 2, 3, 4, 5]);
  assert.equal(s.rest.historyCalls().length, 0, 'no REST needed without holes');
});

test('a hole is paged from REST before the events after it are emitted', async (t) => {
  const s = setup(t);
  let release!: () => void;
  s.rest.gate = new Promise((r) => (release = r));
  s.rest.put(...[2, 3, 4].map((seq) => rendered({ channel: 'c1', seq, id: `m${seq}` })));
  s.client.connect();
  const { conn } = await s.server.synced(0, [{ id: 'c1', last_seq: 0 }]);
  conn.event({ channel: 'c1', seq: 1 });
  conn.event({ channel: 'c1', seq: 5 });
  conn.event({ channel: 'c1', seq: 6 });
  await until(() => s.rest.historyCalls().length === 1, 'the history request');
  const q = s.rest.historyCalls()[0]!;
  assert.equal(q.get('after'), '1');
  assert.equal(q.get('before'), '5');
  await sleep(20);
  assert.deepEqual(seqs(s.events), [1], 'nothing after the hole while it is being paged');
  release();
  await until(() => s.events.length >= 6, 'all six');
  assert.deepEqual(seqs(s.events), [1, 2, 3, 4, 5, 6]);
  // A live event that arrives again after the fill is still a duplicate.
  conn.event({ channel: 'c1', seq: 4 });
  conn.event({ channel: 'c1', seq: 7 });
  await until(() => s.events.length >= 7, 'event 7');
  await sleep(10);
  assert.deepEqual(seqs(s.events), [1, 2, 3, 4, 5, 6, 7]);
});

test('a failed hole fill is retried and nothing is skipped', async (t) => {
  const s = setup(t);
  s.rest.failing = 1;
  s.rest.put(rendered({ channel: 'c1', seq: 1, id: 'm1' }));
  s.client.connect();
  const { conn } = await s.server.synced(0, [{ id: 'c1', last_seq: 0 }]);
  conn.event({ channel: 'c1', seq: 2 });
  await until(() => s.events.length >= 2, 'both events after the retry', 3000);
  assert.deepEqual(seqs(s.events), [1, 2]);
  assert.ok(s.rest.historyCalls().length >= 2, 'the first page failed and was asked again');
});

test('a gap at or below the position pages nothing and emits nothing again', async (t) => {
  const s = setup(t);
  s.client.connect();
  // A fresh client starts at the channel's end (452), so everything up to it is "held".
  const { conn, sync } = await s.server.synced(0, [{ id: 'c1', last_seq: 452 }]);
  assert.deepEqual(sync.since, { c1: 452 });
  conn.send({ t: 'gap', channel: 'c1', from: 1, to: 450 });
  conn.event({ channel: 'c1', seq: 451 });
  conn.event({ channel: 'c1', seq: 452 });
  conn.event({ channel: 'c1', seq: 453 });
  await until(() => s.events.length >= 1, 'event 453');
  await sleep(20);
  assert.deepEqual(seqs(s.events), [453]);
  assert.equal(s.rest.historyCalls().length, 0);
});

test('a gap from a persisted position is paged in order and exactly once', async (t) => {
  const storage = new MemoryStorage();
  await storage.set('positions', JSON.stringify({ c1: 0 }));
  const s = setup(t, {}, storage);
  for (let seq = 1; seq <= 450; seq++) s.rest.put(rendered({ channel: 'c1', seq, id: `m${seq}` }));
  s.client.connect();
  const { conn, sync } = await s.server.synced(0, [{ id: 'c1', last_seq: 452 }]);
  assert.deepEqual(sync.since, { c1: 0 });
  conn.send({ t: 'gap', channel: 'c1', from: 1, to: 450 });
  conn.event({ channel: 'c1', seq: 451 });
  conn.event({ channel: 'c1', seq: 452 });
  await until(() => s.events.length >= 452, 'all 452 events', 5000);
  assert.deepEqual(
    seqs(s.events),
    Array.from({ length: 452 }, (_, i) => i + 1),
  );
  const pages = s.rest.historyCalls().map((q) => [q.get('after'), q.get('before'), q.get('limit')]);
  assert.deepEqual(pages, [
    ['0', '451', '200'],
    ['200', '451', '200'],
    ['400', '451', '200'],
  ]);
});

test('positions are persisted after applying and used by the next client on the same storage', async (t) => {
  const storage = new MemoryStorage();
  const s = setup(t, {}, storage);
  s.client.connect();
  const { conn } = await s.server.synced(0, [
    { id: 'c1', last_seq: 10 },
    { id: 'c2', last_seq: 3 },
  ]);
  conn.event({ channel: 'c1', seq: 11 });
  conn.event({ channel: 'c1', seq: 12 });
  conn.event({ channel: 'c2', seq: 4 });
  await until(() => s.events.length >= 3, 'three events');
  await s.client.close();
  assert.deepEqual(JSON.parse((await storage.get('positions'))!), { c1: 12, c2: 4 });

  const again = setup(t, {}, storage);
  again.client.connect();
  const { conn: c, sync } = await again.server.synced(0, [
    { id: 'c1', last_seq: 14 },
    { id: 'c2', last_seq: 4 },
  ]);
  assert.deepEqual(sync.since, { c1: 12, c2: 4 });
  for (const seq of [11, 12, 13, 14]) c.event({ channel: 'c1', seq });
  await until(() => again.events.length >= 2, 'the two new events');
  await sleep(10);
  assert.deepEqual(seqs(again.events), [13, 14]);
});

test('a stored position past the channel end (another database) restarts from the end', async (t) => {
  const storage = new MemoryStorage();
  await storage.set('positions', JSON.stringify({ c1: 900 }));
  const s = setup(t, {}, storage);
  s.client.connect();
  const { conn, sync } = await s.server.synced(0, [{ id: 'c1', last_seq: 5 }]);
  assert.deepEqual(sync.since, { c1: 5 });
  conn.event({ channel: 'c1', seq: 6 });
  await until(() => s.events.length === 1, 'event 6');
  assert.equal(s.events[0]!.seq, 6);
});

test('a channel joined while connected is delivered from its member_join', async (t) => {
  const s = setup(t);
  s.client.connect();
  const { conn } = await s.server.synced(0, [{ id: 'c1', last_seq: 0 }]);
  conn.send({ t: 'joined', channel: { id: 'c9', name: 'nine', kind: 'public', last_seq: 41, read_seq: 0, unread: 0, mentions: 0 } });
  conn.event({ channel: 'c9', seq: 40, kind: 'member_join', user: 'me', text: null });
  conn.event({ channel: 'c9', seq: 41 });
  await until(() => s.events.length >= 2, 'both');
  assert.deepEqual(seqs(s.events, 'c9'), [40, 41]);
  assert.deepEqual(
    s.client.channels().map((c) => c.id),
    ['c1', 'c9'],
  );
  assert.deepEqual(
    s.client.channel('c9')!.messages.map((m) => m.seq),
    [41],
  );
});
