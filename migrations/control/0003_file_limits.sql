-- A workspace's file attachment limits (issue 11), from its spec.files: the largest file in
-- bytes, the most files on one message and the media types (or `type/*` patterns) that may be
-- uploaded. NULL: the pod's default (PALAVER_FILE_MAX_BYTES and the others).
ALTER TABLE workspaces
    ADD COLUMN file_max_bytes bigint CHECK (file_max_bytes > 0),
    ADD COLUMN file_max_per_message integer CHECK (file_max_per_message BETWEEN 1 AND 100),
    ADD COLUMN file_allowed_types text[];
