-- People (issue 9): display name and avatar from the token's `name` and `picture` claims,
-- stored and updated when they change.
ALTER TABLE users ADD COLUMN display_name text;
ALTER TABLE users ADD COLUMN avatar_url text;
-- The people search matches a prefix of the id or of the lower-cased display name.
CREATE INDEX users_id_prefix ON users (id text_pattern_ops);
CREATE INDEX users_name_prefix ON users (lower(display_name) text_pattern_ops);
