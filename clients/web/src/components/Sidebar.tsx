// The sidebar: who is signed in, the notifications inbox button, the channels and the DMs with
// their unread and mention badges, and the ways to find more (channel browser, new DM).

import type { ComponentChildren } from 'preact';
import { useEffect } from 'preact/hooks';
import type { ChannelInfo } from '@palaver/client';
import { dmPeople, isChannel, sidebarOrder, useApp, useClientEvents } from '../state/app';
import { useNames } from '../state/names';
import { useObservable } from '../state/observable';
import { PresenceDot } from './PresenceDot';
import { ThemeToggle } from './ThemeToggle';
import { Icon, type IconName } from './Icon';

export function Sidebar({ onSignOut }: { onSignOut: () => void }) {
  const app = useApp();
  useClientEvents(['channels', 'hello']);
  const name = useNames(app.names);
  const current = useObservable(app.current);
  const inbox = useObservable(app.inbox.entries);
  const unreadInbox = inbox.filter((e) => !e.read).length;
  const list = sidebarOrder(app.client.channels());
  const channels = list.filter(isChannel);
  const dms = list.filter((c) => !isChannel(c));
  const dmUsers = dms.flatMap((c) => dmPeople(c, app.session.user)).join(',');

  useEffect(() => app.presence.want('sidebar', dmUsers ? dmUsers.split(',') : []), [dmUsers]);

  return (
    <nav class="sidebar" aria-label="Channels and direct messages">
      <div class="sidebar-head">
        <div class="who">
          <span class="workspace">{app.session.workspace}</span>
          <span class="me">{name(app.session.user)}</span>
        </div>
        <ThemeToggle />
        <button type="button" class="icon-button" aria-label="Sign out" title="Sign out" onClick={onSignOut}>
          <Icon name="signOut" />
        </button>
      </div>
      <button type="button" class="sidebar-action" onClick={() => app.dialog.set('inbox')}>
        <Icon name="bell" /> Notifications
        {unreadInbox > 0 && (
          <span class="badge mention" aria-label={`${unreadInbox} unread`}>
            {unreadInbox}
          </span>
        )}
      </button>
      <button type="button" class="sidebar-action" onClick={() => app.dialog.set('switcher')}>
        <Icon name="search" /> Jump to… <kbd>Ctrl K</kbd>
      </button>

      <Section title="Channels" add="Browse channels" onAdd={() => app.dialog.set('browser')}>
        {channels.map((c) => (
          <Item key={c.id} c={c} current={current === c.id} icon={c.kind === 'private' ? 'lock' : 'hash'}
            label={c.name} />
        ))}
      </Section>
      <Section title="Direct messages" add="New direct message" onAdd={() => app.dialog.set('dm')}>
        {dms.map((c) => {
          const people = dmPeople(c, app.session.user);
          return (
            <Item
              key={c.id}
              c={c}
              current={current === c.id}
              label={people.map(name).join(', ')}
              presence={c.kind === 'dm' ? people[0] : undefined}
            />
          );
        })}
        {dms.length === 0 && <li class="hint empty">No conversations yet</li>}
      </Section>
    </nav>
  );
}

function Section(props: { title: string; add: string; onAdd: () => void; children: ComponentChildren }) {
  const id = `section-${props.title.replace(/\W+/g, '-').toLowerCase()}`;
  return (
    <section class="sidebar-section" aria-labelledby={id}>
      <div class="section-head">
        <h2 id={id}>{props.title}</h2>
        <button type="button" class="icon-button small" aria-label={props.add} title={props.add} onClick={props.onAdd}>
          <Icon name="plus" />
        </button>
      </div>
      <ul>{props.children}</ul>
    </section>
  );
}

function Item(props: { c: ChannelInfo; current: boolean; label: string; icon?: IconName; presence?: string }) {
  const { c, current, label, icon, presence } = props;
  const app = useApp();
  const entries = useObservable(app.inbox.entries);
  const inboxLoaded = useObservable(app.inbox.loaded);
  const unread = current ? 0 : c.unread;
  // The channel's count of unread inbox entries, as the SDK keeps it; capped by the entries the
  // inbox shows unread, so that one marked read there (which the SDK does not see) does not linger.
  const inInbox = entries.filter((e) => !e.read && e.channel === c.id).length;
  const mentions = inboxLoaded ? Math.min(c.mentions, inInbox) : c.mentions;
  return (
    <li>
      <button
        type="button"
        class={`channel-item${unread > 0 ? ' unread' : ''}`}
        aria-current={current ? 'page' : undefined}
        onClick={() => app.open(c.id)}
      >
        {icon && <Icon name={icon} />}
        {presence && <PresenceDot user={presence} />}
        <span class="channel-name">{label}</span>
        {mentions > 0 && (
          <span class="badge mention" aria-label={`${mentions} mention${mentions === 1 ? '' : 's'}`}>
            @{mentions}
          </span>
        )}
        {unread > 0 && mentions === 0 && (
          <span class="badge" aria-label={`${unread} unread`}>
            {unread}
          </span>
        )}
      </button>
    </li>
  );
}
