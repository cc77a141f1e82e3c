// The signed-in app: one PalaverClient and the UI state around it (which channel and thread are
// open, which dialog shows, the connection banner), shared with every component via context.
//
// The SDK owns everything about the conversation (channels, folded messages, typing, presence,
// delivery); this module owns only what the person is looking at and remembers between visits
// (the last channel viewed, in localStorage under a key of its own per workspace and user).

import { createContext } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import {
  LocalStorage,
  PalaverClient,
  type ChannelInfo,
  type ClientEvents,
  type ConnectionState,
} from '@palaver/client';
import { sdkBaseUrl } from '../server';
import { currentSession, type Session } from '../session';
import { Inbox } from './inbox';
import { Names } from './names';
import { Observable } from './observable';
import { PresenceTracker } from './presence';

export type Dialog = 'browser' | 'dm' | 'inbox' | 'switcher' | null;

export interface Connection {
  state: ConnectionState;
  /** Set for a few seconds after a reconnect resumed the session, for the banner. */
  resumed: boolean;
}

export interface OpenThread {
  channel: string;
  root: string;
}

/** How long the banner says "back online" after a resume. */
const RESUMED_BANNER_MS = 3000;

export class ChatApp {
  readonly client: PalaverClient;
  readonly names: Names;
  readonly inbox: Inbox;
  readonly presence: PresenceTracker;
  readonly current = new Observable<string | null>(null);
  readonly thread = new Observable<OpenThread | null>(null);
  readonly dialog = new Observable<Dialog>(null);
  readonly connection = new Observable<Connection>({ state: 'connecting', resumed: false });
  /** The sidebar on narrow screens, where it is a drawer. */
  readonly sidebarOpen = new Observable(false);
  /** After a jump (switcher, Alt+↑/↓): focus the composer once that channel has rendered. */
  readonly focusRequest = new Observable<{ channel: string } | null>(null);
  /** A passing error message for the person (a refused reaction, a failed upload). */
  readonly toast = new Observable<string | null>(null);
  /** Unsent text per channel and thread (`channel/root`), kept while the app runs. */
  readonly drafts = new Map<string, string>();

  private offs: (() => void)[] = [];
  private resumedTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly lastChannelKey: string;
  private signedOut = false;
  /** A channel to open as soon as the client lists it (see openWhenJoined). */
  private pendingOpen: string | null = null;

  constructor(
    readonly session: Session,
    /** Called once when the session can no longer be used (token gone, expired or refused). */
    private readonly onSignedOut: (reason: string) => void,
  ) {
    this.lastChannelKey = `palaver-web:${session.workspace}:${session.user}:last-channel`;
    this.client = new PalaverClient({
      url: sdkBaseUrl,
      token: () => this.token(),
      storage: new LocalStorage(`palaver:${session.workspace}:${session.user}:`),
      fetch: (input, init) => this.fetch(input, init),
    });
    this.names = new Names(this.client.rest);
    this.inbox = new Inbox(this.client);
    this.presence = new PresenceTracker(this.client);
  }

  /** The token callback: storage is re-read on every connect, so a token handed over anew
   *  (another `?token=` in this tab) is picked up; none left means the session is over. */
  private token(): string {
    const s = currentSession();
    if (!s) {
      this.signOut('Your session has expired. Sign in again.');
      throw new Error('signed out');
    }
    return s.token;
  }

  /** The SDK's fetch, watching REST answers for the server refusing the token: a 401 for the
   *  token in storage ends the session. (The SDK asks the token callback again after a first
   *  401, so a token replaced meanwhile gets its chance.) A refused WebSocket upgrade, whose
   *  status a browser never sees, the SDK reports as its `unauthorized` event (see start). */
  private async fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const res = await fetch(input, init);
    if (res.status === 401) {
      const sent = new Headers(init?.headers).get('authorization');
      const stored = currentSession()?.token;
      if (!stored || sent === `Bearer ${stored}`) this.signOut('The server did not accept your sign-in. Sign in again.');
    }
    return res;
  }

  start(): void {
    this.offs.push(
      this.client.on('state', ({ state, resumed }) => this.onState(state, resumed)),
      this.client.on('hello', () => {
        if (this.current.value === null) this.openInitial();
      }),
      this.client.on('channels', (list) => this.onChannels(list)),
      // The token callback failed (it throws once the stored token expired).
      this.client.on('error', (e) => {
        if (e.code === 'unauthorized') this.signOut('Your session has expired. Sign in again.');
      }),
      // Connects keep failing and REST refuses the token callback's token.
      this.client.on('unauthorized', () => this.signOut('The server did not accept your sign-in. Sign in again.')),
      this.inbox.listen(),
    );
    // Away while the tab is hidden, so others see who is actually looking.
    const onVisibility = () => this.client.setPresence(document.visibilityState === 'hidden' ? 'away' : 'online');
    document.addEventListener('visibilitychange', onVisibility);
    this.offs.push(() => document.removeEventListener('visibilitychange', onVisibility));
    this.client.connect();
    // Also the first REST call: a token the server refuses shows here (see fetch above).
    void this.inbox.load();
  }

  async stop(): Promise<void> {
    for (const off of this.offs.splice(0)) off();
    clearTimeout(this.resumedTimer);
    this.presence.dispose();
    await this.client.close();
  }

  signOut(reason: string): void {
    if (this.signedOut) return;
    this.signedOut = true;
    this.onSignedOut(reason);
  }

  private onState(state: ConnectionState, resumed: boolean): void {
    clearTimeout(this.resumedTimer);
    this.connection.set({ state, resumed: resumed && state === 'open' });
    if (resumed && state === 'open') {
      this.resumedTimer = setTimeout(() => this.connection.set({ state, resumed: false }), RESUMED_BANNER_MS);
    }
  }

  private onChannels(list: ChannelInfo[]): void {
    if (this.pendingOpen !== null && list.some((c) => c.id === this.pendingOpen)) {
      const id = this.pendingOpen;
      this.pendingOpen = null;
      this.open(id);
      return;
    }
    const cur = this.current.value;
    // The open channel went away (left, or removed from it): open another rather than a blank page.
    if (cur !== null && !list.some((c) => c.id === cur)) this.openInitial();
  }

  /** The last channel viewed, else #general, else the first channel. */
  private openInitial(): void {
    const list = sidebarOrder(this.client.channels());
    if (list.length === 0) return;
    const last = localStorage.getItem(this.lastChannelKey);
    const pick =
      list.find((c) => c.id === last) ?? list.find((c) => c.name === 'general' && isChannel(c)) ?? list[0];
    this.open(pick.id);
  }

  open(channel: string): void {
    this.current.set(channel);
    localStorage.setItem(this.lastChannelKey, channel);
    this.sidebarOpen.set(false);
    if (this.thread.value && this.thread.value.channel !== channel) this.thread.set(null);
  }

  /** Opens the channel `step` places away in the sidebar's order (Alt+↑/↓), wrapping around. */
  step(step: number): void {
    const list = sidebarOrder(this.client.channels());
    if (list.length === 0) return;
    const at = list.findIndex((c) => c.id === this.current.value);
    const next = list[(at + step + list.length) % list.length];
    this.open(next.id);
    this.focusRequest.set({ channel: next.id });
  }

  /** A channel joined or opened just now may reach the client's list a moment after the REST
   *  answer (the `joined` frame): open it when it is there. */
  openWhenJoined(channel: string): void {
    if (this.client.channels().some((c) => c.id === channel)) this.open(channel);
    else this.pendingOpen = channel;
  }

  /** The reader has seen the channel up to its newest event: move the read cursor and clear
   *  the inbox entries that pointed there. */
  seen(channel: string): void {
    const view = this.client.channel(channel);
    if (!view) return;
    const newest = view.messages.filter((m) => !m.pending && !m.failed).at(-1)?.seq ?? 0;
    const seq = Math.max(view.info.last_seq, newest);
    if (seq > view.info.read_seq) this.client.markRead(channel, seq);
    const entries = this.inbox.seenUpTo(channel, seq);
    if (entries.length > 0) void this.inbox.markRead(entries);
  }

  /** Who to show as typing in a channel or thread: the SDK's list (which drops a typist as soon
   *  as their message arrives) without oneself. */
  typers(users: string[]): string[] {
    return users.filter((u) => u !== this.session.user);
  }

  openThread(channel: string, root: string): void {
    this.thread.set({ channel, root });
  }

  /** What a channel is called in the sidebar: #name, or the other people of a DM. */
  label(c: ChannelInfo): string {
    if (isChannel(c)) return c.name;
    return dmPeople(c, this.session.user)
      .map((u) => this.names.get(u))
      .join(', ');
  }
}

export function isChannel(c: Pick<ChannelInfo, 'kind'>): boolean {
  return c.kind === 'public' || c.kind === 'private';
}

/** The other people of a DM or group DM: its name is the sorted ids of its members. */
export function dmPeople(c: ChannelInfo, me: string): string[] {
  const people = c.name.split(',').filter((u) => u !== me);
  return people.length > 0 ? people : [me];
}

/** Channels by name, then DMs by name: the order of the sidebar and of Alt+↑/↓. */
export function sidebarOrder(list: ChannelInfo[]): ChannelInfo[] {
  const byName = (a: ChannelInfo, b: ChannelInfo) => a.name.localeCompare(b.name);
  return [...list.filter(isChannel).sort(byName), ...list.filter((c) => !isChannel(c)).sort(byName)];
}

export const AppContext = createContext<ChatApp | null>(null);

export function useApp(): ChatApp {
  const app = useContext(AppContext);
  if (!app) throw new Error('useApp outside AppContext');
  return app;
}

/** Re-renders the caller on the given client events (filtered by `when`, if given). */
export function useClientEvents<K extends keyof ClientEvents>(
  names: K[],
  when?: (name: K, arg: ClientEvents[K]) => boolean,
): void {
  const app = useApp();
  const [, bump] = useState(0);
  // The latest filter, so that it sees the caller's current props without resubscribing.
  const filter = useRef(when);
  filter.current = when;
  const key = names.join(',');
  useEffect(() => {
    const offs = names.map((n) =>
      app.client.on(n, (arg) => {
        if (!filter.current || filter.current(n, arg)) bump((x) => x + 1);
      }),
    );
    return () => offs.forEach((off) => off());
  }, [app, key]);
}
