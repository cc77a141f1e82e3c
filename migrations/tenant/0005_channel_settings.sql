-- Channel settings and browsing (issue 9): topic, purpose, archive, and a member count kept in
-- the joins' and leaves' transactions (they hold the channel's row lock already).
ALTER TABLE channels ADD COLUMN topic text NOT NULL DEFAULT '';
ALTER TABLE channels ADD COLUMN purpose text NOT NULL DEFAULT '';
-- An archived channel refuses sends, edits and reactions; history stays readable.
ALTER TABLE channels ADD COLUMN archived boolean NOT NULL DEFAULT false;
ALTER TABLE channels ADD COLUMN member_count integer NOT NULL DEFAULT 0;
UPDATE channels c SET member_count = (SELECT count(*) FROM members m WHERE m.channel_id = c.id);

-- channel_update events: the fields that changed, with their new values.
ALTER TABLE events ADD COLUMN changes jsonb;
