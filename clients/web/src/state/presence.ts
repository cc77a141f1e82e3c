// Which users' presence the app follows. Several views each want a set (the authors visible in
// the message list, the people of the DMs in the sidebar, a thread's repliers); the connection
// has one subscription, so the union is sent whenever it changes (presence_sub replaces the set;
// the SDK sends the latest one again after each reconnect).

import type { PalaverClient } from '@palaver/client';

/** The server accepts at most 500 users per subscription. */
const MAX_USERS = 500;

export class PresenceTracker {
  private wants = new Map<string, string[]>();
  private sent = '';
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private client: PalaverClient) {}

  /** Sets the users one view wants (replacing that view's previous set). */
  want(view: string, users: string[]): void {
    this.wants.set(view, users);
    // Coalesce the bursts of one render (several views update together).
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), 50);
  }

  private flush(): void {
    const all = new Set<string>();
    for (const list of this.wants.values()) for (const u of list) all.add(u);
    all.delete(this.client.user ?? '');
    const users = [...all].sort().slice(0, MAX_USERS);
    const key = users.join(',');
    if (key === this.sent) return;
    this.sent = key;
    this.client.subscribePresence(users);
  }

  dispose(): void {
    clearTimeout(this.timer);
  }
}
