// The signed-in session: which token the app uses and where it came from.
//
// A token arrives in one of three ways: the development sign-in (`POST /v1/dev/token`, only on
// servers with a development secret), `?token=<jwt>` in the page URL (how a deployment's OIDC
// redirect hands one over), or pasted by hand. It is kept in sessionStorage, so it lives as long
// as the tab and is never written where other tabs or later visits would find it. The app reads
// the user and workspace from the token's claims (signature checking is the server's job).

import { apiUrl } from './server';

const TOKEN_KEY = 'palaver:token';
/** Why the last session ended, shown once on the sign-in page. */
const ENDED_KEY = 'palaver:ended';

export interface Session {
  token: string;
  user: string;
  workspace: string;
  /** Expiry, in ms since the epoch (absent: the token has none). */
  expiresAt?: number;
}

/** The claims of a JWT, or null when it is not one. */
function claims(token: string): Record<string, unknown> | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
    const value: unknown = JSON.parse(json);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The session a token stands for; throws with a readable reason when it cannot be used. */
export function parseToken(raw: string): Session {
  const token = raw.trim();
  const c = claims(token);
  if (!c) throw new Error('That is not a token (a JWT has three dot-separated parts).');
  if (typeof c.sub !== 'string' || typeof c.workspace !== 'string') {
    throw new Error('The token names no user (sub) or workspace.');
  }
  const expiresAt = typeof c.exp === 'number' ? c.exp * 1000 : undefined;
  if (expiresAt !== undefined && expiresAt <= Date.now()) throw new Error('The token has expired.');
  return { token, user: c.sub, workspace: c.workspace, expiresAt };
}

/** The stored session, or null (none, or it expired: then the sign-in page says so). */
export function currentSession(): Session | null {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return null;
  try {
    return parseToken(token);
  } catch {
    endSession('Your session has expired. Sign in again.');
    return null;
  }
}

export function storeToken(raw: string): Session {
  const s = parseToken(raw);
  sessionStorage.setItem(TOKEN_KEY, s.token);
  sessionStorage.removeItem(ENDED_KEY);
  return s;
}

/** Forgets the token; `reason` is shown on the sign-in page. */
export function endSession(reason?: string): void {
  sessionStorage.removeItem(TOKEN_KEY);
  if (reason) sessionStorage.setItem(ENDED_KEY, reason);
}

/** Why the previous session ended (read once). */
export function takeEndReason(): string | null {
  const r = sessionStorage.getItem(ENDED_KEY);
  sessionStorage.removeItem(ENDED_KEY);
  return r;
}

/**
 * Takes `?token=` from the address bar: stores it and removes it from the URL (and so from the
 * history, bookmarks and Referer headers). Returns an error message when the token is unusable.
 */
export function adoptTokenFromUrl(): string | null {
  const url = new URL(location.href);
  const token = url.searchParams.get('token');
  if (token === null) return null;
  url.searchParams.delete('token');
  history.replaceState(history.state, '', url.pathname + url.search + url.hash);
  try {
    storeToken(token);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

interface ApiError {
  code?: string;
  message?: string;
}

async function errorMessage(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as ApiError;
    return body.message ?? `HTTP ${res.status}`;
  } catch {
    return `HTTP ${res.status}`;
  }
}

/**
 * The development sign-in's workspaces, or null when the server has none (404: it runs without
 * a development secret, as production does).
 */
export async function devWorkspaces(): Promise<string[] | null> {
  const res = await fetch(apiUrl('v1/dev'));
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(await errorMessage(res));
  const body = (await res.json()) as { workspaces: string[] };
  return body.workspaces;
}

/** Mints a development token for `user` in `workspace` and stores it. */
export async function devSignIn(workspace: string, user: string, name?: string): Promise<Session> {
  const res = await fetch(apiUrl('v1/dev/token'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(name ? { workspace, user, name } : { workspace, user }),
  });
  if (!res.ok) throw new Error(await errorMessage(res));
  const body = (await res.json()) as { token: string };
  return storeToken(body.token);
}

/** User ids the server accepts (protocol: 1–64 of A-Z a-z 0-9 - _ . @). */
export const USER_ID_PATTERN = '[A-Za-z0-9\\-_.@]{1,64}';
