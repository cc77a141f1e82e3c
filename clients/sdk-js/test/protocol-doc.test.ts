// The SDK against docs/protocol.md (issue 10): every frame the SDK sends is a C→S frame of the
// doc's "## Frames" table with only the fields the doc lists for it (the server refuses unknown
// fields with bad_request), the server frames the SDK dispatches are the doc's S→C frames, and
// EVENT_KINDS are the doc's event kinds. The doc is read from the repository (docs/ at its root).

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { EVENT_KINDS, SERVER_FRAME_TYPES } from '../src/types.js';
import { setup, until } from './fakes.js';

type Direction = 'C→S' | 'S→C';

interface DocFrame {
  frame: string;
  direction: Direction;
  /** Field names: the first backticked name of each comma/semicolon part, parentheses dropped. */
  fields: Set<string>;
  /** Frame names in the reply column (backticked). */
  replies: string[];
}

/** docs/protocol.md, found by walking up from this file (src or compiled, any depth). */
function readProtocolDoc(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const p = join(dir, 'docs', 'protocol.md');
    if (existsSync(p)) return readFileSync(p, 'utf8');
    dir = dirname(dir);
  }
  throw new Error(`docs/protocol.md not found above ${fileURLToPath(import.meta.url)}`);
}

const withoutParens = (s: string): string => s.replace(/\([^()]*\)/g, '');
const backticked = (s: string): string[] => [...s.matchAll(/`([^`]*)`/g)].map((m) => m[1]!);

/** The "## Frames" table, strictly: the header, the rule, then rows of four cells until a non-row line. */
function parseFrames(doc: string): DocFrame[] {
  const lines = doc.split('\n');
  const at = lines.findIndex((l) => l.trim() === '## Frames');
  assert.ok(at >= 0, 'docs/protocol.md has no "## Frames" section');
  let i = at + 1;
  while (i < lines.length && lines[i]!.trim() === '') i++;
  assert.equal(lines[i]?.trim(), '| frame | direction | fields | reply |', 'the Frames table header changed');
  assert.match(lines[i + 1] ?? '', /^\|(-+\|){4}$/, 'the Frames table has no header rule');
  const rows: DocFrame[] = [];
  for (i += 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
    const line = lines[i]!;
    const cells = line.slice(1, line.trimEnd().endsWith('|') ? line.trimEnd().length - 1 : undefined).split('|').map((c) => c.trim());
    assert.equal(cells.length, 4, `Frames row with ${cells.length} cells: ${line}`);
    const [frameCell, direction, fieldsCell, replyCell] = cells as [string, string, string, string];
    const name = /^`([a-z_]+)`$/.exec(frameCell);
    assert.ok(name, `Frames row without one backticked frame name: ${line}`);
    assert.ok(direction === 'C→S' || direction === 'S→C', `Frames row with direction ${JSON.stringify(direction)}: ${line}`);
    const fields = new Set<string>();
    for (const part of withoutParens(fieldsCell).split(/[,;]/)) {
      const first = /`([a-z_]+)[^`]*`/.exec(part);
      if (first) fields.add(first[1]!);
    }
    rows.push({ frame: name[1]!, direction, fields, replies: backticked(replyCell).filter((r) => /^[a-z_]+$/.test(r)) });
  }
  assert.ok(rows.length >= 15, `the Frames table has only ${rows.length} rows`);
  const seen = new Set<string>();
  for (const r of rows) {
    const key = `${r.frame} ${r.direction}`;
    assert.ok(!seen.has(key), `Frames lists ${key} twice`);
    seen.add(key);
  }
  return rows;
}

/** The "**event kinds** in v1: `a`, `b`, … ." sentence (parenthesised remarks dropped). */
function parseEventKinds(doc: string): string[] {
  const m = /\*\*event kinds\*\* in v1:([^]*?)\n\n/.exec(doc);
  assert.ok(m, 'docs/protocol.md has no "**event kinds** in v1:" paragraph');
  const sentence = withoutParens(m[1]!).split('.')[0]!;
  const kinds = backticked(sentence);
  assert.ok(kinds.length >= 5, `only ${kinds.length} event kinds found: ${kinds.join(', ')}`);
  return kinds;
}

const doc = readProtocolDoc();

/** C→S frames of the doc the SDK deliberately never sends, with the reason. */
const NOT_SENT: Record<string, string> = {
  recv: 'optional: the SDK resumes with sync.since from its own positions, so it never moves the delivered cursor',
};

/** Fields the drive below must have made the SDK send (so the subset check is not vacuous). */
const EXERCISED: Record<string, string[]> = {
  sync: ['since'],
  send: ['channel', 'cmid', 'text', 'thread', 'also_channel', 'files'],
  read: ['channel', 'seq', 'thread'],
  typing: ['channel', 'thread'],
  presence: ['status'],
  presence_sub: ['users'],
  edit: ['channel', 'id', 'text'],
  delete: ['channel', 'id'],
  react: ['channel', 'id', 'emoji'],
  unreact: ['channel', 'id', 'emoji'],
  ping: [],
};

/** Drives the SDK through every request it can make; returns every frame it sent, on all connections. */
async function everyClientFrame(t: { after(fn: () => unknown): void }): Promise<Record<string, any>[]> {
  const s = setup(t);
  const channels = [{ id: 'c1', last_seq: 3, read_seq: 0, unread: 3 }];
  s.client.connect();
  const first = await s.server.synced(0, channels, { heartbeat_ms: 60 });
  const c = s.client;
  const pending: Promise<unknown>[] = [
    c.send('c1', 'plain'),
    c.send('c1', 'reply', { thread: 'm1', alsoChannel: true, files: ['f1'] }),
    c.edit('c1', 'm1', 'edited'),
    c.delete('c1', 'm2'),
    c.react('c1', 'm1', ':+1:'),
    c.unreact('c1', 'm1', ':+1:'),
  ];
  for (const p of pending) p.catch(() => undefined); // rejected with 'closed' at the end
  c.typing('c1');
  c.typing('c1', 'm1');
  c.setPresence('away');
  c.subscribePresence(['u1', 'u2']);
  c.markRead('c1', 2);
  c.markRead('c1', 1, 'm1');
  await first.conn.frame((f) => f.t === 'ping', 'a heartbeat ping');
  await until(() => first.conn.framesOf('unreact').length > 0, 'the outbox transmitting');
  // A reconnect: what the client re-sends by itself (outbox, presence, presence_sub, sync.since).
  first.conn.close(1001);
  const second = await s.server.synced(1, channels);
  await until(() => second.conn.framesOf('presence_sub').length > 0, 'presence_sub re-sent');
  await c.close(); // flushes the batched reads
  return s.server.conns.flatMap((conn) => conn.received);
}

test('the Frames table of docs/protocol.md parses (the parser is strict)', () => {
  const rows = parseFrames(doc);
  const send = rows.find((r) => r.frame === 'send' && r.direction === 'C→S');
  assert.deepEqual([...send!.fields].sort(), ['also_channel', 'channel', 'cmid', 'files', 'text', 'thread']);
  const presence = rows.find((r) => r.frame === 'presence' && r.direction === 'C→S');
  assert.deepEqual([...presence!.fields], ['status'], 'values (`away`, `online`) are not fields');
  assert.deepEqual(rows.find((r) => r.frame === 'ping')!.fields.size, 0);
  assert.throws(() => parseFrames(doc.replace('## Frames', '## Framez')), /no "## Frames"/);
  const cut = doc.split('\n').filter((l) => !/^\| `(edit|delete|react|unreact|hello|ack|event|gap)` \|/.test(l)).join('\n');
  assert.throws(() => parseFrames(cut), /only \d+ rows/);
});

test('every frame the SDK sends is a documented C→S frame with only documented fields', async (t) => {
  const rows = parseFrames(doc);
  const clientFrames = new Map(rows.filter((r) => r.direction === 'C→S').map((r) => [r.frame, r.fields]));
  const sent = await everyClientFrame(t);
  const used = new Map<string, Set<string>>();
  for (const f of sent) {
    const fields = clientFrames.get(f.t);
    assert.ok(fields, `the SDK sent a ${JSON.stringify(f.t)} frame, which docs/protocol.md does not list as C→S: ${JSON.stringify(f)}`);
    assert.equal(typeof f.ref, 'number', `a ${f.t} frame without a numeric ref: ${JSON.stringify(f)}`);
    for (const k of Object.keys(f)) {
      if (k === 't' || k === 'ref') continue;
      assert.ok(fields.has(k), `the SDK's ${f.t} frame has the field ${JSON.stringify(k)}, which docs/protocol.md does not list for C→S ${f.t} (${[...fields].join(', ') || 'none'}); the server would answer bad_request`);
    }
    let u = used.get(f.t);
    if (!u) used.set(f.t, (u = new Set()));
    for (const k of Object.keys(f)) if (k !== 't' && k !== 'ref') u.add(k);
  }
  // The drive reached every request and every optional field.
  assert.deepEqual([...used.keys()].sort(), Object.keys(EXERCISED).sort(), 'the frame types the SDK sent');
  for (const [frame, fields] of Object.entries(EXERCISED)) {
    assert.deepEqual([...used.get(frame)!].sort(), [...fields].sort(), `the fields of the SDK's ${frame} frames`);
  }
  // Every documented C→S frame is one the SDK sends, or deliberately not.
  for (const frame of clientFrames.keys()) {
    assert.ok(frame in EXERCISED || frame in NOT_SENT, `docs/protocol.md lists C→S ${frame}, which the SDK neither sends nor lists in NOT_SENT`);
  }
  for (const frame of Object.keys(NOT_SENT)) {
    assert.ok(clientFrames.has(frame), `NOT_SENT lists ${frame}, which docs/protocol.md no longer lists as C→S`);
    assert.ok(!used.has(frame), `NOT_SENT lists ${frame}, but the SDK sent it`);
  }
});

test('the server frames the SDK dispatches are the S→C frames of docs/protocol.md (and the replies it names)', () => {
  const rows = parseFrames(doc);
  const serverFrames = new Set(rows.filter((r) => r.direction === 'S→C').map((r) => r.frame));
  // A reply named only in the reply column (pong) is a server frame too.
  for (const r of rows) for (const reply of r.replies) serverFrames.add(reply);
  assert.ok(serverFrames.has('pong') && serverFrames.has('hello'), 'pong (a reply) and hello are server frames');
  assert.deepEqual([...SERVER_FRAME_TYPES].sort(), [...serverFrames].sort(), 'SERVER_FRAME_TYPES (the SDK dispatch) vs the S→C frames of docs/protocol.md');
});

test("the event kinds of docs/protocol.md are the SDK's EVENT_KINDS", () => {
  assert.deepEqual([...EVENT_KINDS].sort(), parseEventKinds(doc).sort());
});
