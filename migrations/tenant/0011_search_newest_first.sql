-- Newest-first search over the whole index (issue 11). A common word matches too many
-- documents for the GIN index to be the cheap way: reading them all and sorting by time took
-- 160-220 ms on 1M messages. Walking this index from the newest document and keeping those
-- that match stops after a page: 1-5 ms (docs/benchmarks.md). The planner still takes the GIN
-- index for rare words, where the walk would be long.
CREATE INDEX search_docs_newest ON search_docs (ts DESC, message_id DESC) WHERE NOT deleted;

-- The planner tells common words from rare ones by the vector's most common elements; keep
-- 10,000 of them (10 × the statistics target) instead of 1,000, so that a word outside the
-- list is rare enough for the GIN index (store::search, PLAN_FOR_RARE_WORDS).
ALTER TABLE search_docs ALTER COLUMN tsv SET STATISTICS 1000;
