// @palaver/client: the public API (the contract the web app codes against).

export { PalaverClient } from './client.js';
export type { ClientOptions, ClientEvents, SendOptions } from './client.js';
export { PalaverError } from './errors.js';
export { MemoryStorage, LocalStorage } from './storage.js';
export type { Storage } from './storage.js';
export type { RestClient } from './rest.js';
export type { WebSocketConstructor, WebSocketLike } from './transport.js';
export type {
  Ack,
  ChannelEvent,
  ChannelInfo,
  ChannelKind,
  ChannelSummary,
  ChannelView,
  ConnectionState,
  ErrorCode,
  ErrorFrame,
  EventKind,
  FileRecord,
  FileRef,
  FollowedThread,
  GapFrame,
  HelloFrame,
  HistoryPage,
  JoinedFrame,
  Message,
  Notification,
  NotificationFrame,
  PresenceFrame,
  PresenceStatus,
  Reaction,
  ReceiptFrame,
  SearchResult,
  ThreadPage,
  ThreadView,
  TypingFrame,
  UploadTicket,
  User,
} from './types.js';
