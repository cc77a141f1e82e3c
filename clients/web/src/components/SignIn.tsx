// The sign-in page. On a server with a development secret (GET /v1/dev answers) anyone can pick
// a user name, and the workspace when there are several. Everywhere, a token can be pasted; a
// real deployment hands one over with `?token=` after its own (OIDC) sign-in, which this page
// only explains.

import { useEffect, useState } from 'preact/hooks';
import { devSignIn, devWorkspaces, storeToken, USER_ID_PATTERN, type Session } from '../session';
import { ThemeToggle } from './ThemeToggle';

const LAST_USER_KEY = 'palaver-web:dev-user';
const LAST_WORKSPACE_KEY = 'palaver-web:dev-workspace';

type Dev = { state: 'loading' } | { state: 'off' } | { state: 'on'; workspaces: string[] } | { state: 'error'; message: string };

export function SignIn({ notice, onSignedIn }: { notice: string | null; onSignedIn: (s: Session) => void }) {
  const [dev, setDev] = useState<Dev>({ state: 'loading' });

  useEffect(() => {
    devWorkspaces().then(
      (ws) => setDev(ws === null ? { state: 'off' } : { state: 'on', workspaces: ws }),
      (e: Error) => setDev({ state: 'error', message: e.message }),
    );
  }, []);

  return (
    <main class="signin">
      <div class="signin-card">
        <header class="signin-head">
          <h1>Palaver</h1>
          <ThemeToggle />
        </header>
        {notice && (
          <p class="notice" role="alert">
            {notice}
          </p>
        )}
        {dev.state === 'loading' && <p aria-live="polite">Looking for a development sign-in…</p>}
        {dev.state === 'on' && <DevForm workspaces={dev.workspaces} onSignedIn={onSignedIn} />}
        {dev.state === 'off' && (
          <p>
            This server signs people in through your organisation (an OIDC redirect set up by whoever runs it), which
            brings you here with a token. If you have one, paste it below.
          </p>
        )}
        {dev.state === 'error' && (
          <p class="error" role="alert">
            The server did not answer: {dev.message}
          </p>
        )}
        {dev.state !== 'loading' && <TokenForm open={dev.state !== 'on'} onSignedIn={onSignedIn} />}
      </div>
    </main>
  );
}

function DevForm({ workspaces, onSignedIn }: { workspaces: string[]; onSignedIn: (s: Session) => void }) {
  const [user, setUser] = useState(() => localStorage.getItem(LAST_USER_KEY) ?? '');
  const [name, setName] = useState('');
  const [workspace, setWorkspace] = useState(() => {
    const last = localStorage.getItem(LAST_WORKSPACE_KEY);
    return last && workspaces.includes(last) ? last : (workspaces.find((w) => w === 'demo') ?? workspaces[0] ?? '');
  });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  if (workspaces.length === 0) {
    return <p class="error">The server has a development sign-in but no workspace to sign in to.</p>;
  }

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await devSignIn(workspace, user.trim(), name.trim() || undefined);
      localStorage.setItem(LAST_USER_KEY, s.user);
      localStorage.setItem(LAST_WORKSPACE_KEY, s.workspace);
      onSignedIn(s);
    } catch (err) {
      setError((err as Error).message);
      setBusy(false);
    }
  };

  return (
    <form class="stack" onSubmit={submit} aria-labelledby="dev-title">
      <h2 id="dev-title">Development sign-in</h2>
      <p class="hint">This server runs with a development secret: pick any user name.</p>
      <label>
        User name
        <input
          name="user"
          required
          autoFocus
          pattern={USER_ID_PATTERN}
          title="1 to 64 letters, digits, - _ . @"
          autoComplete="username"
          value={user}
          onInput={(e) => setUser(e.currentTarget.value)}
        />
      </label>
      <label>
        <span>
          Display name <span class="hint">(optional)</span>
        </span>
        <input name="name" maxLength={80} autoComplete="name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
      </label>
      {workspaces.length > 1 ? (
        <label>
          Workspace
          <select name="workspace" value={workspace} onChange={(e) => setWorkspace(e.currentTarget.value)}>
            {workspaces.map((w) => (
              <option key={w} value={w}>
                {w}
              </option>
            ))}
          </select>
        </label>
      ) : (
        <p class="hint">
          Workspace: <strong>{workspace}</strong>
        </p>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" class="primary" disabled={busy}>
        {busy ? 'Signing in…' : 'Sign in'}
      </button>
    </form>
  );
}

function TokenForm({ open, onSignedIn }: { open: boolean; onSignedIn: (s: Session) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);

  const submit = (e: Event) => {
    e.preventDefault();
    try {
      onSignedIn(storeToken(token));
    } catch (err) {
      setError((err as Error).message);
    }
  };

  return (
    <details class="token-form" open={open}>
      <summary>Sign in with a token</summary>
      <form class="stack" onSubmit={submit}>
        <label>
          Token (JWT)
          <textarea
            name="token"
            rows={4}
            required
            spellcheck={false}
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
          />
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit">Use this token</button>
      </form>
    </details>
  );
}
