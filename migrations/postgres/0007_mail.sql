-- The mail slice: what an org's mail says about its sender, and every
-- message sent (or given up on) for the org's mail log.
CREATE TABLE mail_settings (
    org_id UUID PRIMARY KEY,
    -- The From display name; the org's name when NULL.
    sender_name TEXT,
    reply_to TEXT,
    -- Reminders go out this long before an event starts; 0 turns them off.
    reminder_hours BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE mail_log (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL,
    -- order_confirmation, order_expired, reminder, endpoint_disabled
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    order_id UUID,
    attachments BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX mail_log_org ON mail_log (org_id, created_at);
