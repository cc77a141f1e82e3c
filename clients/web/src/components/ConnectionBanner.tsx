// Says when the connection is not live: connecting, reconnecting (sends wait in the SDK's
// outbox meanwhile), closed; and briefly that the session resumed (the SDK then replays what
// was missed).

import { useApp } from '../state/app';
import { useObservable } from '../state/observable';

export function ConnectionBanner() {
  const app = useApp();
  const { state, resumed } = useObservable(app.connection);
  const text =
    state === 'connecting'
      ? 'Connecting…'
      : state === 'reconnecting'
        ? 'Reconnecting… Messages you send now go out when the connection is back.'
        : state === 'closed'
          ? 'Disconnected.'
          : resumed
            ? 'Back online.'
            : '';
  return (
    <div class={`banner ${text ? `show ${state}${resumed ? ' resumed' : ''}` : ''}`} role="status" data-state={state}>
      {text}
    </div>
  );
}
