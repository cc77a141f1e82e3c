// The REST client: bearer token from the callback (again on a 401), JSON error bodies as
// PalaverError with status, the path prefix kept, and the three steps of an upload.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PalaverError } from '../src/index.js';
import { HttpRestClient } from '../src/rest.js';
import { FakeRest, json } from './fakes.js';

function client(rest: FakeRest, tokens: string[] = ['t1', 't2', 't3']) {
  let n = 0;
  return new HttpRestClient({ base: () => 'https://pal.test/chat', token: () => tokens[n++]!, fetch: rest.fetch });
}

test('requests carry the bearer token and keep the path prefix; queries skip undefined', async () => {
  const rest = new FakeRest();
  rest.routes.push(() => json(200, { users: [], next_cursor: null }));
  await client(rest).users('al', undefined);
  const call = rest.calls[0]!;
  assert.equal(call.url.href, 'https://pal.test/chat/v1/users?q=al');
  assert.equal(call.headers.authorization, 'Bearer t1');
});

test('a 401 asks the token callback again and retries once', async () => {
  const rest = new FakeRest();
  let n = 0;
  rest.routes.push(() => (n++ === 0 ? json(401, { code: 'unauthorized', message: 'expired' }) : json(200, { id: 'bob', role: 'member' })));
  const user = await client(rest).user('bob');
  assert.equal(user.id, 'bob');
  assert.deepEqual(
    rest.calls.map((c) => c.headers.authorization),
    ['Bearer t1', 'Bearer t2'],
  );
});

test('error bodies become PalaverError with code, status, retry_after_ms and position', async () => {
  const rest = new FakeRest();
  rest.routes.push((_m, url) =>
    url.pathname.endsWith('/search')
      ? json(400, { code: 'bad_request', message: 'unterminated quote (at character 6)', position: 6 })
      : json(429, { code: 'rate_limited', message: 'slow down' }, { 'retry-after': '2' }),
  );
  const c = client(rest);
  await assert.rejects(c.search('"hello'), (e: unknown) => {
    assert.ok(e instanceof PalaverError);
    assert.deepEqual([e.code, e.status, e.position, e.message], ['bad_request', 400, 6, 'unterminated quote (at character 6)']);
    return true;
  });
  await assert.rejects(c.createChannel('x', 'public'), (e: unknown) => {
    assert.ok(e instanceof PalaverError);
    assert.deepEqual([e.code, e.status, e.retryAfterMs], ['rate_limited', 429, 2000]);
    return true;
  });
  assert.deepEqual(rest.calls[1]!.body, { name: 'x', kind: 'public' });
});

test('a network failure is PalaverError unavailable', async () => {
  const rest = new FakeRest();
  rest.failing = 1;
  await assert.rejects(client(rest).threads(), (e: unknown) => e instanceof PalaverError && e.code === 'unavailable');
});

test('upload: declare, PUT the bytes to the presigned URL with its headers, complete', async () => {
  const rest = new FakeRest();
  rest.routes.push((method, url, body) => {
    if (method === 'POST' && url.pathname === '/chat/v1/files') {
      return json(201, {
        id: 'f1', name: (body as { name: string }).name, content_type: 'image/png', size: 3, url: '/v1/files/f1', channel: 'c1',
        state: 'pending', created_at: 'now', upload_url: 'https://s3.test/bucket/f1?sig=x', upload_method: 'PUT',
        upload_headers: { 'content-type': 'image/png' }, expires_at: 'later',
      });
    }
    if (method === 'PUT' && url.host === 's3.test') return new Response(null, { status: 200 });
    if (method === 'POST' && url.pathname === '/chat/v1/files/f1/complete') {
      return json(200, { id: 'f1', name: 'a.png', content_type: 'image/png', size: 3, url: '/v1/files/f1', channel: 'c1', state: 'ready', created_at: 'now', width: 1, height: 1, thumbnail: true });
    }
    return undefined;
  });
  const ref = await client(rest).upload('c1', new Uint8Array([1, 2, 3]), { name: 'a.png', contentType: 'image/png' });
  assert.deepEqual(ref, { id: 'f1', name: 'a.png', content_type: 'image/png', size: 3, url: '/v1/files/f1', width: 1, height: 1, thumbnail: true });
  assert.deepEqual(rest.calls[0]!.body, { channel: 'c1', name: 'a.png', size: 3, content_type: 'image/png' });
  const put = rest.calls[1]!;
  assert.equal(put.method, 'PUT');
  assert.deepEqual(put.headers, { 'content-type': 'image/png' }, 'no Authorization to the object store');
  assert.deepEqual([...(put.body as Uint8Array)], [1, 2, 3]);
  assert.equal(rest.calls[2]!.url.pathname, '/chat/v1/files/f1/complete');
});

test('fileUrl asks for the link as JSON (redirect=false), of the thumbnail when asked', async () => {
  const rest = new FakeRest();
  rest.routes.push((_m, url) => json(200, { url: `https://s3.test${url.pathname}`, expires_at: 'later' }));
  assert.equal(await client(rest).fileUrl('f1', true), 'https://s3.test/chat/v1/files/f1/thumbnail');
  assert.equal(rest.calls[0]!.url.searchParams.get('redirect'), 'false');
});

test('openDm: one other user is a DM, several a group DM', async () => {
  const rest = new FakeRest();
  rest.routes.push(() => json(200, { id: 'd1', name: 'dm', kind: 'dm', last_seq: 0 }));
  const c = client(rest, ['a', 'b', 'c']);
  await c.openDm(['bob']);
  await c.openDm(['bob', 'carol']);
  assert.deepEqual(
    rest.calls.map((x) => x.body),
    [{ user: 'bob' }, { users: ['bob', 'carol'] }],
  );
});
