// Browser test of the web app (issue 10, scope 4): Debian's Chromium driven by playwright-core,
// two people signed in through the UI on two palaverd pods serving the built app.
//
// They chat, reply in a thread, react, edit, delete, see each other typing and online, open a
// DM; one pod is killed while the other person goes on writing, and once it is back its user sees
// everything in order (and what they sent while cut off arrives); then a keyboard-only pass
// (switch channel, send, reply in a thread, react). Screenshots of the main views go to
// SCREENSHOT_DIR.
//
// Environment: WEB_URL_A, WEB_URL_B (the pods' base URLs, e.g. http://127.0.0.1:8081/),
// WORKSPACE, SCREENSHOT_DIR (optional), CHROMIUM_BIN (default /usr/bin/chromium).
//
// The pod is killed by whoever runs this (e2e/tests/web.rs), through a JSON-lines handshake:
// this script prints {"step":"kill-b"} on stdout and waits for {"done":"kill-b"} on stdin (the
// same for "restart-b"). Progress goes to stderr. The last line on stdout is
// "N passed, N failed"; the exit code is non-zero on any failure.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { deflateSync, crc32 } from 'node:zlib';
import { chromium } from 'playwright-core';

/** How long any one condition may take to become true. */
const T = 15_000;
/** Messages of the history step: more than one page (the app loads 50 at a time). */
const HISTORY = 70;
/** Reconnecting after a pod restart goes through the SDK's backoff (up to 15 s by default). */
const RECONNECT_T = 45_000;

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const URL_A = env('WEB_URL_A');
const URL_B = env('WEB_URL_B');
const WORKSPACE = env('WORKSPACE');
const SHOTS = process.env.SCREENSHOT_DIR;
const CHROMIUM = env('CHROMIUM_BIN', '/usr/bin/chromium');

const log = (...a) => console.error('[browser]', ...a);

// --- the orchestrator handshake --------------------------------------------------------------

const stdinLines = [];
const stdinWaiters = [];
createInterface({ input: process.stdin }).on('line', (line) => {
  const w = stdinWaiters.shift();
  if (w) w(line);
  else stdinLines.push(line);
});
const nextStdinLine = () => (stdinLines.length > 0 ? Promise.resolve(stdinLines.shift()) : new Promise((r) => stdinWaiters.push(r)));

/** Asks the orchestrator to do `step` and waits until it says it is done. */
async function orchestrate(step) {
  process.stdout.write(`${JSON.stringify({ step })}\n`);
  for (;;) {
    const line = await withTimeout(nextStdinLine(), 60_000, `the orchestrator to answer ${step}`);
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      continue;
    }
    if (msg.done === step) return;
    if (msg.error) throw new Error(`orchestrator could not ${step}: ${msg.error}`);
  }
}

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms)))]).finally(
    () => clearTimeout(t),
  );
}

// --- helpers ---------------------------------------------------------------------------------

/** Polls `check` until it returns true (a condition, not a fixed sleep). */
async function until(what, check, timeout = T) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? ` (${last.message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function shot(page, name) {
  if (!SHOTS) return;
  // Transitions finished, so a drawer or banner is where it ends up, not halfway.
  await page.screenshot({ path: join(SHOTS, `${name}.png`), animations: 'disabled' });
  log(`screenshot ${name}.png`);
}

/** Messages of the open channel (`.main`) or the thread panel (`.thread-panel`). */
const messages = (page, where = '.main') => page.locator(`${where} .log article.message`);
const message = (page, text, where = '.main') => messages(page, where).filter({ hasText: text });

/** The text of every message of the open channel, in order. */
const texts = (page) => page.locator('.main .log article.message .text').allInnerTexts();

/** Hovers a message so that its toolbar shows, then clicks one of its actions. */
async function action(page, msg, label) {
  await msg.hover();
  await msg.getByRole('button', { name: label, exact: true }).click();
}

async function send(page, text, composer = '#composer-channel') {
  const box = page.locator(composer);
  await box.fill(text);
  await box.press('Enter');
  await message(page, text, composer === '#composer-channel' ? '.main' : '.thread-panel').waitFor({ timeout: T });
}

async function channelTitle(page) {
  return (await page.locator('#channel-title').innerText()).trim();
}

/** A small PNG (the server checks that an image is one, and makes its thumbnail): a gradient. */
function png(width = 160, height = 96) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bits per sample
  header[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3); // filter byte 0, then the pixels
    for (let x = 0; x < width; x++) row.set([74 + x / 2, 91 + y, 212], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// --- the people ------------------------------------------------------------------------------

/** Console errors of both pages. `tolerated` is what the browser itself reports during a step
 *  that provokes it (refused connections while a pod is down, the rate limit of a burst): the
 *  point of that step, not a bug. */
const consoleErrors = [];
let tolerated = null;
const POD_DOWN = /WebSocket connection to|Failed to load resource|ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE/;
const RATE_LIMITED = /status of 429/;

async function person(browser, who, base) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (tolerated?.test(m.text())) return;
    consoleErrors.push(`${who}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${who}: uncaught ${e.message}`));
  await page.goto(base);
  return { who, page, context };
}

async function signIn({ page }, user, name) {
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Display name').fill(name);
  const select = page.getByLabel('Workspace');
  if ((await select.count()) > 0) await select.selectOption(WORKSPACE);
  else assert.match(await page.locator('.signin-card').innerText(), new RegExp(WORKSPACE));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await until('#general to open', async () => (await channelTitle(page)) === '#general');
  await until('the connection to be up', async () => (await page.locator('.banner').getAttribute('data-state')) === 'open');
}

// --- the steps -------------------------------------------------------------------------------

const results = [];
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false, error: e });
    log(`FAIL ${name}: ${e.stack ?? e}`);
    throw e;
  }
}

async function main() {
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  let alice;
  let bob;
  let carol;
  try {
    alice = await person(browser, 'alice', URL_A);
    bob = await person(browser, 'bob', URL_B);
    const a = alice.page;
    const b = bob.page;

    await step('sign-in page offers the development sign-in, and refuses a pasted non-token', async () => {
      await a.getByLabel('User name').waitFor({ timeout: T });
      await shot(a, '01-sign-in');
      await a.getByText('Sign in with a token').click();
      await a.getByLabel('Token (JWT)').fill('not-a-token');
      await a.getByRole('button', { name: 'Use this token' }).click();
      await a.getByRole('alert').filter({ hasText: 'not a token' }).waitFor({ timeout: T });
    });

    await step('both sign in through the UI on their pods and land in #general', async () => {
      await signIn(alice, 'alice', 'Alice');
      await signIn(bob, 'bob', 'Bob');
    });

    await step('they chat across pods, see each other typing and online', async () => {
      await send(a, 'Hello from Alice');
      await message(b, 'Hello from Alice').waitFor({ timeout: T });
      await message(b, 'Hello from Alice').locator('.presence[data-presence="online"]').first().waitFor({ timeout: T });
      // Display names, not ids.
      assert.equal((await message(b, 'Hello from Alice').locator('.author').innerText()).trim(), 'Alice');

      const typing = a.locator('.main .typing');
      await b.locator('#composer-channel').fill('Hi Alice, Bob here');
      await until('"Bob is typing…" for Alice', async () => (await typing.innerText()).includes('Bob is typing'));
      await b.locator('#composer-channel').press('Enter');
      await message(a, 'Hi Alice, Bob here').waitFor({ timeout: T });
      // His message ends the notice at once (not after its ttl).
      await until('the typing notice to end with the message', async () => (await typing.innerText()).trim() === '');
      await message(a, 'Hi Alice, Bob here').locator('.presence[data-presence="online"]').first().waitFor({ timeout: T });
      await send(b, 'I am writing someth');
      await message(a, 'I am writing someth').waitFor({ timeout: T });
    });

    await step('a reply in a thread, also sent to the channel', async () => {
      await action(a, message(a, 'Hi Alice, Bob here'), 'Reply in thread');
      await a.locator('.thread-panel').waitFor({ timeout: T });
      await send(a, 'A reply in the thread', '#composer-thread');
      await a.locator('.thread-panel').getByLabel(/Also send to/).check();
      await send(a, 'Also in the channel', '#composer-thread');
      await shot(a, '03-thread');
      // Bob sees the summary on his message, the also-sent reply in the channel, and the thread.
      await until('the reply count on Bob\'s message', async () =>
        /2 replies/.test(await message(b, 'Hi Alice, Bob here').locator('.thread-summary').innerText()),
      );
      await message(b, 'Also in the channel').waitFor({ timeout: T });
      await message(b, 'Hi Alice, Bob here').locator('.thread-summary').click();
      await message(b, 'A reply in the thread', '.thread-panel').waitFor({ timeout: T });
      await b.getByRole('button', { name: 'Close thread' }).click();
      await a.getByRole('button', { name: 'Close thread' }).click();
    });

    await step('reactions: add from the picker, join with a click, counts on both sides', async () => {
      await action(b, message(b, 'Hello from Alice'), 'Add reaction');
      await shot(b, '04-emoji-picker');
      await b.locator('.emoji-picker').getByRole('button', { name: 'party' }).click();
      const chipA = message(a, 'Hello from Alice').locator('.reaction', { hasText: '🎉' });
      await until('🎉 1 for Alice', async () => (await chipA.innerText()).includes('1'));
      await chipA.click();
      await until('🎉 2 for Bob', async () =>
        (await message(b, 'Hello from Alice').locator('.reaction', { hasText: '🎉' }).innerText()).includes('2'),
      );
      assert.equal(await chipA.getAttribute('aria-pressed'), 'true');
      // A short code typed into the picker.
      await action(a, message(a, 'I am writing someth'), 'Add reaction');
      await a.getByLabel('Emoji short code').fill('shipit');
      await a.getByLabel('Emoji short code').press('Enter');
      await message(b, 'I am writing someth').locator('.reaction', { hasText: ':shipit:' }).waitFor({ timeout: T });
    });

    await step('edit shows the new text and "(edited)" to the other', async () => {
      await action(a, message(a, 'Hello from Alice'), 'Edit message');
      const box = a.getByRole('textbox', { name: 'Edit message' });
      await box.fill('Hello from Alice, edited');
      await box.press('Enter');
      await message(b, 'Hello from Alice, edited').locator('.edited').waitFor({ timeout: T });
    });

    await step('delete (after confirming) leaves a tombstone for the other', async () => {
      await send(a, 'This will be deleted');
      await message(b, 'This will be deleted').waitFor({ timeout: T });
      const before = await messages(b).count();
      await action(a, message(a, 'This will be deleted'), 'Delete message');
      await a.getByRole('dialog', { name: 'Delete message?' }).getByRole('button', { name: 'Delete', exact: true }).click();
      await until('the tombstone for Bob', async () => (await message(b, 'This will be deleted').count()) === 0);
      assert.equal(await messages(b).count(), before, 'the deleted message keeps its place');
      await b.locator('.main .tombstone', { hasText: 'message deleted' }).first().waitFor({ timeout: T });
    });

    await step('an image attachment shows its thumbnail', async () => {
      await a.locator('.main .composer input[type=file]').setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: png() });
      await until('the upload to finish', async () => (await a.locator('.main .uploads li').innerText()).includes('dot.png') && !(await a.locator('.main .uploads li').innerText()).includes('uploading'));
      await a.locator('#composer-channel').fill('A picture');
      await a.locator('#composer-channel').press('Enter');
      await message(b, 'A picture').locator('.attachment img').waitFor({ timeout: T });
      await until('the thumbnail to load', () =>
        message(b, 'A picture').locator('.attachment img').evaluate((img) => img.complete && img.naturalWidth > 0),
      );
    });

    await step('a DM: opened from the people picker, unread badge on the other side', async () => {
      await a.getByRole('button', { name: 'New direct message' }).click();
      await a.getByLabel('Find people').fill('bo');
      await a.getByRole('checkbox', { name: /Bob/ }).check();
      await a.getByRole('button', { name: 'Open conversation' }).click();
      await until('the DM with Bob to open', async () => (await channelTitle(a)) === 'Bob');
      await send(a, 'psst, a direct message');
      const dm = b.locator('.sidebar button.channel-item', { hasText: 'Alice' });
      await until('the DM in Bob\'s sidebar with a badge', async () => (await dm.locator('.badge').innerText()).trim() === '1');
      await dm.click();
      await message(b, 'psst, a direct message').waitFor({ timeout: T });
      await until('the badge to clear', async () => (await dm.locator('.badge').count()) === 0);
      await b.locator('.sidebar button.channel-item', { hasText: 'general' }).click();
      await a.locator('.sidebar button.channel-item', { hasText: 'general' }).click();
    });

    await step('notifications: a mention while away waits in the inbox, and opening it marks it read (token hand-off)', async () => {
      // Carol exists (her first token joins her to the default channels) but has no connection.
      const minted = await fetch(new URL('v1/dev/token', URL_A), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ workspace: WORKSPACE, user: 'carol', name: 'Carol' }),
      });
      assert.equal(minted.status, 200, await minted.clone().text());
      const { token } = await minted.json();
      const api = (path) => fetch(new URL(path, URL_A), { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json());
      await api('v1/channels');
      await a.locator('.sidebar button.channel-item', { hasText: 'random' }).click();
      await send(a, '@carol have a look at #general');
      await a.locator('.sidebar button.channel-item', { hasText: 'general' }).click();
      // The inbox is written by the consumers from the event log, typically within a second.
      await until('the inbox entry', async () => (await api('v1/notifications')).notifications.length === 1);

      // Signed in the way a deployment's own sign-in hands over: ?token= in the URL, which the
      // app takes and removes from the address bar.
      carol = await person(browser, 'carol', `${URL_A}?token=${encodeURIComponent(token)}`);
      const c = carol.page;
      await until('#general for Carol', async () => (await channelTitle(c)) === '#general');
      assert.equal(new URL(c.url()).searchParams.has('token'), false, c.url());
      const bell = c.getByRole('button', { name: /^Notifications/ });
      await until('the unread count on the inbox button', async () => (await bell.innerText()).includes('1'));
      const mentionBadge = c.locator('.sidebar button.channel-item', { hasText: 'random' }).locator('.badge.mention');
      await until('the mention badge of #random', async () => (await mentionBadge.innerText()) === '@1');
      await bell.click();
      const entry = c.getByRole('dialog', { name: 'Notifications' }).getByRole('button', { name: /Mention in #random/ });
      // With the message it is about, read from history.
      await entry.filter({ hasText: 'Alice: @carol have a look' }).waitFor({ timeout: T });
      await shot(c, '08-notifications');
      await entry.click();
      await until('#random for Carol', async () => (await channelTitle(c)) === '#random');
      await message(c, '@carol have a look').locator('.mention.me').waitFor({ timeout: T });
      await until('the entry to be read on the server', async () => (await api('v1/notifications')).notifications[0].read_at !== null);
      assert.equal(await bell.locator('.badge').count(), 0);
      await until('the mention badge to clear', async () => (await mentionBadge.count()) === 0);
      await carol.context.close();
      carol = undefined;
    });

    await step('a new channel: created and joined in the browser, its history pages in as Bob scrolls up', async () => {
      await a.getByRole('button', { name: 'Browse channels' }).click();
      const dialog = a.getByRole('dialog', { name: 'Browse channels' });
      await dialog.getByLabel('Name').fill('history');
      await dialog.getByRole('button', { name: 'Create' }).click();
      await until('#history to open for Alice', async () => (await channelTitle(a)) === '#history');
      // More than a page of history, sent over REST from Alice's page (quicker than typing it).
      tolerated = RATE_LIMITED;
      await a.evaluate(async (n) => {
        const token = sessionStorage.getItem('palaver:token');
        const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
        const { channels } = await (await fetch('v1/channels', { headers })).json();
        const id = channels.find((c) => c.name === 'history').id;
        for (let i = 1; i <= n; i++) {
          const body = JSON.stringify({ cmid: `history-${i}`, text: `History ${i}` });
          for (;;) {
            const res = await fetch(`v1/channels/${id}/messages`, { method: 'POST', headers, body });
            if (res.ok) break;
            // The send rate limit: wait as long as the server says (the cmid makes a retry safe).
            const err = await res.json();
            if (res.status !== 429) throw new Error(`send ${i}: ${res.status} ${err.message}`);
            await new Promise((r) => setTimeout(r, err.retry_after_ms ?? 1000));
          }
        }
      }, HISTORY);
      tolerated = null;
      await message(a, `History ${HISTORY}`).waitFor({ timeout: T });

      await b.getByRole('button', { name: 'Browse channels' }).click();
      await b.getByRole('button', { name: 'Join #history' }).click();
      await until('#history to open for Bob', async () => (await channelTitle(b)) === '#history');
      await message(b, `History ${HISTORY}`).waitFor({ timeout: T });
      const start = b.locator('.main .history-edge', { hasText: 'very beginning of #history' });
      await until('the start of #history after scrolling up', async () => {
        await b.locator('.main .messages').evaluate((el) => el.scrollTo(0, 0));
        return (await start.count()) > 0;
      });
      const seen = (await texts(b)).filter((t) => t.startsWith('History '));
      assert.deepEqual(seen, Array.from({ length: HISTORY }, (_, i) => `History ${i + 1}`));
      await b.locator('.sidebar button.channel-item', { hasText: 'general' }).click();
      await a.locator('.sidebar button.channel-item', { hasText: 'general' }).click();
      await until('#general again', async () => (await channelTitle(a)) === '#general' && (await channelTitle(b)) === '#general');
    });

    await step('Bob\'s pod dies: he sees the banner, Alice goes on, all of it reaches him in order', async () => {
      tolerated = POD_DOWN;
      await orchestrate('kill-b');
      await until('the reconnecting banner for Bob', async () =>
        ['reconnecting', 'connecting'].includes(await b.locator('.banner').getAttribute('data-state')),
      );
      await shot(b, '05-reconnecting');
      const offline = ['While you were away 1', 'While you were away 2', 'While you were away 3'];
      for (const t of offline) await send(a, t);
      await action(a, message(a, offline[1]), 'Add reaction');
      await a.locator('.emoji-picker').getByRole('button', { name: 'eyes' }).click();
      await message(a, offline[1]).locator('.reaction', { hasText: '👀' }).waitFor({ timeout: T });
      // Bob writes meanwhile: it waits in the SDK's outbox and goes out once he is back.
      await b.locator('#composer-channel').fill('Sent while cut off');
      await b.locator('#composer-channel').press('Enter');
      await message(b, 'Sent while cut off').waitFor({ timeout: T });

      await orchestrate('restart-b');
      await until('Bob to be back', async () => (await b.locator('.banner').getAttribute('data-state')) === 'open', RECONNECT_T);
      for (const t of offline) await message(b, t).waitFor({ timeout: T });
      await message(b, offline[1]).locator('.reaction', { hasText: '👀' }).waitFor({ timeout: T });
      await message(a, 'Sent while cut off').waitFor({ timeout: T });
      await until('Bob\'s message to be acked', async () => (await message(b, 'Sent while cut off').getAttribute('class')).includes('pending') === false);
      tolerated = null;

      // The same messages in the same order on both sides, each once.
      const mine = await texts(a);
      const his = await texts(b);
      const idx = offline.map((t) => his.findIndex((x) => x.startsWith(t)));
      assert.ok(idx.every((i, k) => i >= 0 && (k === 0 || i > idx[k - 1])), `out of order for Bob: ${JSON.stringify(his)}`);
      for (const t of offline) assert.equal(his.filter((x) => x.startsWith(t)).length, 1, `${t} shown ${his.filter((x) => x.startsWith(t)).length} times`);
      await until('both lists to agree', async () => JSON.stringify(await texts(a)) === JSON.stringify(await texts(b)));
      assert.ok(mine.length > 0);
    });

    await step('keyboard only: switch channel, send, reply in a thread, react, edit, quick switcher', async () => {
      const k = a.keyboard;
      const focused = () => a.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);
      await a.locator('#composer-channel').focus();
      const badge = b.locator('.sidebar button.channel-item', { hasText: 'random' }).locator('.badge');
      const unreadBefore = (await badge.count()) > 0 ? Number(await badge.innerText()) : 0;
      await k.press('Alt+ArrowDown');
      await until('#history by Alt+↓', async () => (await channelTitle(a)) === '#history');
      await k.press('Alt+ArrowDown');
      await until('#random by Alt+↓', async () => (await channelTitle(a)) === '#random');
      await until('the composer to have the focus', async () => (await focused()) === 'composer-channel');
      await k.type('Typed with the keyboard');
      await k.press('Enter');
      await message(a, 'Typed with the keyboard').waitFor({ timeout: T });
      // `t` opens a thread only on a sent message, and the list shows it at once, pending: wait
      // for the ack (on a loaded machine it can come after the keys below).
      await until('the message to be acked', async () => !(await message(a, 'Typed with the keyboard').getAttribute('class')).includes('pending'));
      // Bob, in #general, gets an unread badge on #random.
      await until('the unread badge of #random for Bob to count it', async () => Number(await badge.innerText()) === unreadBefore + 1);

      await k.press('ArrowUp');
      await until('the message to have the focus', () =>
        a.evaluate(() => document.activeElement?.matches('article.message') && document.activeElement.textContent.includes('Typed with the keyboard')),
      );
      await k.press('t');
      await until('the thread composer to have the focus', async () => (await focused()) === 'composer-thread');
      await k.type('Keyboard reply');
      await k.press('Enter');
      await message(a, 'Keyboard reply', '.thread-panel').waitFor({ timeout: T });
      await k.press('Escape');
      await until('the thread to close', async () => (await a.locator('.thread-panel').count()) === 0);
      await until('focus back in the composer', async () => (await focused()) === 'composer-channel');

      await k.press('ArrowUp');
      await k.press('r');
      await until('the picker to have the focus', () => a.evaluate(() => !!document.activeElement?.closest('.emoji-picker')));
      await k.press('ArrowRight');
      await k.press('ArrowRight');
      await shot(a, '06-keyboard-react');
      await k.press('Enter'); // the third emoji: ❤️
      await message(a, 'Typed with the keyboard').locator('.reaction[aria-pressed="true"]', { hasText: '❤️' }).waitFor({ timeout: T });
      await message(a, 'Typed with the keyboard').locator('.thread-summary', { hasText: '1 reply' }).waitFor({ timeout: T });
      // The picker hands the focus back to the message: edit it from there.
      await until('the message to have the focus again', () => a.evaluate(() => document.activeElement?.matches('article.message')));
      await k.press('e');
      await until('the edit box to have the focus', () => a.evaluate(() => document.activeElement?.getAttribute('aria-label') === 'Edit message'));
      await k.press('Control+a');
      await k.type('Typed with the keyboard, then edited');
      await k.press('Enter');
      await message(a, 'Typed with the keyboard, then edited').locator('.edited').waitFor({ timeout: T });

      await k.press('Control+k');
      await a.getByRole('combobox', { name: 'Channel or person' }).waitFor({ timeout: T });
      await k.type('gener');
      await k.press('Enter');
      await until('#general by the quick switcher', async () => (await channelTitle(a)) === '#general');
      await until('the composer to have the focus', async () => (await focused()) === 'composer-channel');
    });

    await step('dialogs, dark theme and a narrow screen', async () => {
      await a.getByRole('button', { name: 'Browse channels' }).click();
      await a.getByRole('dialog', { name: 'Browse channels' }).getByText('# random').waitFor({ timeout: T });
      await shot(a, '07-channel-browser');
      await a.keyboard.press('Escape');
      await until('the dialog to close', async () => (await a.getByRole('dialog').count()) === 0);

      await shot(b, '02-channel');
      const background = () => b.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(await background(), 'rgb(255, 255, 255)', 'the light theme by default');
      await b.emulateMedia({ colorScheme: 'dark' });
      await until('the dark theme from the system preference', async () => (await background()) === 'rgb(23, 25, 31)');
      await shot(b, '09-dark');
      await b.setViewportSize({ width: 390, height: 800 });
      await shot(b, '10-narrow');
      await b.getByRole('button', { name: 'Show channels' }).click();
      await b.locator('.sidebar button.channel-item', { hasText: 'random' }).click();
      await until('#random on the narrow screen', async () => (await channelTitle(b)) === '#random');
      await message(b, 'Typed with the keyboard').waitFor({ timeout: T });
    });

    await step('no console errors', async () => {
      assert.deepEqual(consoleErrors, []);
    });
  } catch {
    // The failed step is recorded; keep what both people saw.
    if (SHOTS) {
      for (const p of [alice, bob, carol]) if (p) await p.page.screenshot({ path: join(SHOTS, `failure-${p.who}.png`) }).catch(() => undefined);
    }
  } finally {
    await browser.close();
  }
  const failed = results.filter((r) => !r.ok);
  if (consoleErrors.length > 0 && failed.length > 0) log(`console errors: ${consoleErrors.join('\n')}`);
  process.stdout.write(`${results.length - failed.length} passed, ${failed.length} failed\n`);
  process.exit(failed.length > 0 ? 1 : 0);
}

main().catch((e) => {
  log(e.stack ?? e);
  process.stdout.write('0 passed, 1 failed\n');
  process.exit(1);
});
