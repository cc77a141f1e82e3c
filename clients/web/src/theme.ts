// Light, dark or the system's choice. The system's is pure CSS (prefers-color-scheme); an
// explicit choice sets data-theme on <html> and is remembered in localStorage.

export type Theme = 'system' | 'light' | 'dark';

const KEY = 'palaver-web:theme';

export function savedTheme(): Theme {
  const t = localStorage.getItem(KEY);
  return t === 'light' || t === 'dark' ? t : 'system';
}

export function applyTheme(t: Theme): void {
  if (t === 'system') {
    delete document.documentElement.dataset.theme;
    localStorage.removeItem(KEY);
  } else {
    document.documentElement.dataset.theme = t;
    localStorage.setItem(KEY, t);
  }
}

/** The next theme of the toggle: system → light → dark → system. */
export function nextTheme(t: Theme): Theme {
  return t === 'system' ? 'light' : t === 'light' ? 'dark' : 'system';
}
