// A user's presence as a coloured dot with a text alternative (online, away, offline), live from
// the SDK's presence frames. Which users are subscribed is the PresenceTracker's business; the
// reader's own dot follows this tab's connection instead (oneself is never subscribed to).

import { useApp, useClientEvents } from '../state/app';
import { useObservable } from '../state/observable';

export function PresenceDot({ user }: { user: string }) {
  const app = useApp();
  useClientEvents(['presence'], (_, p) => p.user === user);
  const connection = useObservable(app.connection);
  const status =
    user === app.session.user
      ? connection.state === 'open'
        ? 'online'
        : 'offline'
      : (app.client.presenceOf(user)?.status ?? 'offline');
  return <span class={`presence ${status}`} role="img" aria-label={status} title={status} data-presence={status} />;
}
