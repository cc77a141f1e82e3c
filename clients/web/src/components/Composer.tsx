// Writing a message: Enter sends, Shift+Enter is a new line, ↑ in an empty box focuses the newest
// message (to react, reply or edit by keyboard). Attachments upload as soon as they are picked
// (the SDK's three-step upload) and go with the next send. Typing notices go to the SDK, which
// throttles them. The draft of each channel and thread is kept while the app runs.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { FileRef } from '@palaver/client';
import { formatSize } from '../format';
import { useApp } from '../state/app';
import { Icon } from './Icon';

interface Upload {
  key: number;
  name: string;
  size: number;
  file?: FileRef;
  error?: string;
}

let uploadKeys = 0;

export function Composer(props: {
  id: string;
  channel: string;
  thread?: string;
  label: string;
  /** The list ↑ moves into. */
  listSelector: string;
  /** Replies only: the name of the channel for "also send to". */
  channelName?: string;
}) {
  const app = useApp();
  const draftKey = `${props.channel}/${props.thread ?? ''}`;
  const fileInput = useRef<HTMLInputElement>(null);
  const [text, setText] = useState(() => app.drafts.get(draftKey) ?? '');
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [alsoChannel, setAlsoChannel] = useState(false);

  // A different channel or thread brings its own draft.
  useEffect(() => {
    setText(app.drafts.get(draftKey) ?? '');
    setUploads([]);
    setAlsoChannel(false);
  }, [draftKey]);

  const uploading = uploads.some((u) => !u.file && !u.error);
  const ready = uploads.filter((u) => u.file).map((u) => u.file!.id);

  const change = (value: string) => {
    setText(value);
    app.drafts.set(draftKey, value);
    if (value.trim() !== '') app.client.typing(props.channel, props.thread);
  };

  const send = () => {
    const body = text.trim();
    if ((body === '' && ready.length === 0) || uploading) return;
    const opts = {
      ...(props.thread ? { thread: props.thread, alsoChannel } : {}),
      ...(ready.length > 0 ? { files: ready } : {}),
    };
    // The SDK shows the message at once (pending) and keeps it in its outbox until acked; a
    // refusal marks it failed in the list, so nothing more is needed here than the report.
    app.client.send(props.channel, body, opts).catch((e: Error) => app.toast.set(`Not sent: ${e.message}`));
    change('');
    setUploads([]);
    setAlsoChannel(false);
  };

  const attach = (files: FileList | null) => {
    for (const f of [...(files ?? [])]) {
      const key = ++uploadKeys;
      setUploads((list) => [...list, { key, name: f.name, size: f.size }]);
      app.client.rest
        .upload(props.channel, f, { name: f.name, contentType: f.type || 'application/octet-stream' })
        .then(
          (file) => setUploads((list) => list.map((u) => (u.key === key ? { ...u, file } : u))),
          (e: Error) => setUploads((list) => list.map((u) => (u.key === key ? { ...u, error: e.message } : u))),
        );
    }
    if (fileInput.current) fileInput.current.value = '';
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    } else if (e.key === 'ArrowUp' && text === '' && !e.altKey) {
      const items = document.querySelectorAll<HTMLElement>(`${props.listSelector} article.message`);
      const last = items[items.length - 1];
      if (last) {
        e.preventDefault();
        last.focus();
        last.scrollIntoView({ block: 'nearest' });
      }
    }
  };

  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        send();
      }}
    >
      {uploads.length > 0 && (
        <ul class="uploads" aria-label="Attachments">
          {uploads.map((u) => (
            <li key={u.key} class={u.error ? 'error' : ''}>
              <span>
                <Icon name="attach" /> {u.name} <span class="hint">{formatSize(u.size)}</span>{' '}
                {u.error ? `— ${u.error}` : u.file ? '' : '— uploading…'}
              </span>
              <button
                type="button"
                class="icon-button small"
                aria-label={`Remove ${u.name}`}
                onClick={() => setUploads((list) => list.filter((x) => x.key !== u.key))}
              >
                <Icon name="close" />
              </button>
            </li>
          ))}
        </ul>
      )}
      <div class="composer-row">
        <button
          type="button"
          class="icon-button"
          aria-label="Attach files"
          title="Attach files"
          onClick={() => fileInput.current?.click()}
        >
          <Icon name="attach" />
        </button>
        <input ref={fileInput} type="file" multiple hidden onChange={(e) => attach(e.currentTarget.files)} />
        <textarea
          id={props.id}
          class="composer-input"
          aria-label={props.label}
          placeholder={props.label}
          rows={Math.min(8, Math.max(1, text.split('\n').length))}
          value={text}
          onInput={(e) => change(e.currentTarget.value)}
          onKeyDown={onKeyDown}
        />
        <button type="submit" class="primary" disabled={uploading} aria-label="Send">
          Send
        </button>
      </div>
      {props.thread && props.channelName && (
        <label class="also-channel">
          <input type="checkbox" checked={alsoChannel} onChange={(e) => setAlsoChannel(e.currentTarget.checked)} />
          Also send to {props.channelName}
        </label>
      )}
    </form>
  );
}
