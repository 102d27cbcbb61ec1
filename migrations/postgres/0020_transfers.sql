-- Ticket transfers (the tickets slice): a ticket handed on is revoked
-- (`transferred_at`) and a new one issued to its new holder, under the same
-- order; the new ticket names the one it replaces and its holder, whose key
-- to the ticket's page is kept as a hash (minted when the mail goes out).
ALTER TABLE tickets ADD COLUMN holder_email TEXT;
ALTER TABLE tickets ADD COLUMN holder_name TEXT;
ALTER TABLE tickets ADD COLUMN holder_token_hash BYTEA;
ALTER TABLE tickets ADD COLUMN replaces UUID;
ALTER TABLE tickets ADD COLUMN transferred_at BIGINT;

-- Whether an event's tickets may be handed on, and until when (the events
-- slice; NULL: until the event starts).
ALTER TABLE events ADD COLUMN transfers_allowed BIGINT NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN transfer_deadline BIGINT;
