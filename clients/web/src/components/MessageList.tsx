// A list of messages (a channel's, or a thread's replies): day separators, consecutive messages
// of one author grouped under one header, and a roving keyboard focus (↑/↓ between messages,
// Home/End, Escape back to the composer). The channel list also pages history in as the reader
// scrolls up, keeps its place while older messages arrive above, follows new messages while
// the reader is at the bottom, and reports when the bottom is in view (to mark the channel read).

import type { ComponentChildren } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { Message } from '@palaver/client';
import { dayKey, formatDay } from '../format';
import { MessageItem, type Place } from './MessageItem';

/** Consecutive messages of one author within this long share a header. */
const GROUP_MS = 5 * 60 * 1000;
/** Older history is asked for when the reader is this close to the top. */
const LOAD_MARGIN_PX = 400;
/** The bottom counts as in view within this distance (rounding, a partial last line). */
const BOTTOM_SLACK_PX = 40;

export function MessageList(props: {
  channel: string;
  messages: Message[];
  place: Exclude<Place, 'root'>;
  label: string;
  /** The channel list: there is more history above. */
  hasOlder?: boolean;
  /** Pages older history in (resolves when it is in the view). */
  loadOlder?: () => Promise<unknown>;
  /** Called after each render and scroll with whether the newest message is in view. */
  onBottom?: (atBottom: boolean) => void;
  /** Where Escape sends the focus. */
  composerId: string;
  /** Shown above the first message when the whole history is loaded. */
  start?: ComponentChildren;
}) {
  const { messages } = props;
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const loading = useRef(false);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [activeId, setActiveId] = useState<string | null>(null);
  const log = useRef<HTMLDivElement>(null);
  // Where the oldest message was, to keep the reader's place when history is prepended: its
  // offset and the scroll position, as of the last render or scroll.
  const before = useRef<{ first?: string; anchor: number; top: number }>({ anchor: 0, top: 0 });

  const active = messages.some((m) => m.id === activeId) ? activeId : (messages[messages.length - 1]?.id ?? null);

  const maybeLoadOlder = () => {
    const el = scroller.current;
    if (!el || !props.hasOlder || !props.loadOlder || loading.current) return;
    if (el.scrollTop > LOAD_MARGIN_PX) return;
    loading.current = true;
    props.loadOlder().then(
      () => {
        loading.current = false;
        setLoadError(null);
        // The new page may still not fill the view: go on from the next render.
        requestAnimationFrame(maybeLoadOlder);
      },
      (e: Error) => {
        loading.current = false;
        setLoadError(e.message);
      },
    );
  };

  const snapshot = () => {
    const el = scroller.current;
    if (!el) return;
    const first = el.querySelector<HTMLElement>('article.message');
    before.current = { first: first?.dataset.mid, anchor: first?.offsetTop ?? 0, top: el.scrollTop };
  };

  const report = () => {
    const el = scroller.current;
    if (!el) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight <= BOTTOM_SLACK_PX;
    props.onBottom?.(atBottom.current);
  };

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const prev = before.current;
    const anchor = prev.first !== undefined && prev.first !== messages[0]?.id ? findMessage(el, prev.first) : null;
    if (anchor) {
      // Older messages arrived above: what the reader was looking at stays where it was.
      el.scrollTop = prev.top + (anchor.offsetTop - prev.anchor);
    } else if (atBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
    snapshot();
    report();
    maybeLoadOlder();
  });

  // Content that grows without a render (an image loading) keeps the newest message in view
  // for a reader who was at the bottom.
  useEffect(() => {
    const el = scroller.current;
    if (!el || !log.current) return;
    const ro = new ResizeObserver(() => {
      if (atBottom.current) el.scrollTop = el.scrollHeight;
      snapshot();
    });
    ro.observe(log.current);
    return () => ro.disconnect();
  }, []);

  const onKeyDown = (e: KeyboardEvent) => {
    const target = e.target as HTMLElement;
    if (!target.matches('article.message') || e.altKey || e.ctrlKey || e.metaKey) return;
    const items = [...(scroller.current?.querySelectorAll<HTMLElement>('article.message') ?? [])];
    const at = items.indexOf(target);
    let next: HTMLElement | undefined;
    if (e.key === 'ArrowUp') next = items[at - 1];
    else if (e.key === 'ArrowDown') next = items[at + 1];
    else if (e.key === 'Home') next = items[0];
    else if (e.key === 'End') next = items[items.length - 1];
    else if (e.key === 'Escape') {
      e.preventDefault();
      document.getElementById(props.composerId)?.focus();
      return;
    } else return;
    e.preventDefault();
    if (next) {
      next.focus();
      next.scrollIntoView({ block: 'nearest' });
    } else if (e.key === 'ArrowDown') {
      // Past the newest message: back to writing.
      document.getElementById(props.composerId)?.focus();
    }
  };

  const rows: ComponentChildren[] = [];
  messages.forEach((m, i) => {
    const prev = messages[i - 1];
    const newDay = !prev || dayKey(prev.ts) !== dayKey(m.ts);
    if (newDay) {
      rows.push(
        <div class="day" role="separator" key={`day-${dayKey(m.ts)}`}>
          <span>{formatDay(m.ts)}</span>
        </div>,
      );
    }
    const grouped =
      !newDay &&
      prev.user === m.user &&
      !prev.deleted &&
      !m.thread === !prev.thread &&
      Date.parse(m.ts) - Date.parse(prev.ts) < GROUP_MS;
    rows.push(
      <MessageItem
        // The cmid outlives the ack (a pending send's id is its cmid), so the row is kept across it.
        key={m.cmid ? `${m.user}:${m.cmid}` : m.id}
        m={m}
        channel={props.channel}
        grouped={grouped}
        active={m.id === active}
        place={props.place}
        onActivate={setActiveId}
      />,
    );
  });

  return (
    <div class="messages" ref={scroller} onScroll={() => {
        snapshot();
        report();
        maybeLoadOlder();
      }}>
      {props.place === 'channel' &&
        (props.hasOlder ? (
          <p class="history-edge hint" aria-live="polite">
            {loadError ? `Could not load earlier messages: ${loadError}` : 'Loading earlier messages…'}
          </p>
        ) : (
          <div class="history-edge">{props.start}</div>
        ))}
      <div
        ref={log}
        class="log"
        role="log"
        aria-live="polite"
        aria-relevant="additions"
        aria-label={props.label}
        onKeyDown={onKeyDown}
      >
        {rows}
      </div>
    </div>
  );
}

function findMessage(scroller: HTMLElement, id: string): HTMLElement | null {
  return scroller.querySelector<HTMLElement>(`article.message[data-mid="${CSS.escape(id)}"]`);
}
