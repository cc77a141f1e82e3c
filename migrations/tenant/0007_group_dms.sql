-- Group DMs (issue 9): one stable channel per set of 3 to 9 people, like a DM (dm_key is the
-- sorted member list).
ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check CHECK (kind IN ('public', 'private', 'dm', 'group_dm'));
