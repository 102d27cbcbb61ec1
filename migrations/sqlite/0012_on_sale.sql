-- The inventory epoch (docs/decisions.md, "Losing Redis mid-sale"): Redis
-- counters belong to an epoch, and a hold reserved against them is written
-- only while the epoch stands (share-locking this row in the write's
-- transaction). A hold taken from the ledger while Redis is away locks the
-- row exclusively and moves the epoch on, so counters Redis kept are never
-- trusted again; new ones are loaded from the ledger.
CREATE TABLE inventory_epoch (
    id INTEGER PRIMARY KEY,
    epoch BIGINT NOT NULL
);
INSERT INTO inventory_epoch (id, epoch) VALUES (1, 1);
-- The epoch whose Redis counters a hold was taken from (NULL: the process's
-- own counters, or the ledger): a release gives back to that epoch only.
ALTER TABLE holds ADD COLUMN epoch BIGINT;
-- An event's sales limits (the sales slice's): tickets per order, and per
-- buyer (by e-mail) across the buyer's live orders of the event.
CREATE TABLE event_sales_limits (
    org_id BLOB NOT NULL,
    event_id BLOB NOT NULL,
    max_tickets_per_order BIGINT,
    max_tickets_per_buyer BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, event_id)
);
-- A buyer's orders: the per-buyer limit, and the look-up by e-mail.
CREATE INDEX orders_buyer ON orders (org_id, buyer_email, event_id);
-- A buyer's look-up of their orders by e-mail: a mailed link whose token
-- (kept as its hash) shows that address's orders for a day.
CREATE TABLE order_lookups (
    org_id BLOB NOT NULL,
    token_hash BLOB NOT NULL,
    email TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, token_hash)
);
-- When a look-up was last asked for, per address: one mail per ten minutes.
CREATE TABLE order_lookup_requests (
    org_id BLOB NOT NULL,
    email TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, email)
);
-- An event's waiting room (the line itself is in Redis or the process):
-- the rate, when it opens, and the secret its tokens and passes are signed
-- with.
CREATE TABLE waiting_rooms (
    org_id BLOB NOT NULL,
    event_id BLOB NOT NULL,
    enabled BIGINT NOT NULL,
    per_minute BIGINT NOT NULL,
    opens_at BIGINT,
    secret BLOB NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, event_id)
);
