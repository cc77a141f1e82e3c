-- Full-text search (issue 11): one row per message, written by the consumers' search indexer
-- from the event log, never on the send path (Synapse indexing inside its send transaction
-- stalled sends; Zulip indexes in the background). Its own table, so neither `events` nor the
-- send path pays for the index.
--
-- `indexed_seq` is the seq of the event whose state the row holds: the indexer writes only
-- newer states, which makes a redelivered or replayed event change nothing. A deleted message
-- keeps its row as a tombstone (no text), so a redelivered `message` event cannot bring it
-- back.
CREATE TABLE search_docs (
    message_id  text PRIMARY KEY,
    channel_id  text NOT NULL,
    -- The message's own seq and time: a result is where the client jumps to.
    seq         bigint NOT NULL,
    ts          timestamptz NOT NULL,
    user_id     text NOT NULL,
    -- A reply's thread root (NULL: a channel message).
    thread      text,
    body        text NOT NULL,
    has_link    boolean NOT NULL,
    has_file    boolean NOT NULL DEFAULT false,
    deleted     boolean NOT NULL DEFAULT false,
    indexed_seq bigint NOT NULL,
    -- Exact words (`simple`: identifiers, names, any language) and English stems (`running`
    -- finds `run`), in one vector; a query matches either.
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', body) || to_tsvector('english', body)) STORED
);
CREATE INDEX search_docs_tsv ON search_docs USING gin (tsv) WHERE NOT deleted;
-- Newest first within the caller's channels, and filter-only searches (from:, in:, dates).
CREATE INDEX search_docs_channel_ts ON search_docs (channel_id, ts DESC, message_id DESC) WHERE NOT deleted;

-- Messages sent before this migration: their current state, as the indexer would have left it.
INSERT INTO search_docs (message_id, channel_id, seq, ts, user_id, thread, body, has_link, deleted, indexed_seq)
SELECT id, channel_id, seq, ts, user_id, thread, CASE WHEN deleted THEN '' ELSE coalesce(body, '') END,
       NOT deleted AND coalesce(body, '') ~* 'https?://', deleted, coalesce(state_seq, seq)
FROM events WHERE kind = 'message';
