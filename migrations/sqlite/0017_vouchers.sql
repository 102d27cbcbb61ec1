-- Vouchers: a code that takes percent or an amount off each ticket it
-- discounts, at most max_uses tickets ever (each discounted ticket is one
-- use, taken with the hold and given back when the hold or its order
-- expires or is cancelled). Codes are kept upper case, one per event.
CREATE TABLE vouchers (
    org_id BLOB NOT NULL,
    id BLOB NOT NULL,
    event_id BLOB NOT NULL,
    code TEXT NOT NULL,
    percent_off BIGINT,
    amount_off_cents BIGINT,
    max_uses BIGINT NOT NULL CHECK (max_uses >= 1),
    valid_until BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, event_id, code),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id),
    CHECK ((percent_off IS NULL) <> (amount_off_cents IS NULL))
);

CREATE TABLE voucher_ticket_types (
    org_id BLOB NOT NULL,
    voucher_id BLOB NOT NULL,
    ticket_type_id BLOB NOT NULL,
    PRIMARY KEY (org_id, voucher_id, ticket_type_id),
    FOREIGN KEY (org_id, voucher_id) REFERENCES vouchers (org_id, id),
    FOREIGN KEY (org_id, ticket_type_id) REFERENCES ticket_types (org_id, id)
);

-- The voucher a hold was made with, and how many of its tickets it
-- discounts (its uses while the hold is active or consumed).
ALTER TABLE holds ADD COLUMN voucher_id BLOB;
ALTER TABLE holds ADD COLUMN voucher_uses BIGINT NOT NULL DEFAULT 0;
CREATE INDEX holds_voucher ON holds (org_id, voucher_id) WHERE voucher_id IS NOT NULL;
