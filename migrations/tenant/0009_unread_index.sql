-- Unread counts (hello, GET /v1/channels) count the `message` events after a read cursor. In a
-- channel whose events are mostly member joins (#general of a large workspace) that scanned
-- every join: connecting N new users cost O(N^2) (issue 9's 10,000-user presence run, issue
-- 12). This index holds only messages, with their author for the "not my own" test, so the
-- count reads at most the capped number of index entries.
--
-- Built in the migration's transaction, like every index here: CONCURRENTLY cannot run in one,
-- and concurrent builds in several workspace schemas deadlock on each other's snapshots. The
-- build holds off that workspace's sends while it runs (docs/operator.md, upgrades).
CREATE INDEX events_unread ON events (channel_id, seq) INCLUDE (user_id) WHERE kind = 'message';
