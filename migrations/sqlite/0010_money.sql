-- Money: what an order was paid and refunded, its payment, its refunds,
-- and the provider events already applied (a replayed event changes nothing).
ALTER TABLE orders ADD COLUMN paid_cents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN refunded_cents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN payment_method TEXT NOT NULL DEFAULT 'free';
ALTER TABLE orders ADD COLUMN updated_at BIGINT;
-- Per ticket type: quantity, unit price, discount (JSON, fixed at checkout).
ALTER TABLE orders ADD COLUMN lines TEXT;
UPDATE orders SET paid_cents = total_cents WHERE status = 'paid';
CREATE INDEX orders_org_created ON orders (org_id, created_at);
CREATE INDEX orders_org_email ON orders (org_id, buyer_email);

CREATE TABLE payments (
    org_id BLOB NOT NULL,
    id BLOB NOT NULL,
    order_id BLOB NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    provider_ref TEXT,
    client_secret TEXT,
    reference TEXT,
    failure TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT payments_order_key UNIQUE (org_id, order_id),
    FOREIGN KEY (org_id, order_id) REFERENCES orders (org_id, id)
);
CREATE UNIQUE INDEX payments_provider_ref ON payments (provider, provider_ref);
CREATE UNIQUE INDEX payments_reference ON payments (reference);

CREATE TABLE refunds (
    org_id BLOB NOT NULL,
    id BLOB NOT NULL,
    order_id BLOB NOT NULL,
    payment_id BLOB NOT NULL,
    provider TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    provider_ref TEXT,
    failure TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, order_id) REFERENCES orders (org_id, id)
);
CREATE INDEX refunds_order ON refunds (org_id, order_id);

CREATE TABLE provider_events (
    provider TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (provider, id)
);

-- Mail is sent once per Message-ID (an order's, or a refund's).
CREATE INDEX mail_log_message ON mail_log (org_id, message_id);
