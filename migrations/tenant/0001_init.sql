-- One schema per workspace (ws_<name>); the provisioner sets search_path before migrating,
-- and the data plane sets it (transaction-local) before every query.

CREATE TABLE users (
    id         text PRIMARY KEY,
    role       text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member', 'guest')),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE channels (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('public', 'private', 'dm')),
    -- Highest assigned seq. Updated under the row lock in the send transaction, so seqs are
    -- gap-free and commit order equals seq order.
    last_seq    bigint NOT NULL DEFAULT 0,
    auto_join   boolean NOT NULL DEFAULT false,
    -- Sorted member pair for DMs, so opening the same DM twice finds the same channel.
    dm_key      text UNIQUE,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX channels_name ON channels (name) WHERE kind <> 'dm';

CREATE TABLE members (
    channel_id    text NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id       text NOT NULL REFERENCES users (id),
    delivered_seq bigint NOT NULL DEFAULT 0,
    read_seq      bigint NOT NULL DEFAULT 0,
    joined_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

CREATE TABLE events (
    channel_id text NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    id         text NOT NULL UNIQUE,
    kind       text NOT NULL,
    user_id    text NOT NULL,
    cmid       text,
    body       text,
    thread     text,
    ts         timestamptz NOT NULL,
    PRIMARY KEY (channel_id, seq)
);
-- Idempotency key: a client message id is unique per sender across the workspace.
CREATE UNIQUE INDEX events_cmid ON events (user_id, cmid) WHERE cmid IS NOT NULL;

-- Events committed but not yet confirmed published to Redis and Kafka.
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    channel_id text NOT NULL,
    seq        bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE notifications (
    id              bigserial PRIMARY KEY,
    user_id         text NOT NULL,
    channel_id      text NOT NULL,
    seq             bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('mention', 'dm')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    read_at         timestamptz,
    push_state      text NOT NULL DEFAULT 'pending' CHECK (push_state IN ('pending', 'sent', 'dead')),
    push_attempts   integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, channel_id, seq)
);
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read_at IS NULL;
CREATE INDEX notifications_push ON notifications (next_attempt_at) WHERE push_state = 'pending';
