// The session: backoff jitter bounds, what each close code does, the token callback before
// every connect, URL rotation, the heartbeat, and what is re-sent after a reconnect.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Backoff } from '../src/backoff.js';
import { closePolicy } from '../src/session.js';
import { socketUrl } from '../src/transport.js';
import type { ConnectionState, PalaverError } from '../src/index.js';
import { json, setup, sleep, until } from './fakes.js';

const channels = [{ id: 'c1', last_seq: 0 }];

test('full jitter: each delay is in [0, min(max, initial·2^n)), and reset starts over', () => {
  const high = new Backoff({ initialMs: 250, maxMs: 15000 }, () => 0.999999);
  const caps = [250, 500, 1000, 2000, 4000, 8000, 15000, 15000, 15000];
  for (const cap of caps) {
    const d = high.next();
    assert.ok(d < cap && d >= cap - 1, `delay ${d} should be just under ${cap}`);
  }
  high.reset();
  assert.ok(high.next() < 250);
  const low = new Backoff({}, () => 0);
  for (let i = 0; i < 5; i++) assert.equal(low.next(), 0);
  // Real randomness stays within bounds.
  const real = new Backoff({ initialMs: 10, maxMs: 40 });
  for (let i = 0; i < 200; i++) {
    const cap = real.ceiling();
    const d = real.next();
    assert.ok(d >= 0 && d < cap && cap <= 40);
  }
  assert.equal(new Backoff({ initialMs: 500, maxMs: 100 }).maxMs, 500, 'max is never below initial');
});

test('close codes: which move to the next URL and which are client bugs', () => {
  assert.deepEqual(closePolicy(1006, false), { nextUrl: true, clientBug: false }, 'failed connect (401, refused)');
  assert.deepEqual(closePolicy(1001, true), { nextUrl: true, clientBug: false });
  assert.deepEqual(closePolicy(1013, true), { nextUrl: true, clientBug: false });
  for (const code of [1000, 1006, 4008]) assert.deepEqual(closePolicy(code, true), { nextUrl: false, clientBug: false });
  for (const code of [1007, 1009]) assert.deepEqual(closePolicy(code, true), { nextUrl: false, clientBug: true });
});

test('the socket URL keeps a path prefix and carries the token as a query parameter', () => {
  assert.equal(socketUrl('https://x.example/chat/', 'a.b+c'), 'wss://x.example/chat/v1/ws?token=a.b%2Bc');
  assert.equal(socketUrl('http://127.0.0.1:8081', 't'), 'ws://127.0.0.1:8081/v1/ws?token=t');
});

test('a failed connect asks the token callback again and tries the next URL', async (t) => {
  const s = setup(t, { url: ['http://a.test', 'http://b.test'] });
  s.server.refuse = 1; // like HTTP 401 before the upgrade
  s.client.connect();
  const conn = await s.server.conn(0);
  assert.equal(new URL(conn.url).host, 'b.test');
  assert.equal(s.tokenCalls(), 2, 'once per connect');
  assert.equal(conn.token, 'tok2', 'the fresh token is the one used');
});

test('every close code reconnects until close(); 1009 and 1007 also report a client bug', async (t) => {
  const s = setup(t, { url: ['http://a.test', 'http://b.test'] });
  const states: ConnectionState[] = [];
  const resumed: boolean[] = [];
  s.client.on('state', (e) => {
    states.push(e.state);
    if (e.state === 'open') resumed.push(e.resumed);
  });
  s.client.connect();
  const hosts: string[] = [];
  let n = 0;
  for (const code of [1000, 1001, 4008, 1013, 1006, 1009, 1007]) {
    const { conn } = await s.server.synced(n, channels);
    hosts.push(new URL(conn.url).host);
    conn.close(code);
    n++;
  }
  const last = await s.server.synced(n, channels);
  hosts.push(new URL(last.conn.url).host);
  assert.equal(s.tokenCalls(), n + 1);
  // 1001 and 1013 move on to the other pod; the rest come back to the same one.
  assert.deepEqual(hosts, ['a.test', 'a.test', 'b.test', 'b.test', 'a.test', 'a.test', 'a.test', 'a.test']);
  await until(() => s.errors.length === 2, 'two client-bug errors');
  assert.match(s.errors[0]!.message, /1009/);
  assert.match(s.errors[1]!.message, /1007/);
  assert.equal(states[0], 'connecting');
  assert.ok(states.includes('reconnecting'));
  assert.deepEqual(resumed, [false, true, true, true, true, true, true, true]);
  await s.client.close();
  assert.equal(s.client.state, 'closed');
  await sleep(40);
  assert.equal(s.server.conns.length, n + 1, 'no reconnect after close()');
  assert.deepEqual(s.server.conns[n]!.closed, { code: 1000, reason: 'client closed', byClient: true });
});

test('heartbeat: pings every heartbeat/2; a silent link is closed and replaced', async (t) => {
  const s = setup(t);
  s.client.connect();
  const { conn } = await s.server.synced(0, channels, { heartbeat_ms: 60 });
  await sleep(100);
  const pings = conn.framesOf('ping');
  assert.ok(pings.length >= 2 && pings.length <= 4, `${pings.length} pings in 100 ms at a 30 ms period`);
  assert.ok(pings.every((p) => p.ref !== undefined), 'pings carry a ref');
  // The server never answered: after 2 × 60 ms of silence the client gives up on the link.
  const next = await s.server.conn(1, 1000);
  assert.equal(conn.closed?.byClient, true);
  assert.equal(conn.closed?.code, 4000);
  assert.ok(next);
});

test('any frame keeps the link alive', async (t) => {
  const s = setup(t);
  s.client.connect();
  const { conn } = await s.server.synced(0, channels, { heartbeat_ms: 60 });
  for (let i = 0; i < 8; i++) {
    await sleep(25);
    conn.send({ t: 'pong' });
  }
  assert.equal(conn.closed, undefined);
  assert.equal(s.server.conns.length, 1);
});

test('sync is the first frame; every request carries a ref', async (t) => {
  const s = setup(t);
  s.client.subscribePresence(['bob']);
  s.client.connect();
  const { conn } = await s.server.synced(0, channels);
  s.client.typing('c1');
  s.client.setPresence('away');
  s.client.send('c1', 'x').catch(() => undefined); // rejected ('closed') when the test ends
  await conn.frame((f) => f.t === 'send', 'send');
  assert.equal(conn.received[0]!.t, 'sync');
  for (const f of conn.received) assert.notEqual(f.ref, undefined, `${f.t} without ref`);
  const refs = conn.received.map((f) => f.ref);
  assert.equal(new Set(refs).size, refs.length, 'refs are unique');
});

test('presence_sub and away are re-sent after each reconnect; presence frames are kept', async (t) => {
  const s = setup(t);
  s.client.connect();
  const { conn } = await s.server.synced(0, channels);
  s.client.subscribePresence(['bob', 'carol', 'bob']);
  s.client.setPresence('away');
  const sub = await conn.frame((f) => f.t === 'presence_sub', 'presence_sub');
  assert.deepEqual(sub.users, ['bob', 'carol']);
  conn.send({ t: 'presence', user: 'bob', status: 'online', last_seen: '2026-01-01T00:00:00Z' });
  await until(() => s.client.presenceOf('bob') !== undefined, 'bob');
  assert.equal(s.client.presenceOf('bob')!.status, 'online');
  conn.close(1001);
  const { conn: second } = await s.server.synced(1, channels);
  const again = await second.frame((f) => f.t === 'presence_sub', 're-sent presence_sub');
  assert.deepEqual(again.users, ['bob', 'carol']);
  await second.frame((f) => f.t === 'presence' && f.status === 'away', 're-sent away');
});

test('markRead sends one read per channel per second with the highest seq', async (t) => {
  const s = setup(t);
  s.client.connect();
  const { conn } = await s.server.synced(0, [
    { id: 'c1', last_seq: 9, read_seq: 2, unread: 7 },
    { id: 'c2', last_seq: 4 },
  ]);
  s.client.markRead('c1', 5);
  s.client.markRead('c1', 8);
  s.client.markRead('c1', 6);
  s.client.markRead('c2', 4);
  s.client.markRead('c1', 3, 'root1');
  assert.equal(conn.framesOf('read').length, 0, 'batched, not sent at once');
  assert.equal(s.client.channels().find((c) => c.id === 'c1')!.read_seq, 8, 'the local cursor moves at once');
  await sleep(1100);
  const reads = conn.framesOf('read').map(({ ref: _ref, ...r }) => r);
  assert.deepEqual(reads, [
    { t: 'read', channel: 'c1', seq: 8 },
    { t: 'read', channel: 'c2', seq: 4 },
    { t: 'read', channel: 'c1', seq: 3, thread: 'root1' },
  ]);
  assert.equal(s.client.channels().find((c) => c.id === 'c2')!.unread, 0);
});

test('typing is throttled to one per 3 s per channel and thread', async (t) => {
  const s = setup(t);
  s.client.connect();
  const { conn } = await s.server.synced(0, channels);
  for (let i = 0; i < 5; i++) s.client.typing('c1');
  s.client.typing('c1', 'root');
  s.client.typing('c1', 'root');
  await sleep(10);
  assert.deepEqual(
    conn.framesOf('typing').map((f) => f.thread ?? null),
    [null, 'root'],
  );
});

test('typing frames show in the view for ttl_ms', async (t) => {
  const s = setup(t);
  s.client.connect();
  const { conn } = await s.server.synced(0, channels);
  conn.send({ t: 'typing', channel: 'c1', user: 'bob', ttl_ms: 60 });
  conn.send({ t: 'typing', channel: 'c1', thread: 'root', user: 'carol', ttl_ms: 60 });
  await until(() => s.client.threadView('c1', 'root')!.typing.length === 1, 'carol typing');
  assert.deepEqual(s.client.channel('c1')!.typing, ['bob']);
  assert.deepEqual(s.client.threadView('c1', 'root')!.typing, ['carol']);
  await until(() => s.client.channel('c1')!.typing.length === 0, 'expiry', 500);
  await until(() => s.client.threadView('c1', 'root')!.typing.length === 0, 'expiry in the thread', 500);
});

test('channel counts follow live events and notifications', async (t) => {
  const s = setup(t);
  const lists: number[] = [];
  s.client.on('channels', (l) => lists.push(l.length));
  s.client.connect();
  const { conn } = await s.server.synced(0, [{ id: 'c1', last_seq: 3, read_seq: 3 }]);
  conn.event({ channel: 'c1', seq: 4, user: 'bob' });
  conn.event({ channel: 'c1', seq: 5, user: 'me' });
  conn.event({ channel: 'c1', seq: 6, user: 'bob', thread: 'm4' });
  conn.send({ t: 'notification', id: 1, kind: 'mention', channel: 'c1', seq: 6, ts: '2026-01-01T00:00:06Z' });
  await until(() => s.client.channels()[0]!.mentions === 1, 'mention');
  assert.deepEqual(
    (({ last_seq, unread, mentions }) => ({ last_seq, unread, mentions }))(s.client.channels()[0]!),
    { last_seq: 6, unread: 2, mentions: 1 },
  );
  assert.ok(lists.length >= 1);
  conn.event({ channel: 'c1', seq: 7, kind: 'member_leave', user: 'me', text: null });
  await until(() => s.client.channels().length === 0, 'left');
});

test('a read held for its batch when the connection drops is kept over the next hello, and sent', async (t) => {
  const s = setup(t);
  s.client.connect();
  const before = { id: 'c1', last_seq: 9, read_seq: 2, unread: 7, mentions: 1 };
  const { conn } = await s.server.synced(0, [before]);
  s.client.markRead('c1', 9);
  conn.close(1006); // before the one-second batch is sent
  const counts = () => (({ read_seq, unread, mentions }) => ({ read_seq, unread, mentions }))(s.client.channels()[0]!);
  // The new hello's counts are from before the read: the local read is applied over them.
  const { conn: second } = await s.server.synced(1, [before]);
  assert.deepEqual(counts(), { read_seq: 9, unread: 0, mentions: 0 });
  await second.frame((f) => f.t === 'read' && f.channel === 'c1' && f.seq === 9, 'the held read, sent');
  // Sent, but the connection dropped before the server took it: still re-applied and re-sent.
  second.close(1006);
  const { conn: third } = await s.server.synced(2, [before]);
  assert.deepEqual(counts(), { read_seq: 9, unread: 0, mentions: 0 });
  await third.frame((f) => f.t === 'read' && f.seq === 9, 'the read, sent again');
  // Once the server's read_seq reached it, the server's counts are the truth again.
  third.close(1006);
  await s.server.synced(3, [{ id: 'c1', last_seq: 9, read_seq: 9 }]);
  s.server.conns[3]!.close(1006);
  const { conn: fifth } = await s.server.synced(4, [{ id: 'c1', last_seq: 12, read_seq: 5, unread: 3 }]);
  assert.deepEqual(counts(), { read_seq: 5, unread: 3, mentions: 0 });
  await sleep(1100);
  assert.equal(fifth.framesOf('read').length, 0, 'nothing re-sent once the server had it');
});

test('notifications after sync do not count again what hello\'s mentions counted', async (t) => {
  const s = setup(t);
  const seen: number[] = [];
  s.client.on('notification', (n) => seen.push(n.seq));
  s.client.connect();
  const { conn } = await s.server.synced(0, [{ id: 'c1', last_seq: 10, read_seq: 4, unread: 6, mentions: 2 }]);
  const mentions = () => s.client.channels()[0]!.mentions;
  // The unread entries, sent after the first sync: already in hello's count.
  conn.send({ t: 'notification', id: 2, kind: 'mention', channel: 'c1', seq: 8, ts: '2026-01-01T00:00:08Z' });
  conn.send({ t: 'notification', id: 1, kind: 'mention', channel: 'c1', seq: 6, ts: '2026-01-01T00:00:06Z' });
  await until(() => seen.length === 2, 'the first notifications');
  assert.equal(mentions(), 2);
  // A live one (after hello's last_seq) adds to it, once.
  conn.event({ channel: 'c1', seq: 11, user: 'bob', text: '@here' });
  conn.send({ t: 'notification', id: 3, kind: 'mention', channel: 'c1', seq: 11, ts: '2026-01-01T00:00:11Z' });
  conn.send({ t: 'notification', id: 3, kind: 'mention', channel: 'c1', seq: 11, ts: '2026-01-01T00:00:11Z' });
  await until(() => seen.length === 4, 'the live notification');
  assert.equal(mentions(), 3);
  s.client.markRead('c1', 11);
  assert.equal(mentions(), 0, 'a read covering them clears them');
});

test('a message from a typing user takes them off the typing list at once', async (t) => {
  const s = setup(t);
  s.client.connect();
  const { conn } = await s.server.synced(0, channels);
  conn.send({ t: 'typing', channel: 'c1', user: 'bob', ttl_ms: 60000 });
  conn.send({ t: 'typing', channel: 'c1', user: 'dave', ttl_ms: 60000 });
  conn.send({ t: 'typing', channel: 'c1', thread: 'root', user: 'carol', ttl_ms: 60000 });
  conn.send({ t: 'typing', channel: 'c1', thread: 'root', user: 'bob', ttl_ms: 60000 });
  await until(() => s.client.threadView('c1', 'root')!.typing.length === 2, 'typing in the thread');
  assert.deepEqual(s.client.channel('c1')!.typing, ['bob', 'dave']);
  let changes = 0;
  s.client.on('change', ({ channel }) => channel === 'c1' && changes++);
  conn.event({ channel: 'c1', seq: 1, user: 'bob' });
  await until(() => s.events.length === 1, 'bob\'s message');
  await until(() => changes > 0, 'change');
  assert.deepEqual(s.client.channel('c1')!.typing, ['dave'], 'bob sent in the channel');
  assert.deepEqual(s.client.threadView('c1', 'root')!.typing, ['carol', 'bob'], 'not in the thread');
  changes = 0;
  conn.event({ channel: 'c1', seq: 2, user: 'carol', thread: 'root' });
  await until(() => s.events.length === 2 && changes > 0, 'carol\'s reply');
  assert.deepEqual(s.client.threadView('c1', 'root')!.typing, ['bob']);
  assert.deepEqual(s.client.channel('c1')!.typing, ['dave']);
});

test('two failed connects in a row probe REST once; a 401 there emits unauthorized, reconnecting goes on', async (t) => {
  const s = setup(t);
  let status = 401;
  s.rest.routes.push((method, url) =>
    method === 'GET' && url.pathname === '/chat/v1/channels'
      ? json(status, status === 401 ? { code: 'unauthorized', message: 'token expired' } : { channels: [], next_cursor: null })
      : undefined,
  );
  const probes = () => s.rest.calls.filter((c) => c.url.pathname === '/chat/v1/channels');
  const refused: PalaverError[] = [];
  s.client.on('unauthorized', (e) => refused.push(e));
  s.server.refuse = 2;
  s.client.connect();
  await until(() => refused.length === 1, 'unauthorized');
  assert.equal(refused[0]!.code, 'unauthorized');
  assert.equal(refused[0]!.status, 401);
  assert.equal(refused[0]!.message, 'token expired');
  assert.equal(probes().length, 1);
  assert.match(probes()[0]!.headers.authorization!, /^Bearer tok\d+$/, 'the token callback\'s token');
  // Still reconnecting, with a fresh token each time.
  const { conn } = await s.server.synced(0, channels);
  assert.equal(conn.token, `tok${s.tokenCalls()}`);
  // One failure after an open connection: no probe.
  s.server.refuse = 1;
  conn.close(1006);
  const { conn: next } = await s.server.synced(1, channels);
  assert.equal(probes().length, 1);
  // A token the server accepts: the probe says nothing.
  status = 200;
  s.server.refuse = 2;
  next.close(1006);
  await s.server.synced(2, channels);
  await until(() => probes().length === 2, 'the second probe');
  await sleep(20);
  assert.equal(refused.length, 1);
  assert.equal(s.errors.length, 0);
});
