-- Edits, deletes and reactions (issue 9): every change is an event of the channel's sequence;
-- the `message` event's own row also carries the message's current state, so history and
-- replay render it without folding.

-- Change events (edit, delete, reaction_add, reaction_remove) name the message they change.
ALTER TABLE events ADD COLUMN target text;
-- reaction_add / reaction_remove: the emoji.
ALTER TABLE events ADD COLUMN emoji text;
-- On `message` rows: when the text last changed (NULL: never), and whether it is a tombstone.
ALTER TABLE events ADD COLUMN edited_at timestamptz;
ALTER TABLE events ADD COLUMN deleted boolean NOT NULL DEFAULT false;
-- On `message` rows: the seq of the last event that changed this message (its own seq until
-- then). A client applies a change event to a rendered message only if the change's seq is
-- higher, which makes replay converge exactly.
ALTER TABLE events ADD COLUMN state_seq bigint;
UPDATE events SET state_seq = seq WHERE kind = 'message';

CREATE INDEX events_target ON events (target) WHERE target IS NOT NULL;

-- Earlier versions of a message's text, one row per edit (the text it replaced). Purged on
-- delete.
CREATE TABLE message_edits (
    message_id text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    old_text   text NOT NULL,
    edited_at  timestamptz NOT NULL,
    PRIMARY KEY (message_id, seq)
);

-- Who reacted with what: one row per (message, emoji, user).
CREATE TABLE reactions (
    message_id text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    emoji      text NOT NULL,
    user_id    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, emoji, user_id)
);
