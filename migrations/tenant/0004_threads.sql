-- Threads (issue 9): a reply is a `message` event of the channel's sequence whose `thread` is
-- its root's id; the root's row carries the thread summary, updated in the reply's
-- transaction.

-- A reply also shown in the channel (Slack's "also send to channel").
ALTER TABLE events ADD COLUMN also_channel boolean NOT NULL DEFAULT false;
-- On root rows: the summary.
ALTER TABLE events ADD COLUMN reply_count integer NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN last_reply_ts timestamptz;
-- The first ten repliers, in order of their first reply; reply_users_count counts them all.
ALTER TABLE events ADD COLUMN reply_users text[] NOT NULL DEFAULT '{}';
ALTER TABLE events ADD COLUMN reply_users_count integer NOT NULL DEFAULT 0;

-- Thread pages: a root's replies in seq order.
CREATE INDEX events_thread ON events (thread, seq) WHERE thread IS NOT NULL;

-- Who follows a thread (its root's author and every replier, and whoever chose to) and how
-- far each has read it; `replied` tells repliers from followers.
CREATE TABLE thread_followers (
    root_id   text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id   text NOT NULL,
    following boolean NOT NULL DEFAULT true,
    replied   boolean NOT NULL DEFAULT false,
    read_seq  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (root_id, user_id)
);
CREATE INDEX thread_followers_user ON thread_followers (user_id) WHERE following;

-- Replies notify offline followers with inbox kind 'thread'.
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN ('mention', 'dm', 'thread'));
