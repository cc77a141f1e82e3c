// The reaction picker's emoji, and what the server accepts as a reaction: one Unicode emoji or a
// `:short_code:` (protocol: 1–64 of a-z 0-9 _ + -, between colons).

export const COMMON_EMOJI: { emoji: string; name: string }[] = [
  { emoji: '👍', name: 'thumbs up' },
  { emoji: '👎', name: 'thumbs down' },
  { emoji: '❤️', name: 'heart' },
  { emoji: '😂', name: 'tears of joy' },
  { emoji: '😄', name: 'smile' },
  { emoji: '😮', name: 'surprised' },
  { emoji: '😢', name: 'crying' },
  { emoji: '😡', name: 'angry' },
  { emoji: '🎉', name: 'party' },
  { emoji: '🙏', name: 'thanks' },
  { emoji: '👀', name: 'eyes' },
  { emoji: '🔥', name: 'fire' },
  { emoji: '✅', name: 'check mark' },
  { emoji: '❌', name: 'cross mark' },
  { emoji: '👏', name: 'clapping' },
  { emoji: '🚀', name: 'rocket' },
  { emoji: '💯', name: 'hundred' },
  { emoji: '🤔', name: 'thinking' },
  { emoji: '🙌', name: 'raised hands' },
  { emoji: '👋', name: 'wave' },
  { emoji: '💡', name: 'idea' },
  { emoji: '⚠️', name: 'warning' },
  { emoji: '🐛', name: 'bug' },
  { emoji: '☕', name: 'coffee' },
];

const SHORT_CODE = /^:[a-z0-9_+-]{1,64}:$/;

/** The reaction a typed entry stands for (`tada` and `:tada:` alike), or null if it is not one. */
export function shortCode(entry: string): string | null {
  const t = entry.trim().toLowerCase();
  if (t === '') return null;
  const code = t.startsWith(':') ? t : `:${t}:`;
  return SHORT_CODE.test(code) ? code : null;
}
