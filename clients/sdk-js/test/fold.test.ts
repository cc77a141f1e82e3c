// The fold rule: live events, replayed/history renderings and any mix of them converge to
// what REST history renders; changes at or below a message's state_seq are not applied again.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ChannelFold, messageOf } from '../src/fold.js';
import type { ChannelEvent, ChannelInfo } from '../src/index.js';
import { rendered, setup, ts, until } from './fakes.js';

const info: ChannelInfo = { id: 'c1', name: 'general', kind: 'public', last_seq: 0, read_seq: 0, unread: 0, mentions: 0 };

function live(seq: number, fields: Partial<ChannelEvent>): ChannelEvent {
  return { channel: 'c1', seq, kind: 'message', id: `e${seq}`, user: 'alice', cmid: null, text: null, ts: ts(seq), thread: null, ...fields };
}

/** The live stream of a channel, seqs 1..15. */
const stream: ChannelEvent[] = [
  live(1, { id: 'm1', text: 'hello', cmid: 'k1' }),
  live(2, { id: 'm2', user: 'bob', text: 'root' }),
  live(3, { id: 'r3', text: 'first reply', thread: 'm2' }),
  live(4, { kind: 'reaction_add', user: 'bob', target: 'm1', emoji: '👍' }),
  live(5, { kind: 'reaction_add', user: 'me', target: 'm1', emoji: '👍' }),
  live(6, { kind: 'reaction_add', user: 'alice', target: 'm1', emoji: ':tada:' }),
  live(7, { kind: 'edit', target: 'm1', text: 'hello!', edited_at: ts(7) }),
  live(8, { id: 'r8', user: 'carol', text: 'also in channel', thread: 'm2', also_channel: true }),
  live(9, { id: 'r9', text: 'again', thread: 'm2' }),
  live(10, { kind: 'reaction_add', user: 'carol', target: 'r9', emoji: '👀' }),
  live(11, { id: 'm11', user: 'bob', text: 'oops' }),
  live(12, { kind: 'delete', user: 'bob', target: 'm11' }),
  live(13, { kind: 'edit', target: 'r3', text: 'first reply, edited', edited_at: ts(13) }),
  live(14, { kind: 'reaction_remove', user: 'alice', target: 'm1', emoji: ':tada:' }),
  live(15, { kind: 'member_join', user: 'dave' }),
];

/** What GET /v1/channels/c1/events renders for the same channel after seq 15 (viewer "me"),
 *  written from the documented shapes: messages with their current state, changes at their seqs. */
const history: ChannelEvent[] = [
  rendered({
    channel: 'c1', seq: 1, id: 'm1', user: 'alice', cmid: 'k1', text: 'hello!', edited_at: ts(7), state_seq: 14,
    reactions: [{ emoji: '👍', count: 2, me: true, users: ['bob', 'me'] }],
  }),
  rendered({
    channel: 'c1', seq: 2, id: 'm2', user: 'bob', text: 'root', state_seq: 9,
    reply_count: 3, last_reply_ts: ts(9), reply_users: ['alice', 'carol'], reply_users_count: 2,
  }),
  rendered({ channel: 'c1', seq: 3, id: 'r3', user: 'alice', text: 'first reply, edited', thread: 'm2', edited_at: ts(13), state_seq: 13 }),
  ...stream.slice(3, 7),
  rendered({ channel: 'c1', seq: 8, id: 'r8', user: 'carol', text: 'also in channel', thread: 'm2', also_channel: true }),
  rendered({
    channel: 'c1', seq: 9, id: 'r9', user: 'alice', text: 'again', thread: 'm2', state_seq: 10,
    reactions: [{ emoji: '👀', count: 1, me: false, users: ['carol'] }],
  }),
  stream[9]!,
  rendered({ channel: 'c1', seq: 11, id: 'm11', user: 'bob', text: null, deleted: true, state_seq: 12 }),
  ...stream.slice(11),
];

const byId = (id: string) => messageOf(history.find((e) => e.id === id)!);
const expectedChannel = () => ['m1', 'm2', 'r8', 'm11'].map(byId);
const expectedThread = () => ['r3', 'r8', 'r9'].map(byId);

function fold(): ChannelFold {
  return new ChannelFold(info, () => 'me', 1);
}

function assertConverged(f: ChannelFold, how: string): void {
  assert.deepEqual(f.view(0).messages, expectedChannel(), `${how}: channel`);
  const thread = f.thread('m2', 0);
  assert.deepEqual(thread.root, byId('m2'), `${how}: root summary`);
  assert.deepEqual(thread.replies, expectedThread(), `${how}: thread`);
}

test('folding the live stream gives exactly what history renders', () => {
  const f = fold();
  for (const ev of stream) f.apply(ev);
  assertConverged(f, 'live');
});

test('folding the history page gives the same, and a replay of the live stream changes nothing', () => {
  const f = fold();
  for (const ev of history) f.apply(ev);
  assertConverged(f, 'history');
  const before = f.view(0);
  for (const ev of stream) assert.equal(f.apply(ev).changed, false, `seq ${ev.seq} applied twice`);
  assert.equal(f.view(0), before, 'the view object is kept when nothing changed');
  assertConverged(f, 'history + replay');
});

test('any mix of live events and renderings converges', () => {
  for (let cut = 0; cut <= stream.length; cut++) {
    const f = fold();
    for (const ev of stream.slice(0, cut)) f.apply(ev);
    for (const ev of history) f.apply(ev);
    for (const ev of stream.slice(cut)) f.apply(ev);
    assertConverged(f, `live up to ${cut}, then history, then the rest live`);
  }
});

test('changes at or below state_seq are skipped; later ones apply, whatever order they came in', () => {
  const f = fold();
  // m1 rendered as of seq 7 (edited, three reactions), as a replay would send it.
  f.apply(
    rendered({
      channel: 'c1', seq: 1, id: 'm1', user: 'alice', cmid: 'k1', text: 'hello!', edited_at: ts(7), state_seq: 7,
      reactions: [
        { emoji: '👍', count: 2, me: true, users: ['bob', 'me'] },
        { emoji: ':tada:', count: 1, me: false, users: ['alice'] },
      ],
    }),
  );
  // Older changes arriving after it (a late live delivery of seqs 4..7): all already in its state.
  for (const ev of [stream[6]!, stream[3]!, stream[5]!, stream[4]!]) assert.equal(f.apply(ev).changed, false);
  assert.equal(f.get('m1')!.reactions.length, 2);
  // A newer one applies and moves state_seq.
  assert.equal(f.apply(stream[13]!).changed, true);
  assert.equal(f.get('m1')!.state_seq, 14);
  assert.deepEqual(f.get('m1'), byId('m1'));
  // An edit older than the state cannot resurrect an old text.
  f.apply(live(5, { kind: 'edit', target: 'm1', text: 'stale', edited_at: ts(5) }));
  assert.equal(f.get('m1')!.text, 'hello!');
  // A delete wins over everything before it and purges text, reactions and files.
  f.apply(live(20, { kind: 'delete', user: 'alice', target: 'm1' }));
  const m = f.get('m1')!;
  assert.deepEqual([m.text, m.deleted, m.reactions, m.files, m.state_seq], [null, true, [], undefined, 20]);
});

test('a reply counts into its root only above the root state_seq', () => {
  const f = fold();
  f.apply(rendered({ channel: 'c1', seq: 2, id: 'm2', user: 'bob', state_seq: 3, reply_count: 1, last_reply_ts: ts(3), reply_users: ['alice'], reply_users_count: 1 }));
  f.apply(live(3, { id: 'r3', thread: 'm2' }));
  assert.equal(f.get('m2')!.reply_count, 1, 'the rendered root already counts reply 3');
  f.apply(live(4, { id: 'r4', thread: 'm2', user: 'alice' }));
  f.apply(live(5, { id: 'r5', thread: 'm2', user: 'zed' }));
  const root = f.get('m2')!;
  assert.deepEqual(
    [root.reply_count, root.reply_users, root.reply_users_count, root.last_reply_ts, root.state_seq],
    [3, ['alice', 'zed'], 2, ts(5), 5],
  );
});

test('what a summary cannot tell is flagged for a re-render', () => {
  const f = fold();
  const repliers = Array.from({ length: 10 }, (_, i) => `u${i}`);
  f.apply(rendered({ channel: 'c1', seq: 1, id: 'm1', reply_count: 12, reply_users: repliers, reply_users_count: 11, state_seq: 13 }));
  assert.deepEqual(f.apply(live(14, { id: 'r14', thread: 'm1', user: 'u0' })).inexact, [], 'a named replier is not new');
  assert.deepEqual(f.apply(live(15, { id: 'r15', thread: 'm1', user: 'unnamed' })).inexact, ['m1'], 'the 11th may or may not be new');
  f.apply(rendered({ channel: 'c1', seq: 2, id: 'm2', reactions: [{ emoji: 'x', count: 7, me: false, users: ['a', 'b', 'c', 'd', 'e'] }] }));
  assert.deepEqual(f.apply(live(16, { kind: 'reaction_remove', target: 'm2', emoji: 'x', user: 'f' })).inexact, [], 'an unnamed reactor leaves');
  assert.deepEqual(f.apply(live(17, { kind: 'reaction_remove', target: 'm2', emoji: 'x', user: 'c' })).inexact, ['m2'], 'the sixth would now be named');
});

test('loadOlder pages history before the view and merges it by the fold rule', async (t) => {
  const s = setup(t);
  for (const ev of history) s.rest.put(ev);
  s.client.connect();
  // The client starts at the channel's end (15): the view is empty, older history is REST's.
  const { conn } = await s.server.synced(0, [{ id: 'c1', last_seq: 15 }]);
  await until(() => s.client.channel('c1') !== undefined, 'the channel');
  assert.deepEqual(s.client.channel('c1')!.messages, []);
  assert.equal(s.client.channel('c1')!.hasOlder, true);
  assert.equal(await s.client.loadOlder('c1', 10), true);
  assert.deepEqual(s.rest.historyCalls()[0]!.get('before'), '16');
  assert.equal(await s.client.loadOlder('c1', 10), false);
  assert.deepEqual(s.rest.historyCalls()[1]!.get('before'), '6');
  assert.deepEqual(s.client.channel('c1')!.messages, expectedChannel());
  // Live from there on.
  conn.event({ channel: 'c1', seq: 16, kind: 'reaction_add', id: 'e16', user: 'me', target: 'm11', emoji: 'x' });
  conn.event({ channel: 'c1', seq: 17, kind: 'edit', id: 'e17', user: 'alice', target: 'm1', text: 'hi', edited_at: ts(17) });
  await until(() => s.events.length === 2, 'two live changes');
  const m1 = s.client.channel('c1')!.messages[0]!;
  assert.deepEqual([m1.text, m1.state_seq], ['hi', 17]);
});

test('thread() loads every page of a thread and keeps it live', async (t) => {
  const s = setup(t);
  s.rest.routes.push((method, url) => {
    if (method !== 'GET' || url.pathname !== '/chat/v1/channels/c1/threads/m2') return undefined;
    const page2 = url.searchParams.get('cursor') === 'p2';
    return new Response(
      JSON.stringify({
        root: page2 ? null : history[1],
        replies: page2 ? [history[8]] : [history[2], history[7]],
        next_cursor: page2 ? null : 'p2',
      }),
      { status: 200 },
    );
  });
  s.client.connect();
  const { conn } = await s.server.synced(0, [{ id: 'c1', last_seq: 15 }]);
  const view = await s.client.thread('c1', 'm2');
  assert.deepEqual(view.root, byId('m2'));
  assert.deepEqual(view.replies, expectedThread());
  conn.event({ channel: 'c1', seq: 16, id: 'r16', user: 'dave', text: 'late', thread: 'm2' });
  await until(() => s.events.length === 1, 'the reply');
  const after = s.client.threadView('c1', 'm2')!;
  assert.deepEqual(
    after.replies.map((r) => r.id),
    ['r3', 'r8', 'r9', 'r16'],
  );
  assert.deepEqual([after.root!.reply_count, after.root!.reply_users_count, after.root!.state_seq], [4, 3, 16]);
  assert.deepEqual(s.client.channel('c1')!.messages, [], 'the thread is older than the channel view, which starts at 16');
});

test('an inexact summary is re-rendered from history', async (t) => {
  const s = setup(t);
  s.client.connect();
  const { conn } = await s.server.synced(0, [{ id: 'c1', last_seq: 0 }]);
  conn.event({ channel: 'c1', seq: 1, id: 'm1', user: 'bob' });
  for (const [seq, user] of [[2, 'a'], [3, 'b'], [4, 'c'], [5, 'd'], [6, 'e'], [7, 'f']] as const) {
    conn.event({ channel: 'c1', seq, kind: 'reaction_add', id: `e${seq}`, user, target: 'm1', emoji: 'x' });
  }
  const fresh = rendered({ channel: 'c1', seq: 1, id: 'm1', user: 'bob', state_seq: 8, reactions: [{ emoji: 'x', count: 5, me: false, users: ['a', 'b', 'd', 'e', 'f'] }] });
  s.rest.put(fresh);
  conn.event({ channel: 'c1', seq: 8, kind: 'reaction_remove', id: 'e8', user: 'c', target: 'm1', emoji: 'x' });
  await until(() => s.client.channel('c1')?.messages[0]?.reactions[0]?.users.length === 5, 'the re-rendered reactors', 3000);
  assert.deepEqual(s.client.channel('c1')!.messages[0], messageOf(fresh));
  const q = s.rest.historyCalls()[0]!;
  assert.deepEqual([q.get('after'), q.get('limit')], ['0', '1']);
});
