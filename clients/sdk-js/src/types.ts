// Wire shapes (docs/protocol.md, docs/openapi.yaml) and the folded views the SDK exposes.
// Field names are the wire's; optional fields are the ones the server may leave out. Clients
// must ignore what they do not know, so every frame type is open to extra fields.

import type { PalaverError } from './errors.js';

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export type ChannelKind = 'public' | 'private' | 'dm' | 'group_dm';

/** A channel as `hello` and `joined` list it, kept current by the client (last_seq, unread, mentions). */
export interface ChannelInfo {
  id: string;
  name: string;
  kind: ChannelKind;
  last_seq: number;
  read_seq: number;
  unread: number;
  mentions: number;
}

export interface HelloFrame {
  t: 'hello';
  session: string;
  user: string;
  workspace: string;
  heartbeat_ms: number;
  channels: ChannelInfo[];
}

/** The event kinds of v1 (docs/protocol.md "event kinds"); test/protocol-doc.test.ts checks them against the doc. */
export const EVENT_KINDS = [
  'message',
  'member_join',
  'member_leave',
  'edit',
  'delete',
  'reaction_add',
  'reaction_remove',
  'channel_update',
] as const;

export type EventKind = (typeof EVENT_KINDS)[number];

/** Every server frame type the SDK dispatches: hello (the session's first frame) and the keys of
 *  the client's frame table, which must be exactly the rest (PalaverClient's frameHandlers is a
 *  Record over these, so the list cannot go stale); checked against docs/protocol.md by
 *  test/protocol-doc.test.ts. */
export const SERVER_FRAME_TYPES = [
  'hello',
  'event',
  'gap',
  'ack',
  'error',
  'joined',
  'typing',
  'presence',
  'receipt',
  'notification',
  'pong',
] as const;

export type ServerFrameType = (typeof SERVER_FRAME_TYPES)[number];

export interface Reaction {
  emoji: string;
  count: number;
  me: boolean;
  /** The first five who reacted. */
  users: string[];
}

export interface FileRef {
  id: string;
  name: string;
  content_type: string;
  size: number;
  width?: number;
  height?: number;
  thumbnail?: boolean;
  url?: string;
}

/** An `event` frame, or an event of a REST history page (the same shape). */
export interface ChannelEvent {
  t?: 'event';
  channel: string;
  seq: number;
  /** One of EventKind in v1; later versions may add kinds, which the SDK passes through. */
  kind: EventKind | (string & {});
  id: string;
  user: string;
  cmid?: string | null;
  text?: string | null;
  ts: string;
  thread?: string | null;
  also_channel?: boolean;
  target?: string;
  emoji?: string;
  changes?: Record<string, unknown>;
  edited_at?: string;
  deleted?: boolean;
  state_seq?: number;
  reactions?: Reaction[];
  reply_count?: number;
  last_reply_ts?: string | null;
  reply_users?: string[];
  reply_users_count?: number;
  files?: FileRef[] | null;
}

export interface GapFrame {
  t: 'gap';
  channel: string;
  from: number;
  to: number;
}

export interface TypingFrame {
  t: 'typing';
  channel: string;
  thread?: string | null;
  user: string;
  ttl_ms: number;
}

export type PresenceStatus = 'online' | 'away' | 'offline';

export interface PresenceFrame {
  t: 'presence';
  user: string;
  status: PresenceStatus;
  last_seen: string | null;
}

export interface ReceiptFrame {
  t: 'receipt';
  channel: string;
  user: string;
  seq: number;
}

export interface NotificationFrame {
  t: 'notification';
  id: number;
  kind: 'mention' | 'dm' | 'thread';
  channel: string;
  seq: number;
  ts: string;
}

export type ErrorCode =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'rate_limited'
  | 'too_large'
  | 'conflict'
  | 'unavailable'
  | 'internal';

export interface ErrorFrame {
  t: 'error';
  /** A protocol ErrorCode; the SDK's own conditions use 'closed', 'timeout' and 'protocol'. */
  code: ErrorCode | (string & {});
  message: string;
  retry_after_ms?: number;
  ref?: unknown;
}

export interface JoinedFrame {
  t: 'joined';
  channel: ChannelInfo;
}

/** The answer to send, edit, delete, react, unreact. `seq` and `ts` are absent only for a no-op change. */
export interface Ack {
  channel: string;
  id: string;
  seq?: number;
  ts?: string;
  noop?: boolean;
}

/** One message of a view, with its folded state (the fold rule of docs/protocol.md). */
export interface Message {
  id: string;
  seq: number;
  user: string;
  ts: string;
  text: string | null;
  cmid?: string;
  thread?: string;
  also_channel?: boolean;
  edited_at?: string;
  deleted: boolean;
  reactions: Reaction[];
  reply_count?: number;
  last_reply_ts?: string;
  reply_users?: string[];
  reply_users_count?: number;
  files?: FileRef[];
  /** Seq of the last event that changed the message (its own seq at first). 0 for pending sends. */
  state_seq: number;
  /** A local send not acked yet (id is its cmid, seq 0). */
  pending?: boolean;
  /** Why the server refused a local send (it will not be retried). */
  failed?: PalaverError;
}

export interface ChannelView {
  id: string;
  info: ChannelInfo;
  /** Top-level messages (and replies with also_channel) in seq order, each with its folded state;
   *  local sends not acked yet at the end with pending: true (failed: the error when refused). */
  messages: Message[];
  hasOlder: boolean;
  /** Users typing in the channel itself now (ttl honoured). */
  typing: string[];
}

export interface ThreadView {
  channel: string;
  root: Message | undefined;
  /** Replies in seq order; local replies not acked yet at the end with pending: true. */
  replies: Message[];
  /** Users typing in this thread now (an addition to the contract). */
  typing: string[];
}

// REST shapes (docs/openapi.yaml).

export interface ChannelSummary {
  id: string;
  name: string;
  kind: ChannelKind;
  last_seq: number;
  topic?: string;
  purpose?: string;
  archived?: boolean;
  member_count?: number;
  created_by?: string | null;
}

export interface User {
  id: string;
  display_name: string | null;
  avatar_url: string | null;
  role: 'owner' | 'admin' | 'member' | 'guest';
}

export interface FollowedThread {
  channel: string;
  root: string;
  reply_count: number;
  last_reply_ts: string | null;
  read_seq: number;
  unread: number;
}

export interface SearchResult {
  channel: string;
  seq: number;
  id: string;
  user: string;
  text: string;
  snippet: string;
  ts: string;
  thread: string | null;
}

export interface Notification {
  id: number;
  user_id: string;
  channel: string;
  seq: number;
  kind: 'mention' | 'dm' | 'thread';
  created_at: string;
  read_at: string | null;
}

/** A file record (POST /v1/files, POST /v1/files/{id}/complete). */
export interface FileRecord extends FileRef {
  url: string;
  channel: string;
  state: 'pending' | 'ready';
  message?: string;
  created_at: string;
}

export interface UploadTicket extends FileRecord {
  upload_url: string;
  upload_method: 'PUT';
  upload_headers: Record<string, string>;
  expires_at: string;
}

export interface HistoryPage {
  events: ChannelEvent[];
  has_more: boolean;
}

export interface ThreadPage {
  root: ChannelEvent | null;
  replies: ChannelEvent[];
  next_cursor: string | null;
}
