-- Attachments (issue 11). The bytes live in S3-compatible object storage under `object_key`;
-- this table is what Palaver knows of each upload, from `POST /v1/files` until the object is
-- removed. A file belongs to one channel and one uploader, and is attached to at most one
-- message.
--
-- state: `pending` (upload URL handed out), `ready` (`complete` verified the object),
-- `deleted` (its message was deleted: the sweeper removes the objects, then the row).
CREATE TABLE files (
    id           text PRIMARY KEY,
    channel_id   text NOT NULL REFERENCES channels (id),
    uploader     text NOT NULL,
    name         text NOT NULL,
    content_type text NOT NULL,
    size         bigint NOT NULL CHECK (size >= 0),
    object_key   text NOT NULL UNIQUE,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'ready', 'deleted')),
    -- Images whose preview was made: its dimensions and where the thumbnail is.
    width        integer,
    height       integer,
    thumbnail_key text,
    message_id   text REFERENCES events (id),
    created_at   timestamptz NOT NULL,
    completed_at timestamptz,
    CHECK (message_id IS NULL OR state <> 'pending')
);
CREATE INDEX files_message ON files (message_id) WHERE message_id IS NOT NULL;
-- The sweeper's work: deleted files, and uploads never completed or never attached.
CREATE INDEX files_sweep ON files (created_at) WHERE state = 'deleted' OR message_id IS NULL;

-- On `message` rows: the attached files as sent (id, name, content_type, size, width, height,
-- thumbnail), in the order the sender gave; NULL when none. Emptied on delete.
ALTER TABLE events ADD COLUMN files jsonb;
