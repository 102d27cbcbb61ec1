-- Seat maps (the events slice): one JSON document per event — sections,
-- rows, seats with a stable id each, their place, ticket type and flags.
CREATE TABLE seat_maps (
    org_id BLOB NOT NULL,
    event_id BLOB NOT NULL,
    doc TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, event_id),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);

-- Seats held or sold (the sales slice): a seat is in at most one live hold
-- or valid ticket, ever — the primary key says so on both backends. A claim
-- lives while its hold is active or consumed; releasing the hold (expiry,
-- an order expiring or cancelled) deletes its claims in the same
-- transaction.
CREATE TABLE seat_claims (
    org_id BLOB NOT NULL,
    event_id BLOB NOT NULL,
    seat_id TEXT NOT NULL,
    hold_id BLOB NOT NULL,
    ticket_type_id BLOB NOT NULL,
    PRIMARY KEY (org_id, event_id, seat_id)
);
CREATE INDEX seat_claims_hold ON seat_claims (org_id, hold_id);

ALTER TABLE tickets ADD COLUMN seat_id TEXT;
