// The signed-in layout: connection banner, sidebar, the open channel, the thread panel, and
// whichever dialog is up; plus the keys that work everywhere (Alt+↑/↓ previous/next
// conversation, Ctrl+K the quick switcher).

import { useEffect } from 'preact/hooks';
import { useApp } from '../state/app';
import { useObservable } from '../state/observable';
import { ChannelBrowser } from './ChannelBrowser';
import { ChannelPane } from './ChannelPane';
import { ConnectionBanner } from './ConnectionBanner';
import { DmPicker } from './DmPicker';
import { InboxDialog } from './InboxDialog';
import { QuickSwitcher } from './QuickSwitcher';
import { Sidebar } from './Sidebar';
import { ThreadPanel } from './ThreadPanel';
import { Toast } from './Toast';

export function Chat({ onSignOut }: { onSignOut: () => void }) {
  const app = useApp();
  const current = useObservable(app.current);
  const thread = useObservable(app.thread);
  const dialog = useObservable(app.dialog);
  const sidebarOpen = useObservable(app.sidebarOpen);
  const focus = useObservable(app.focusRequest);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.altKey && !e.ctrlKey && !e.metaKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
        if (app.dialog.value) return;
        e.preventDefault();
        app.step(e.key === 'ArrowUp' ? -1 : 1);
      } else if ((e.ctrlKey || e.metaKey) && !e.altKey && e.key.toLowerCase() === 'k') {
        e.preventDefault();
        app.dialog.set(app.dialog.value === 'switcher' ? null : 'switcher');
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [app]);

  // A jump (switcher, Alt+↑/↓) puts the focus in the composer once the channel has rendered.
  useEffect(() => {
    if (!focus || focus.channel !== current || dialog) return;
    const el = document.getElementById('composer-channel');
    if (el) {
      el.focus();
      app.focusRequest.set(null);
    }
  });

  return (
    <div class={`chat${sidebarOpen ? ' sidebar-open' : ''}${thread ? ' with-thread' : ''}`}>
      <ConnectionBanner />
      <Sidebar onSignOut={onSignOut} />
      {sidebarOpen && <div class="scrim" aria-hidden="true" onClick={() => app.sidebarOpen.set(false)} />}
      {current ? (
        <ChannelPane channel={current} />
      ) : (
        <main class="main" aria-busy="true">
          <p class="hint center">Loading your channels…</p>
        </main>
      )}
      {thread && thread.channel === current && <ThreadPanel key={`${thread.channel}/${thread.root}`} channel={thread.channel} root={thread.root} />}
      {dialog === 'browser' && <ChannelBrowser />}
      {dialog === 'dm' && <DmPicker />}
      {dialog === 'inbox' && <InboxDialog />}
      {dialog === 'switcher' && <QuickSwitcher />}
      <Toast />
    </div>
  );
}
