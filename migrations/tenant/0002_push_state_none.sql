-- Notifications created while no push provider is configured are recorded as 'none'
-- (in the inbox, never pushed) instead of piling up as 'pending'.
ALTER TABLE notifications DROP CONSTRAINT notifications_push_state_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_push_state_check
    CHECK (push_state IN ('pending', 'sent', 'dead', 'none'));
