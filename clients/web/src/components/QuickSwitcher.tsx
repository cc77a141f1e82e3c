// Ctrl+K: jump to any channel or DM by typing part of its name (a combobox: ↑/↓ choose, Enter
// opens, Escape closes).

import { useState } from 'preact/hooks';
import { isChannel, sidebarOrder, useApp } from '../state/app';
import { useNames } from '../state/names';
import { Modal } from './Modal';
import { Icon } from './Icon';

export function QuickSwitcher() {
  const app = useApp();
  useNames(app.names);
  const [q, setQ] = useState('');
  const [at, setAt] = useState(0);
  const close = () => app.dialog.set(null);
  const needle = q.trim().toLowerCase();
  const matches = sidebarOrder(app.client.channels()).filter((c) => app.label(c).toLowerCase().includes(needle));
  const sel = Math.min(at, Math.max(0, matches.length - 1));

  const go = (id: string) => {
    close();
    app.open(id);
    app.focusRequest.set({ channel: id });
  };

  return (
    <Modal title="Jump to a conversation" onClose={close}>
      <input
        type="text"
        role="combobox"
        aria-label="Channel or person"
        aria-expanded="true"
        aria-controls="switcher-list"
        aria-activedescendant={matches[sel] ? `switch-${matches[sel].id}` : undefined}
        autoFocus
        value={q}
        onInput={(e) => {
          setQ(e.currentTarget.value);
          setAt(0);
        }}
        onKeyDown={(e) => {
          if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
            e.preventDefault();
            const n = matches.length;
            if (n > 0) setAt((sel + (e.key === 'ArrowDown' ? 1 : -1) + n) % n);
          } else if (e.key === 'Enter') {
            e.preventDefault();
            if (matches[sel]) go(matches[sel].id);
          }
        }}
      />
      <ul id="switcher-list" role="listbox" aria-label="Conversations" class="switcher-list">
        {matches.map((c, i) => (
          <li
            key={c.id}
            id={`switch-${c.id}`}
            role="option"
            aria-selected={i === sel}
            class={i === sel ? 'selected' : ''}
            onClick={() => go(c.id)}
          >
            {isChannel(c) ? <Icon name={c.kind === 'private' ? 'lock' : 'hash'} /> : <span class="presence-slot">@</span>}
            {app.label(c)}
            {c.unread > 0 && <span class="badge">{c.unread}</span>}
          </li>
        ))}
        {matches.length === 0 && <li class="hint">Nothing matches.</li>}
      </ul>
    </Modal>
  );
}
