// A thread beside the channel: the root, its replies (live: the SDK keeps a loaded thread
// current), who is typing in it, and a reply box with "also send to the channel". Escape
// closes it. Replies are marked read (the thread's own read cursor) while it is open.

import { useEffect, useState } from 'preact/hooks';
import type { ThreadView } from '@palaver/client';
import { typingText } from '../format';
import { isChannel, useApp, useClientEvents } from '../state/app';
import { useNames } from '../state/names';
import { Composer } from './Composer';
import { MessageItem } from './MessageItem';
import { MessageList } from './MessageList';
import { Icon } from './Icon';

export function ThreadPanel({ channel, root }: { channel: string; root: string }) {
  const app = useApp();
  const name = useNames(app.names);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useClientEvents(['change'], (_, arg) => arg.channel === channel);

  // thread() pages the whole thread in once; from then on the SDK keeps it current in its
  // folded state, which threadView reads at each render.
  useEffect(() => {
    let live = true;
    app.client.thread(channel, root).then(
      () => live && setLoaded(true),
      (e: Error) => live && setError(e.message),
    );
    return () => {
      live = false;
    };
  }, [channel, root]);
  const view: ThreadView | undefined = loaded ? app.client.threadView(channel, root) : undefined;

  // Opening a thread is for replying: the reply box gets the focus once it is there.
  useEffect(() => {
    if (loaded) document.getElementById('composer-thread')?.focus();
  }, [loaded]);

  const lastSeq = view?.replies.filter((r) => !r.pending).at(-1)?.seq ?? 0;
  useEffect(() => {
    if (lastSeq > 0 && document.visibilityState === 'visible') app.client.markRead(channel, lastSeq, root);
  }, [lastSeq]);

  const people = view ? [...new Set([view.root?.user, ...view.replies.map((r) => r.user)].filter(Boolean))] : [];
  const peopleKey = people.sort().join(',');
  useEffect(() => app.presence.want('thread', peopleKey ? peopleKey.split(',') : []), [peopleKey]);
  useEffect(() => () => app.presence.want('thread', []), []);

  const info = app.client.channel(channel)?.info;
  const channelName = info ? (isChannel(info) ? `#${info.name}` : app.label(info)) : '';
  const close = () => {
    app.thread.set(null);
    document.getElementById('composer-channel')?.focus();
  };

  return (
    <aside
      class="thread-panel"
      aria-labelledby="thread-title"
      onKeyDown={(e) => {
        if (e.key === 'Escape' && !e.defaultPrevented) {
          e.preventDefault();
          close();
        }
      }}
    >
      <header class="thread-head">
        <h2 id="thread-title">
          Thread <span class="hint">{channelName}</span>
        </h2>
        <button type="button" class="icon-button" aria-label="Close thread" title="Close thread (Escape)" onClick={close}>
          <Icon name="close" />
        </button>
      </header>
      {error && (
        <p class="error" role="alert">
          Could not open the thread: {error}
        </p>
      )}
      {!view && !error && <p class="hint center">Loading…</p>}
      {view && (
        <>
          <div class="thread-root">
            {view.root ? (
              <MessageItem m={view.root} channel={channel} grouped={false} active place="root" onActivate={() => undefined} />
            ) : (
              <p class="tombstone">The message this thread started from is not available.</p>
            )}
            <p class="reply-count hint">
              {view.replies.length} {view.replies.length === 1 ? 'reply' : 'replies'}
            </p>
          </div>
          <MessageList
            channel={channel}
            messages={view.replies}
            place="thread"
            label="Replies"
            composerId="composer-thread"
          />
          <p class="typing" role="status">
            {typingText(app.typers(view.typing).map(name))}
          </p>
          <Composer
            id="composer-thread"
            channel={channel}
            thread={root}
            label="Reply in thread"
            listSelector=".thread-panel .log"
            channelName={channelName}
          />
        </>
      )}
    </aside>
  );
}
