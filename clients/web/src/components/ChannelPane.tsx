// The open channel: its header, the message list, who is typing, and the composer. It marks the
// channel read while the page is visible and the newest message is in view, and clears the
// inbox entries the reader has now seen.

import { useEffect, useRef } from 'preact/hooks';
import { isChannel, dmPeople, useApp, useClientEvents } from '../state/app';
import { useNames } from '../state/names';
import { useObservable } from '../state/observable';
import { typingText } from '../format';
import { Composer } from './Composer';
import { MessageList } from './MessageList';
import { PresenceDot } from './PresenceDot';
import { Icon } from './Icon';

/** Presence is followed for the authors of this many of the newest messages. */
const PRESENCE_WINDOW = 100;

export function ChannelPane({ channel }: { channel: string }) {
  const app = useApp();
  useClientEvents(['change', 'channels'], (name, arg) => name !== 'change' || (arg as { channel: string }).channel === channel);
  const name = useNames(app.names);
  const sidebarOpen = useObservable(app.sidebarOpen);
  const atBottom = useRef(false);
  const view = app.client.channel(channel);

  const markSeen = () => {
    if (!atBottom.current || document.visibilityState !== 'visible') return;
    app.seen(channel);
  };

  useEffect(() => {
    document.addEventListener('visibilitychange', markSeen);
    return () => document.removeEventListener('visibilitychange', markSeen);
  }, [channel]);

  const authors = view
    ? [...new Set(view.messages.slice(-PRESENCE_WINDOW).map((m) => m.user))].sort().join(',')
    : '';
  useEffect(() => app.presence.want('channel', authors ? authors.split(',') : []), [authors]);

  if (!view) {
    return (
      <main class="main" aria-busy="true">
        <p class="hint center">Loading…</p>
      </main>
    );
  }

  const info = view.info;
  const label = isChannel(info) ? `#${info.name}` : dmPeople(info, app.session.user).map(name).join(', ');
  const typing = app.typers(view.typing).map(name);
  const dmPeer = info.kind === 'dm' ? dmPeople(info, app.session.user)[0] : undefined;

  return (
    <main class="main" aria-labelledby="channel-title">
      <header class="channel-head">
        <button
          type="button"
          class="icon-button menu-button"
          aria-label="Show channels"
          aria-expanded={sidebarOpen}
          onClick={() => app.sidebarOpen.set(!sidebarOpen)}
        >
          <Icon name="menu" />
        </button>
        {dmPeer && <PresenceDot user={dmPeer} />}
        <h1 id="channel-title">{label}</h1>
      </header>
      <MessageList
        key={channel}
        channel={channel}
        messages={view.messages}
        place="channel"
        label={`Messages in ${label}`}
        hasOlder={view.hasOlder}
        loadOlder={() => app.client.loadOlder(channel, 50)}
        onBottom={(b) => {
          atBottom.current = b;
          markSeen();
        }}
        composerId="composer-channel"
        start={
          <p class="hint">
            {isChannel(info) ? `This is the very beginning of ${label}.` : `This is the beginning of your conversation with ${label}.`}
          </p>
        }
      />
      <p class="typing" role="status">
        {typingText(typing)}
      </p>
      <Composer
        id="composer-channel"
        channel={channel}
        label={`Message ${label}`}
        listSelector=".main .log"
      />
      <p class="keys hint small">
        Enter send · Shift+Enter new line · ↑ select a message, then t thread · r react · e edit · Del delete · Alt+↑/↓ or
        Ctrl+K switch channel
      </p>
    </main>
  );
}
