// Storage: where the client persists what must survive a reload (delivery positions, the
// outbox). Two implementations: MemoryStorage (default; survives reconnects and a new
// PalaverClient on the same instance, not a page reload) and LocalStorage (browsers).

export interface Storage {
  get(key: string): Promise<string | null>;
  set(key: string, value: string): Promise<void>;
  remove(key: string): Promise<void>;
}

export class MemoryStorage implements Storage {
  private readonly data = new Map<string, string>();

  async get(key: string): Promise<string | null> {
    return this.data.get(key) ?? null;
  }

  async set(key: string, value: string): Promise<void> {
    this.data.set(key, value);
  }

  async remove(key: string): Promise<void> {
    this.data.delete(key);
  }
}

/** Keys live under `prefix` in a Web Storage (default: globalThis.localStorage). Use one prefix
 *  per workspace and user, e.g. 'palaver:<workspace>:<user>:', so accounts never share positions. */
export class LocalStorage implements Storage {
  private readonly backing: globalThis.Storage;

  constructor(
    private readonly prefix: string,
    backing?: globalThis.Storage,
  ) {
    const found = backing ?? (globalThis as { localStorage?: globalThis.Storage }).localStorage;
    if (!found) throw new TypeError('LocalStorage: no Web Storage available; pass one as `backing`');
    this.backing = found;
  }

  async get(key: string): Promise<string | null> {
    return this.backing.getItem(this.prefix + key);
  }

  async set(key: string, value: string): Promise<void> {
    this.backing.setItem(this.prefix + key, value);
  }

  async remove(key: string): Promise<void> {
    this.backing.removeItem(this.prefix + key);
  }
}

/** Writes one JSON value under one key, in call order, never two at once; a write asked for
 *  while one is running is folded into the next (only the latest value matters). */
export class JsonSlot<T> {
  private running: Promise<void> = Promise.resolve();
  private queued: T | undefined;
  private hasQueued = false;

  constructor(
    private readonly storage: Storage,
    private readonly key: string,
    private readonly onError: (e: unknown) => void,
  ) {}

  async load(): Promise<T | undefined> {
    const raw = await this.storage.get(this.key);
    if (raw === null) return undefined;
    try {
      return JSON.parse(raw) as T;
    } catch {
      // A corrupt value (another program wrote the key) is as good as none.
      return undefined;
    }
  }

  /** Schedules a write of `value`; the Promise settles when it (or a later value) is stored. */
  save(value: T): Promise<void> {
    this.queued = value;
    if (this.hasQueued) return this.running;
    this.hasQueued = true;
    this.running = this.running.then(async () => {
      this.hasQueued = false;
      const v = this.queued as T;
      this.queued = undefined;
      try {
        await this.storage.set(this.key, JSON.stringify(v));
      } catch (e) {
        this.onError(e);
      }
    });
    return this.running;
  }

  /** Settles when every scheduled write has. */
  flushed(): Promise<void> {
    return this.running;
  }
}
