-- Reaction summaries kept on the message's row (issue 9's read target): history and threads
-- render a message without aggregating its reactions; react, unreact and delete rewrite the
-- summary in their transaction, as replies do the thread summary.

-- On `message` rows: one entry per emoji, in the order the emoji first appeared:
-- {"emoji": "👍", "count": 3, "users": [the first five who reacted, in order]}.
ALTER TABLE events ADD COLUMN reactions jsonb NOT NULL DEFAULT '[]';

UPDATE events e SET reactions = r.summary
FROM (SELECT message_id, jsonb_agg(jsonb_build_object('emoji', emoji, 'count', n, 'users', users) ORDER BY first, emoji) AS summary
      FROM (SELECT message_id, emoji, count(*) AS n, (array_agg(user_id ORDER BY created_at, user_id))[1:5] AS users,
                   min(created_at) AS first
            FROM reactions GROUP BY message_id, emoji) g
      GROUP BY message_id) r
WHERE e.id = r.message_id;
