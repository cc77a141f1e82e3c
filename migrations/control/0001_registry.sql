-- Registry of workspaces, read by every palaverd pod to know which tenants exist.
-- Lives in schema palaver_control (the provisioner sets search_path before migrating).
CREATE TABLE workspaces (
    name              text PRIMARY KEY,
    display_name      text NOT NULL,
    schema_name       text NOT NULL UNIQUE,
    events_topic      text NOT NULL,
    dlq_topic         text NOT NULL,
    partitions        integer NOT NULL CHECK (partitions > 0),
    state             text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'disabled')),
    migration_version bigint NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
