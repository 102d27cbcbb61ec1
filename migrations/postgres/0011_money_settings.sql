-- An org's money settings: the VAT shown inside prices, a booking fee per
-- priced ticket, the currency they apply to, and who sells (for invoices).
CREATE TABLE money_settings (
    org_id UUID PRIMARY KEY,
    currency TEXT NOT NULL,
    tax_bp BIGINT NOT NULL,
    tax_name TEXT NOT NULL,
    fee_per_ticket_cents BIGINT NOT NULL,
    seller_name TEXT,
    seller_address TEXT,
    seller_tax_number TEXT,
    invoice_prefix TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- What an order's total holds, fixed at checkout.
ALTER TABLE orders ADD COLUMN fee_cents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN tax_cents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN tax_bp BIGINT NOT NULL DEFAULT 0;
-- Invoice numbers: per org, sequential, never used twice nor skipped (the
-- counter moves in the transaction that pays the order).
CREATE TABLE invoice_counters (
    org_id UUID PRIMARY KEY,
    last BIGINT NOT NULL
);
CREATE TABLE invoices (
    org_id UUID NOT NULL,
    number BIGINT NOT NULL,
    order_id UUID NOT NULL,
    issued_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, number),
    CONSTRAINT invoices_order_key UNIQUE (org_id, order_id)
);
