// Storage: MemoryStorage, LocalStorage under its prefix, and the JSON slot that serializes
// writes so a slow store never ends up holding an older value than the last one asked for.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { LocalStorage, MemoryStorage } from '../src/index.js';
import { JsonSlot, type Storage } from '../src/storage.js';

class WebStorage {
  readonly data = new Map<string, string>();
  getItem(k: string) {
    return this.data.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.data.set(k, v);
  }
  removeItem(k: string) {
    this.data.delete(k);
  }
}

test('LocalStorage keeps its keys under its prefix', async () => {
  const backing = new WebStorage();
  const s = new LocalStorage('palaver:w:alice:', backing as unknown as globalThis.Storage);
  await s.set('positions', '{"c1":3}');
  assert.deepEqual([...backing.data.keys()], ['palaver:w:alice:positions']);
  assert.equal(await s.get('positions'), '{"c1":3}');
  await s.remove('positions');
  assert.equal(await s.get('positions'), null);
  assert.throws(() => new LocalStorage('x'), /no Web Storage/);
});

test('MemoryStorage round-trips', async () => {
  const m = new MemoryStorage();
  assert.equal(await m.get('k'), null);
  await m.set('k', 'v');
  assert.equal(await m.get('k'), 'v');
});

test('JsonSlot writes in order and folds queued writes into the latest', async () => {
  const writes: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const slow: Storage = {
    get: async () => 'not json',
    set: async (_k, v) => {
      await gate;
      writes.push(v);
    },
    remove: async () => undefined,
  };
  const slot = new JsonSlot<number>(slow, 'k', () => assert.fail('no error expected'));
  assert.equal(await slot.load(), undefined, 'a corrupt value reads as none');
  void slot.save(1);
  void slot.save(2);
  void slot.save(3);
  release();
  await slot.flushed();
  assert.deepEqual(writes, ['3'], 'one write with the latest value');
  await slot.save(4);
  assert.deepEqual(writes, ['3', '4']);
});
