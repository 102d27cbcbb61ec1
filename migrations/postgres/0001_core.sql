-- Core schema. Tenant tables carry org_id first in their keys and indexes,
-- ready to be distributed by org_id. Times are microseconds since the epoch.

CREATE TABLE orgs (
    id UUID PRIMARY KEY,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT orgs_slug_key UNIQUE (slug)
);

CREATE TABLE org_signing_keys (
    org_id UUID NOT NULL REFERENCES orgs(id),
    id UUID NOT NULL,
    kid TEXT NOT NULL,
    secret_key BYTEA NOT NULL,
    public_key BYTEA NOT NULL,
    active BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT org_signing_keys_kid_key UNIQUE (org_id, kid)
);

CREATE TABLE users (
    id UUID PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE memberships (
    org_id UUID NOT NULL REFERENCES orgs(id),
    user_id UUID NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE api_keys (
    org_id UUID NOT NULL REFERENCES orgs(id),
    id UUID NOT NULL,
    name TEXT NOT NULL,
    token_hash BYTEA NOT NULL,
    permissions TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (org_id, id),
    CONSTRAINT api_keys_token_hash_key UNIQUE (token_hash)
);

CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY,
    org_id UUID NOT NULL REFERENCES orgs(id),
    user_id UUID NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE events (
    org_id UUID NOT NULL REFERENCES orgs(id),
    id UUID NOT NULL,
    name TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    timezone TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE ticket_types (
    org_id UUID NOT NULL,
    id UUID NOT NULL,
    event_id UUID NOT NULL,
    name TEXT NOT NULL,
    price_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    capacity BIGINT NOT NULL CHECK (capacity >= 1),
    sale_starts_at BIGINT,
    sale_ends_at BIGINT,
    max_per_order BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);
CREATE INDEX ticket_types_event ON ticket_types (org_id, event_id);

-- Holds are the inventory ledger: capacity minus the quantities of active
-- and consumed holds is what is left to sell.
CREATE TABLE holds (
    org_id UUID NOT NULL,
    id UUID NOT NULL,
    event_id UUID NOT NULL,
    status TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);
CREATE INDEX holds_active_expiry ON holds (expires_at) WHERE status = 'active';

CREATE TABLE hold_items (
    org_id UUID NOT NULL,
    hold_id UUID NOT NULL,
    ticket_type_id UUID NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity >= 1),
    PRIMARY KEY (org_id, hold_id, ticket_type_id),
    FOREIGN KEY (org_id, hold_id) REFERENCES holds (org_id, id)
);
CREATE INDEX hold_items_type ON hold_items (org_id, ticket_type_id);

CREATE TABLE orders (
    org_id UUID NOT NULL,
    id UUID NOT NULL,
    event_id UUID NOT NULL,
    hold_id UUID NOT NULL,
    status TEXT NOT NULL,
    buyer_email TEXT NOT NULL,
    buyer_name TEXT NOT NULL,
    total_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    access_token_hash BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT orders_hold_key UNIQUE (org_id, hold_id)
);

CREATE TABLE tickets (
    org_id UUID NOT NULL,
    id UUID NOT NULL,
    order_id UUID NOT NULL,
    event_id UUID NOT NULL,
    ticket_type_id UUID NOT NULL,
    code TEXT NOT NULL,
    status TEXT NOT NULL,
    admitted_at BIGINT,
    admitted_device UUID,
    admitted_gate TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, order_id) REFERENCES orders (org_id, id)
);
CREATE INDEX tickets_event ON tickets (org_id, event_id);
CREATE INDEX tickets_order ON tickets (org_id, order_id);

CREATE TABLE devices (
    org_id UUID NOT NULL REFERENCES orgs(id),
    id UUID NOT NULL,
    name TEXT NOT NULL,
    event_ids TEXT NOT NULL,
    pairing_code_hash BYTEA,
    pairing_expires_at BIGINT,
    token_hash BYTEA,
    paired_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT devices_token_hash_key UNIQUE (token_hash),
    CONSTRAINT devices_pairing_code_key UNIQUE (pairing_code_hash)
);

CREATE TABLE idempotency_keys (
    org_id UUID NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    status_code INTEGER,
    response TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, scope, key)
);

CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    event_id UUID NOT NULL,
    org_id UUID NOT NULL,
    topic TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX outbox_undelivered ON outbox (id) WHERE delivered_at IS NULL;
