// One message: author, time, text (or its tombstone), attachments, reactions, its thread's
// summary, and its actions (react, reply in thread, edit and delete one's own).
//
// Keyboard: the list gives one message at a time tabindex 0 (a roving focus; see MessageList);
// on a focused message `t` opens its thread, `r` the reaction picker, `e` edits and Delete
// deletes (after a confirmation). Its buttons are in the tab order only while it is the active one.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { Message } from '@palaver/client';
import { formatFull, formatTime } from '../format';
import { useApp } from '../state/app';
import { useNames } from '../state/names';
import { Attachment } from './Attachment';
import { ConfirmDialog } from './ConfirmDialog';
import { EmojiPicker } from './EmojiPicker';
import { PresenceDot } from './PresenceDot';
import { RichText } from './RichText';
import { Icon } from './Icon';

export type Place = 'channel' | 'thread' | 'root';

export function MessageItem(props: {
  m: Message;
  channel: string;
  grouped: boolean;
  active: boolean;
  place: Place;
  onActivate: (id: string) => void;
}) {
  const { m, channel, place, active } = props;
  const app = useApp();
  const name = useNames(app.names);
  const self = useRef<HTMLElement>(null);
  const [picker, setPicker] = useState(false);
  const [editing, setEditing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const mine = m.user === app.session.user;
  const settled = !m.pending && !m.failed;
  const canChange = settled && !m.deleted;
  const tab = active ? 0 : -1;
  // The thread this message opens: its own (a root), or the one it was sent to (also_channel).
  const threadRoot = m.thread ?? m.id;
  const canThread = settled && place === 'channel' && (!m.deleted || (m.reply_count ?? 0) > 0);

  const focusSelf = () => self.current?.focus();
  const report = (what: string) => (e: Error) => app.toast.set(`${what}: ${e.message}`);

  const toggle = (emoji: string) => {
    const r = m.reactions.find((x) => x.emoji === emoji);
    const p = r?.me ? app.client.unreact(channel, m.id, emoji) : app.client.react(channel, m.id, emoji);
    p.catch(report('Reaction not saved'));
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.target !== e.currentTarget || e.altKey || e.ctrlKey || e.metaKey) return;
    const key = e.key.toLowerCase();
    if (key === 't' && canThread) app.openThread(channel, threadRoot);
    else if (key === 'r' && canChange) setPicker(true);
    else if (key === 'e' && mine && canChange) setEditing(true);
    else if (e.key === 'Delete' && mine && canChange) setConfirming(true);
    else return;
    e.preventDefault();
  };

  return (
    <article
      ref={self}
      class={`message${props.grouped ? ' grouped' : ''}${m.pending ? ' pending' : ''}${m.failed ? ' failed' : ''}`}
      tabIndex={tab}
      data-mid={m.id}
      aria-label={`${name(m.user)}, ${formatTime(m.ts)}: ${m.deleted ? 'message deleted' : (m.text ?? '')}`}
      onFocus={(e) => {
        if (e.target === e.currentTarget || !active) props.onActivate(m.id);
      }}
      onKeyDown={onKeyDown}
    >
      {!props.grouped && (
        <div class="avatar" aria-hidden="true" style={{ background: avatarColour(m.user) }}>
          {name(m.user).slice(0, 1).toUpperCase()}
        </div>
      )}
      <div class="message-body">
        {props.grouped ? (
          <time class="gutter-time" dateTime={m.ts} title={formatFull(m.ts)}>
            {formatTime(m.ts)}
          </time>
        ) : (
          <header class="message-head">
            <span class="author">{name(m.user)}</span>
            <PresenceDot user={m.user} />
            <time dateTime={m.ts} title={formatFull(m.ts)}>
              {formatTime(m.ts)}
            </time>
          </header>
        )}
        {m.thread && place === 'channel' && (
          <p class="hint small">
            replied to a thread ·{' '}
            <button type="button" class="link" tabIndex={tab} onClick={() => app.openThread(channel, m.thread!)}>
              view thread
            </button>
          </p>
        )}
        {m.deleted ? (
          <p class="tombstone">message deleted</p>
        ) : editing ? (
          <EditBox
            text={m.text ?? ''}
            onDone={(text) => {
              setEditing(false);
              focusSelf();
              if (text !== null && text !== m.text) app.client.edit(channel, m.id, text).catch(report('Edit not saved'));
            }}
          />
        ) : (
          m.text && (
            <p class="text">
              <RichText text={m.text} />
              {m.edited_at && (
                <span class="edited" title={`edited ${formatFull(m.edited_at)}`}>
                  {' '}
                  (edited)
                </span>
              )}
            </p>
          )
        )}
        {!m.deleted && m.files && m.files.length > 0 && (
          <div class="attachments">
            {m.files.map((f) => (
              <Attachment key={f.id} file={f} tabIndex={tab} />
            ))}
          </div>
        )}
        {m.pending && <p class="hint small">Sending…</p>}
        {m.failed && (
          <p class="error small" role="alert">
            Not sent: {m.failed.message}{' '}
            <button type="button" class="link" tabIndex={tab} onClick={() => app.client.dismiss(channel, m.id)}>
              Dismiss
            </button>
          </p>
        )}
        {!m.deleted && m.reactions.length > 0 && (
          <div class="reactions" role="group" aria-label="Reactions">
            {m.reactions.map((r) => (
              <button
                type="button"
                key={r.emoji}
                class={r.me ? 'reaction me' : 'reaction'}
                aria-pressed={r.me}
                aria-label={`${r.emoji} ${r.count}${r.me ? ', you reacted; remove' : ', add yours'}`}
                title={r.users.map(name).join(', ') + (r.count > r.users.length ? ` and ${r.count - r.users.length} more` : '')}
                tabIndex={tab}
                disabled={!canChange}
                onClick={() => toggle(r.emoji)}
              >
                <span class="reaction-emoji">{r.emoji}</span> <span class="count">{r.count}</span>
              </button>
            ))}
          </div>
        )}
        {place === 'channel' && !m.thread && (m.reply_count ?? 0) > 0 && (
          <button type="button" class="thread-summary" tabIndex={tab} onClick={() => app.openThread(channel, m.id)}>
            {m.reply_count} {m.reply_count === 1 ? 'reply' : 'replies'}
            {m.last_reply_ts && <span class="hint"> · last {formatTime(m.last_reply_ts)}</span>}
          </button>
        )}
      </div>
      {canChange && !editing && !picker && (
        <div class="toolbar" role="toolbar" aria-label="Message actions">
          <button type="button" class="icon-button small" tabIndex={tab} aria-label="Add reaction" title="Add reaction (r)" onClick={() => setPicker(true)}>
            <Icon name="react" />
          </button>
          {canThread && (
            <button type="button" class="icon-button small" tabIndex={tab} aria-label="Reply in thread" title="Reply in thread (t)" onClick={() => app.openThread(channel, threadRoot)}>
              <Icon name="thread" />
            </button>
          )}
          {mine && (
            <button type="button" class="icon-button small" tabIndex={tab} aria-label="Edit message" title="Edit (e)" onClick={() => setEditing(true)}>
              <Icon name="edit" />
            </button>
          )}
          {mine && (
            <button type="button" class="icon-button small" tabIndex={tab} aria-label="Delete message" title="Delete (Delete)" onClick={() => setConfirming(true)}>
              <Icon name="trash" />
            </button>
          )}
        </div>
      )}
      {picker && (
        <EmojiPicker
          onPick={(emoji) => {
            setPicker(false);
            focusSelf();
            toggle(emoji);
          }}
          onClose={() => {
            setPicker(false);
            focusSelf();
          }}
        />
      )}
      {confirming && (
        <ConfirmDialog
          title="Delete message?"
          body="Everyone will see “message deleted” in its place. This cannot be undone."
          confirm="Delete"
          onCancel={() => setConfirming(false)}
          onConfirm={() => {
            setConfirming(false);
            app.client.delete(channel, m.id).catch(report('Not deleted'));
          }}
        />
      )}
    </article>
  );
}

/** Editing in place: Enter saves, Shift+Enter is a new line, Escape cancels (null). */
function EditBox({ text, onDone }: { text: string; onDone: (text: string | null) => void }) {
  const ref = useRef<HTMLTextAreaElement>(null);
  const [value, setValue] = useState(text);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.focus();
    el.setSelectionRange(el.value.length, el.value.length);
  }, []);
  return (
    <div class="edit-box">
      <textarea
        ref={ref}
        aria-label="Edit message"
        value={value}
        rows={Math.min(8, value.split('\n').length)}
        onInput={(e) => setValue(e.currentTarget.value)}
        onKeyDown={(e) => {
          e.stopPropagation();
          if (e.key === 'Escape') {
            e.preventDefault();
            onDone(null);
          } else if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            onDone(value.trim() === '' ? null : value);
          }
        }}
      />
      <p class="hint small">Enter to save · Escape to cancel</p>
    </div>
  );
}

/** A stable colour per user, so authors are told apart at a glance. */
function avatarColour(user: string): string {
  let h = 0;
  for (const ch of user) h = (h * 31 + ch.codePointAt(0)!) % 360;
  return `hsl(${h} 55% 45%)`;
}
