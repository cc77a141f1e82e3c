-- Kafka retention of the events topic as last applied (NULL: the broker default), so the
-- provisioner changes the topic's config only when the Workspace asks for a different value.
ALTER TABLE workspaces ADD COLUMN retention_hours bigint CHECK (retention_hours > 0);
