// The notifications inbox: mentions, DMs and thread replies received while away, newest first,
// each with the message it is about (entries name only channel and seq: the message is read
// from history). Opening an entry opens its channel and marks it read; "Mark all read" clears
// the rest.

import { useEffect, useState } from 'preact/hooks';
import type { ChannelEvent } from '@palaver/client';
import { formatFull } from '../format';
import { useApp } from '../state/app';
import type { InboxEntry } from '../state/inbox';
import { useNames } from '../state/names';
import { useObservable } from '../state/observable';
import { Modal } from './Modal';

const KIND: Record<InboxEntry['kind'], string> = { mention: 'Mention', dm: 'Direct message', thread: 'Thread reply' };

export function InboxDialog() {
  const app = useApp();
  useNames(app.names);
  const entries = useObservable(app.inbox.entries);
  const loading = useObservable(app.inbox.loading);
  const error = useObservable(app.inbox.error);
  const close = () => app.dialog.set(null);
  useEffect(() => void app.inbox.load(), []);

  const where = (channel: string) => {
    const c = app.client.channels().find((x) => x.id === channel);
    return c ? (c.kind === 'public' || c.kind === 'private' ? `#${c.name}` : app.label(c)) : 'a channel you left';
  };

  return (
    <Modal title="Notifications" onClose={close} wide>
      <div class="inbox-actions">
        <button type="button" disabled={!entries.some((e) => !e.read)} onClick={() => void app.inbox.markRead()}>
          Mark all read
        </button>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <ul class="inbox-list" aria-busy={loading}>
        {entries.map((e) => (
          <li key={e.id} class={e.read ? 'read' : 'unread'}>
            <button
              type="button"
              onClick={() => {
                void app.inbox.markRead([e.id]);
                close();
                app.openWhenJoined(e.channel);
              }}
            >
              <span class="kind">{KIND[e.kind]}</span> in {where(e.channel)}
              <span class="hint"> · {formatFull(e.ts)}</span>
              <Excerpt entry={e} />
              {!e.read && <span class="sr-only"> (unread)</span>}
            </button>
          </li>
        ))}
        {!loading && entries.length === 0 && <li class="hint">Nothing here: you have seen everything.</li>}
      </ul>
    </Modal>
  );
}

/** The message an entry is about: its author and the start of its text. */
function Excerpt({ entry }: { entry: InboxEntry }) {
  const app = useApp();
  const name = useNames(app.names);
  const [event, setEvent] = useState<ChannelEvent | null>(null);
  useEffect(() => {
    let live = true;
    app.client.rest
      .get<{ events: ChannelEvent[] }>(`/v1/channels/${encodeURIComponent(entry.channel)}/events`, { after: entry.seq - 1, limit: 1 })
      .then(
        (page) => live && setEvent(page.events.find((ev) => ev.seq === entry.seq) ?? null),
        // Gone (a channel left since): the entry still says where it was.
        () => undefined,
      );
    return () => {
      live = false;
    };
  }, [entry.channel, entry.seq]);
  if (!event) return null;
  const text = event.deleted ? 'message deleted' : (event.text ?? '');
  return (
    <span class="excerpt">
      <strong>{name(event.user)}</strong>: {text.length > 140 ? `${text.slice(0, 140)}…` : text}
    </span>
  );
}
