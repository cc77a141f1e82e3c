// The reaction picker: a grid of common emoji (arrow keys move, Enter or a click picks) and a
// field for any `:short_code:`. Escape closes it; the opener gets focus back. It opens below
// its message, or above when below would leave the scrolling list (the newest messages).

import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { COMMON_EMOJI, shortCode } from '../emoji';

const COLUMNS = 6;

export function EmojiPicker({ onPick, onClose }: { onPick: (emoji: string) => void; onClose: () => void }) {
  const self = useRef<HTMLDivElement>(null);
  const grid = useRef<HTMLDivElement>(null);
  const [code, setCode] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [above, setAbove] = useState(false);

  useLayoutEffect(() => {
    const el = self.current;
    const list = el?.closest('.messages, .thread-panel');
    if (el && list && el.getBoundingClientRect().bottom > list.getBoundingClientRect().bottom) setAbove(true);
  }, []);

  useEffect(() => {
    grid.current?.querySelector<HTMLButtonElement>('button')?.focus();
  }, []);

  const move = (e: KeyboardEvent) => {
    const buttons = [...(grid.current?.querySelectorAll<HTMLButtonElement>('button') ?? [])];
    const at = buttons.indexOf(document.activeElement as HTMLButtonElement);
    if (at < 0) return;
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: COLUMNS, ArrowUp: -COLUMNS }[e.key];
    if (step === undefined) return;
    e.preventDefault();
    buttons[Math.min(buttons.length - 1, Math.max(0, at + step))].focus();
  };

  const submitCode = (e: Event) => {
    e.preventDefault();
    const c = shortCode(code);
    if (!c) {
      setError('A short code is 1 to 64 of a-z 0-9 _ + -, like :tada:');
      return;
    }
    onPick(c);
  };

  return (
    <div
      ref={self}
      class={above ? 'emoji-picker above' : 'emoji-picker'}
      role="dialog"
      aria-label="Add a reaction"
      onKeyDown={(e) => {
        if (e.key === 'Escape') {
          e.preventDefault();
          e.stopPropagation();
          onClose();
        }
      }}
    >
      <div class="emoji-grid" ref={grid} role="group" aria-label="Common emoji" onKeyDown={move}>
        {COMMON_EMOJI.map(({ emoji, name }) => (
          <button type="button" key={emoji} aria-label={name} title={name} onClick={() => onPick(emoji)}>
            {emoji}
          </button>
        ))}
      </div>
      <form class="emoji-code" onSubmit={submitCode}>
        <input
          aria-label="Emoji short code"
          placeholder=":short_code:"
          value={code}
          onInput={(e) => {
            setCode(e.currentTarget.value);
            setError(null);
          }}
        />
        <button type="submit">Add</button>
      </form>
      {error && (
        <p class="error small" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
