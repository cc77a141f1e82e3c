// The public channel browser (GET /v1/channels?scope=public, paged by name): filter what is
// loaded, join a channel or open one already joined, or create a new channel.

import { useEffect, useState } from 'preact/hooks';
import type { ChannelSummary } from '@palaver/client';
import { useApp } from '../state/app';
import { Modal } from './Modal';

export function ChannelBrowser() {
  const app = useApp();
  const [channels, setChannels] = useState<ChannelSummary[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [filter, setFilter] = useState('');
  const joined = new Set(app.client.channels().map((c) => c.id));
  const close = () => app.dialog.set(null);

  const load = async (after?: string) => {
    setLoading(true);
    try {
      const page = await app.client.rest.publicChannels(after);
      setChannels((list) => (after ? [...list, ...page.channels] : page.channels));
      setCursor(page.next_cursor);
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => void load(), []);

  const join = async (c: ChannelSummary) => {
    try {
      if (!joined.has(c.id)) await app.client.rest.join(c.id);
      app.openWhenJoined(c.id);
      close();
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const shown = channels.filter((c) => c.name.includes(filter.trim().toLowerCase()));

  return (
    <Modal title="Browse channels" onClose={close} wide>
      <label class="stack">
        Filter
        <input type="search" autoFocus value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
      </label>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <ul class="browser-list" aria-busy={loading}>
        {shown.map((c) => (
          <li key={c.id}>
            <div>
              <strong># {c.name}</strong>
              {c.member_count !== undefined && (
                <span class="hint">
                  {' '}
                  · {c.member_count} member{c.member_count === 1 ? '' : 's'}
                </span>
              )}
              {c.topic && <div class="hint small">{c.topic}</div>}
            </div>
            <button type="button" onClick={() => void join(c)} aria-label={`${joined.has(c.id) ? 'Open' : 'Join'} #${c.name}`}>
              {joined.has(c.id) ? 'Open' : 'Join'}
            </button>
          </li>
        ))}
        {!loading && shown.length === 0 && <li class="hint">No channels match.</li>}
      </ul>
      {cursor && (
        <button type="button" disabled={loading} onClick={() => void load(cursor)}>
          More channels
        </button>
      )}
      <CreateChannel
        onCreated={(id) => {
          app.openWhenJoined(id);
          close();
        }}
      />
    </Modal>
  );
}

function CreateChannel({ onCreated }: { onCreated: (id: string) => void }) {
  const app = useApp();
  const [name, setName] = useState('');
  const [priv, setPriv] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      const c = await app.client.rest.createChannel(name.trim(), priv ? 'private' : 'public');
      onCreated(c.id);
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <form class="create-channel" onSubmit={submit}>
      <h3>New channel</h3>
      <div class="row">
        <label>
          Name
          <input
            required
            pattern="[a-z0-9_\-]{1,80}"
            title="1 to 80 of a-z 0-9 _ -"
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </label>
        <label class="inline">
          <input type="checkbox" checked={priv} onChange={(e) => setPriv(e.currentTarget.checked)} /> Private
        </label>
        <button type="submit">Create</button>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
