-- The kernel issue: typed events with versions and failure accounting, claim
-- tokens on idempotency keys, expiring pending orders, the live projection.

ALTER TABLE outbox ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
ALTER TABLE outbox ADD COLUMN failed_at BIGINT;
DROP INDEX outbox_undelivered;
CREATE INDEX outbox_undelivered ON outbox (id) WHERE delivered_at IS NULL AND failed_at IS NULL;

ALTER TABLE idempotency_keys ADD COLUMN claim_id UUID;

-- A pending (priced) order gives its tickets back when unpaid by expires_at.
ALTER TABLE orders ADD COLUMN expires_at BIGINT;
CREATE INDEX orders_pending_expiry ON orders (expires_at) WHERE status = 'pending';

-- At most one active signing key per org (made on org.created, or on first use).
CREATE UNIQUE INDEX org_signing_keys_active ON org_signing_keys (org_id) WHERE active;

-- The live slice's projection: an event's figures, fed by domain events.
CREATE TABLE live_figures (
    org_id UUID NOT NULL,
    event_id UUID NOT NULL,
    capacity BIGINT NOT NULL DEFAULT 0,
    held BIGINT NOT NULL DEFAULT 0,
    reserved BIGINT NOT NULL DEFAULT 0,
    sold BIGINT NOT NULL DEFAULT 0,
    admitted BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, event_id)
);

-- Device credentials belong to identity (pairing codes, tokens, revocation);
-- the device itself (name, events) stays with scanning. The old columns of
-- devices are no longer written (to be dropped once no release reads them).
CREATE TABLE device_credentials (
    org_id UUID NOT NULL,
    device_id UUID NOT NULL,
    pairing_code_hash BYTEA,
    pairing_expires_at BIGINT,
    token_hash BYTEA,
    paired_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, device_id),
    CONSTRAINT device_credentials_token_key UNIQUE (token_hash),
    CONSTRAINT device_credentials_pairing_key UNIQUE (pairing_code_hash)
);
INSERT INTO device_credentials (org_id, device_id, pairing_code_hash, pairing_expires_at, token_hash, paired_at, revoked_at, created_at)
    SELECT org_id, id, pairing_code_hash, pairing_expires_at, token_hash, paired_at, revoked_at, created_at FROM devices;
