// Opening a conversation: search people (GET /v1/users?q=, a prefix of the id or display name),
// pick one for a DM or up to eight for a group DM, and open it (POST /v1/dms finds the existing
// one for the same people).

import { useEffect, useState } from 'preact/hooks';
import type { User } from '@palaver/client';
import { useApp } from '../state/app';
import { useNames } from '../state/names';
import { Modal } from './Modal';

/** A group DM has at most eight others. */
const MAX_OTHERS = 8;
const SEARCH_DEBOUNCE_MS = 200;

export function DmPicker() {
  const app = useApp();
  const name = useNames(app.names);
  const [q, setQ] = useState('');
  const [users, setUsers] = useState<User[]>([]);
  const [picked, setPicked] = useState<string[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const close = () => app.dialog.set(null);

  useEffect(() => {
    let live = true;
    const t = setTimeout(() => {
      app.client.rest.users(q.trim() || undefined).then(
        (page) => {
          if (!live) return;
          for (const u of page.users) app.names.learn(u.id, u.display_name);
          setUsers(page.users.filter((u) => u.id !== app.session.user));
          setError(null);
        },
        (e: Error) => live && setError(e.message),
      );
    }, SEARCH_DEBOUNCE_MS);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [q]);

  const toggle = (id: string) =>
    setPicked((p) => (p.includes(id) ? p.filter((x) => x !== id) : p.length < MAX_OTHERS ? [...p, id] : p));

  const open = async (e: Event) => {
    e.preventDefault();
    if (picked.length === 0) return;
    setBusy(true);
    try {
      const c = await app.client.rest.openDm(picked);
      app.openWhenJoined(c.id);
      close();
    } catch (err) {
      setError((err as Error).message);
      setBusy(false);
    }
  };

  return (
    <Modal title="New conversation" onClose={close}>
      <form class="stack" onSubmit={open}>
        <label>
          Find people
          <input type="search" autoFocus value={q} onInput={(e) => setQ(e.currentTarget.value)} />
        </label>
        {picked.length > 0 && (
          <p class="picked" aria-live="polite">
            With: {picked.map(name).join(', ')}
          </p>
        )}
        <fieldset class="people">
          <legend class="sr-only">People</legend>
          {users.map((u) => (
            <label key={u.id} class="person">
              <input
                type="checkbox"
                checked={picked.includes(u.id)}
                disabled={!picked.includes(u.id) && picked.length >= MAX_OTHERS}
                onChange={() => toggle(u.id)}
              />
              <span>{u.display_name || u.id}</span>
              {u.display_name && <span class="hint">@{u.id}</span>}
            </label>
          ))}
          {users.length === 0 && <p class="hint">Nobody matches.</p>}
        </fieldset>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={picked.length === 0 || busy}>
          {picked.length > 1 ? 'Open group conversation' : 'Open conversation'}
        </button>
      </form>
    </Modal>
  );
}
