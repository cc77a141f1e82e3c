// The light/dark toggle: cycles the system's choice, light and dark.

import { useState } from 'preact/hooks';
import { applyTheme, nextTheme, savedTheme, type Theme } from '../theme';
import { Icon, type IconName } from './Icon';

const LABEL: Record<Theme, string> = { system: 'Theme: system', light: 'Theme: light', dark: 'Theme: dark' };
const ICON: Record<Theme, IconName> = { system: 'system', light: 'sun', dark: 'moon' };

export function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(savedTheme);
  return (
    <button
      type="button"
      class="icon-button"
      aria-label={`${LABEL[theme]} (change)`}
      title={LABEL[theme]}
      onClick={() => {
        const t = nextTheme(theme);
        applyTheme(t);
        setTheme(t);
      }}
    >
      <Icon name={ICON[theme]} />
    </button>
  );
}
