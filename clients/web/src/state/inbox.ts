// The notifications inbox: the entries of GET /v1/notifications (mentions, DMs and thread
// replies that arrived while the user had no live connection), plus the `notification` frames
// the server sends after each sync. Entries are unique by id, newest first.

import type { Notification, NotificationFrame, PalaverClient } from '@palaver/client';
import { Observable } from './observable';

export interface InboxEntry {
  id: number;
  kind: Notification['kind'];
  channel: string;
  seq: number;
  ts: string;
  read: boolean;
}

export class Inbox {
  readonly entries = new Observable<InboxEntry[]>([]);
  readonly loading = new Observable(false);
  /** The server's list has arrived once (until then only live entries are known). */
  readonly loaded = new Observable(false);
  readonly error = new Observable<string | null>(null);

  constructor(private client: PalaverClient) {}

  /** Starts listening for live entries; returns the unsubscribe. */
  listen(): () => void {
    return this.client.on('notification', (f: NotificationFrame) =>
      this.merge([{ id: f.id, kind: f.kind, channel: f.channel, seq: f.seq, ts: f.ts, read: false }]),
    );
  }

  async load(): Promise<void> {
    this.loading.set(true);
    try {
      const page = await this.client.rest.notifications();
      this.merge(
        page.notifications.map((n) => ({
          id: n.id,
          kind: n.kind,
          channel: n.channel,
          seq: n.seq,
          ts: n.created_at,
          read: n.read_at !== null,
        })),
        // The server's answer is the truth for read state: an entry read on another device shows read.
        true,
      );
      this.error.set(null);
      this.loaded.set(true);
    } catch (e) {
      this.error.set((e as Error).message);
    } finally {
      this.loading.set(false);
    }
  }


  /** Marks entries read (all unread ones without ids), locally at once and then on the server. */
  async markRead(ids?: number[]): Promise<void> {
    const which = ids ?? this.entries.value.filter((e) => !e.read).map((e) => e.id);
    if (which.length === 0) return;
    const set = new Set(which);
    this.entries.update((list) => list.map((e) => (set.has(e.id) ? { ...e, read: true } : e)));
    try {
      await this.client.rest.markNotificationsRead(which);
    } catch (e) {
      this.error.set((e as Error).message);
    }
  }

  /** Entries of a channel that are read now because the user has seen the channel up to `seq`. */
  seenUpTo(channel: string, seq: number): number[] {
    return this.entries.value.filter((e) => !e.read && e.channel === channel && e.seq <= seq).map((e) => e.id);
  }

  private merge(incoming: InboxEntry[], authoritative = false): void {
    this.entries.update((list) => {
      const byId = new Map(list.map((e) => [e.id, e]));
      for (const e of incoming) {
        const old = byId.get(e.id);
        byId.set(e.id, old && !authoritative ? { ...e, read: old.read || e.read } : e);
      }
      return [...byId.values()].sort((a, b) => b.id - a.id);
    });
  }
}
