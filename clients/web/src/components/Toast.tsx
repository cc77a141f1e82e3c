// A passing error message (a refused reaction, a failed upload), dismissed after a while.

import { useEffect } from 'preact/hooks';
import { useApp } from '../state/app';
import { useObservable } from '../state/observable';
import { Icon } from './Icon';

const TOAST_MS = 6000;

export function Toast() {
  const app = useApp();
  const text = useObservable(app.toast);
  useEffect(() => {
    if (!text) return;
    const t = setTimeout(() => app.toast.set(null), TOAST_MS);
    return () => clearTimeout(t);
  }, [text]);
  return (
    <div class={text ? 'toast show' : 'toast'} role="alert">
      {text && (
        <>
          <span>{text}</span>
          <button type="button" class="icon-button small" aria-label="Dismiss" onClick={() => app.toast.set(null)}>
            <Icon name="close" />
          </button>
        </>
      )}
    </div>
  );
}
