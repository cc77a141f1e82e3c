// The REST side (docs/openapi.yaml): typed wrappers of the routes the SDK and apps use, with
// the bearer token from the token callback and JSON error bodies turned into PalaverError.
// The base URL is asked for on every call, so REST follows the pod the WebSocket moved to.

import { PalaverError, type ErrorBody } from './errors.js';
import type {
  ChannelSummary,
  FileRecord,
  FileRef,
  FollowedThread,
  HistoryPage,
  Notification,
  SearchResult,
  ThreadPage,
  UploadTicket,
  User,
} from './types.js';

export type Query = Record<string, string | number | boolean | undefined>;

export interface RestClient {
  get<T>(path: string, query?: Record<string, string | number | undefined>): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
  /** Additions to the contract, for the routes without a wrapper. */
  put<T>(path: string, body?: unknown): Promise<T>;
  patch<T>(path: string, body?: unknown): Promise<T>;
  del<T>(path: string): Promise<T>;

  publicChannels(cursor?: string): Promise<{ channels: ChannelSummary[]; next_cursor: string | null }>;
  createChannel(name: string, kind: 'public' | 'private'): Promise<ChannelSummary>;
  join(channel: string): Promise<void>;
  leave(channel: string): Promise<void>;
  /** One other user: their DM; 2 to 8: the group DM of that set. */
  openDm(users: string[]): Promise<ChannelSummary>;
  users(q?: string, cursor?: string): Promise<{ users: User[]; next_cursor: string | null }>;
  user(id: string): Promise<User>;
  threads(): Promise<{ threads: FollowedThread[] }>;
  search(q: string, cursor?: string): Promise<{ results: SearchResult[]; next_cursor: string | null }>;
  /** The inbox, newest first (see the implementation: no paging on the server yet). */
  notifications(cursor?: string): Promise<{ notifications: Notification[]; next_cursor: string | null }>;
  /** Marks the given entries read, or all of them without ids (ids are integers on the wire;
   *  strings of digits are accepted too). */
  markNotificationsRead(ids?: (number | string)[]): Promise<void>;
  /** POST /v1/files, PUT the bytes to the presigned URL, POST /v1/files/{id}/complete. */
  upload(channel: string, data: Blob | Uint8Array, meta: { name: string; contentType: string }): Promise<FileRef>;
  /** A presigned download URL (valid for minutes), of the file or its thumbnail. */
  fileUrl(id: string, thumbnail?: boolean): Promise<string>;

  /** History: `after`/`before` exclusive; used by the client for hole filling and loadOlder. */
  events(channel: string, q: { after?: number; before?: number; limit?: number }): Promise<HistoryPage>;
  threadPage(channel: string, root: string, cursor?: string, limit?: number): Promise<ThreadPage>;
}

export interface RestConfig {
  /** The current base URL (http(s)://host[/prefix], no trailing slash). */
  base: () => string;
  token: () => string | Promise<string>;
  fetch: typeof fetch;
}

const enc = encodeURIComponent;

export class HttpRestClient implements RestClient {
  constructor(private readonly cfg: RestConfig) {}

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, query);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, undefined, body);
  }

  put<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('PUT', path, undefined, body);
  }

  patch<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('PATCH', path, undefined, body);
  }

  del<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  publicChannels(cursor?: string) {
    return this.get<{ channels: ChannelSummary[]; next_cursor: string | null }>('/v1/channels', {
      scope: 'public',
      cursor,
    });
  }

  createChannel(name: string, kind: 'public' | 'private') {
    return this.post<ChannelSummary>('/v1/channels', { name, kind });
  }

  async join(channel: string): Promise<void> {
    await this.post(`/v1/channels/${enc(channel)}/join`);
  }

  async leave(channel: string): Promise<void> {
    await this.post(`/v1/channels/${enc(channel)}/leave`);
  }

  openDm(users: string[]) {
    return this.post<ChannelSummary>('/v1/dms', users.length === 1 ? { user: users[0] } : { users });
  }

  users(q?: string, cursor?: string) {
    return this.get<{ users: User[]; next_cursor: string | null }>('/v1/users', { q, cursor });
  }

  user(id: string) {
    return this.get<User>(`/v1/users/${enc(id)}`);
  }

  threads() {
    return this.get<{ threads: FollowedThread[] }>('/v1/threads');
  }

  search(q: string, cursor?: string) {
    return this.get<{ results: SearchResult[]; next_cursor: string | null }>('/v1/search', { q, cursor });
  }

  /** The newest 50 entries: the route has no cursor (it refuses unknown parameters), so
   *  `cursor` is not sent and next_cursor is always null. */
  async notifications(_cursor?: string) {
    const page = await this.get<{ notifications: Notification[] }>('/v1/notifications');
    return { notifications: page.notifications, next_cursor: null };
  }

  async markNotificationsRead(ids?: (number | string)[]): Promise<void> {
    await this.post('/v1/notifications/read', ids && ids.length > 0 ? { ids: ids.map(Number) } : { all: true });
  }

  async upload(channel: string, data: Blob | Uint8Array, meta: { name: string; contentType: string }): Promise<FileRef> {
    const size = data instanceof Uint8Array ? data.byteLength : data.size;
    const ticket = await this.post<UploadTicket>('/v1/files', {
      channel,
      name: meta.name,
      size,
      content_type: meta.contentType,
    });
    // The bytes go straight to the object store: its presigned URL is the credential, so no
    // Authorization header (the store would reject a second one).
    let put: Response;
    try {
      put = await this.cfg.fetch(ticket.upload_url, {
        method: ticket.upload_method || 'PUT',
        headers: ticket.upload_headers,
        body: data as BodyInit,
      });
    } catch (e) {
      throw new PalaverError('unavailable', `upload of ${meta.name} failed: ${String(e)}`, { cause: e });
    }
    if (!put.ok) {
      throw new PalaverError('unavailable', `the object store answered ${put.status} to the upload`, {
        status: put.status,
      });
    }
    const done = await this.post<FileRecord>(`/v1/files/${enc(ticket.id)}/complete`);
    return fileRefOf(done);
  }

  async fileUrl(id: string, thumbnail = false): Promise<string> {
    const link = await this.get<{ url: string }>(`/v1/files/${enc(id)}${thumbnail ? '/thumbnail' : ''}`, {
      redirect: 'false',
    });
    return link.url;
  }

  events(channel: string, q: { after?: number; before?: number; limit?: number }) {
    return this.get<HistoryPage>(`/v1/channels/${enc(channel)}/events`, q);
  }

  threadPage(channel: string, root: string, cursor?: string, limit?: number) {
    return this.get<ThreadPage>(`/v1/channels/${enc(channel)}/threads/${enc(root)}`, { cursor, limit });
  }

  private async request<T>(method: string, path: string, query?: Query, body?: unknown): Promise<T> {
    const url = new URL(this.cfg.base() + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    let res = await this.send(method, url, body, await this.cfg.token());
    // The token callback is the refresh hook: a 401 asks it once more (it may have expired
    // between the call and the request).
    if (res.status === 401) res = await this.send(method, url, body, await this.cfg.token());
    const text = await res.text();
    let json: unknown = undefined;
    if (text.length > 0) {
      try {
        json = JSON.parse(text);
      } catch {
        if (res.ok) throw new PalaverError('protocol', `${method} ${path}: the answer is not JSON`, { status: res.status });
      }
    }
    if (!res.ok) {
      if (json && typeof json === 'object') {
        let body = json as ErrorBody;
        // Retry-After is whole seconds; retry_after_ms is the precise one when both exist.
        const retryAfter = Number(res.headers.get('retry-after'));
        if (body.retry_after_ms === undefined && retryAfter > 0) body = { ...body, retry_after_ms: retryAfter * 1000 };
        throw PalaverError.from(body, res.status);
      }
      throw new PalaverError(res.status >= 500 ? 'unavailable' : 'bad_request', `${method} ${path}: HTTP ${res.status}`, {
        status: res.status,
      });
    }
    return json as T;
  }

  private async send(method: string, url: URL, body: unknown, token: string): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
    const init: RequestInit = { method, headers };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    try {
      return await this.cfg.fetch(url, init);
    } catch (e) {
      // fetch rejects only when no answer arrived (refused, reset, DNS): a retryable condition.
      throw new PalaverError('unavailable', `${method} ${url.pathname}: ${String(e)}`, { cause: e });
    }
  }
}

function fileRefOf(f: FileRecord): FileRef {
  const ref: FileRef = { id: f.id, name: f.name, content_type: f.content_type, size: f.size, url: f.url };
  if (f.width !== undefined) ref.width = f.width;
  if (f.height !== undefined) ref.height = f.height;
  if (f.thumbnail !== undefined) ref.thumbnail = f.thumbnail;
  return ref;
}
