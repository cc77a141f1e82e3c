// Message text as the person wrote it, with links made clickable and @mentions marked (the
// reader's own name stands out). Everything else is plain text: Preact escapes it.

import type { ComponentChildren } from 'preact';
import { useApp } from '../state/app';

const TOKEN = /(https?:\/\/[^\s<>"]+[^\s<>".,;:!?)\]}'])|(@[A-Za-z0-9_.@-]*[A-Za-z0-9_])/g;

export function RichText({ text }: { text: string }) {
  const app = useApp();
  const parts: ComponentChildren[] = [];
  let at = 0;
  for (const m of text.matchAll(TOKEN)) {
    const start = m.index ?? 0;
    if (start > at) parts.push(text.slice(at, start));
    if (m[1]) {
      parts.push(
        <a href={m[1]} target="_blank" rel="noopener noreferrer">
          {m[1]}
        </a>,
      );
    } else {
      const who = m[2].slice(1);
      const me = who === app.session.user || who === 'here' || who === 'channel';
      parts.push(<span class={me ? 'mention me' : 'mention'}>{m[2]}</span>);
    }
    at = start + m[0].length;
  }
  if (at < text.length) parts.push(text.slice(at));
  return <>{parts}</>;
}
