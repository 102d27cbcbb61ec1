-- The waiting list (the sales slice): buyers of a sold-out ticket type line
-- up; when tickets come back the first in line is offered them — a hold
-- made for them, kept for the offer's time (48 h by default), its link
-- mailed — and an offer not taken lapses, the tickets going to the next.
-- One live entry (waiting, being offered or offered) per address and ticket
-- type.
CREATE TABLE waiting_list (
    org_id BLOB NOT NULL,
    id BLOB NOT NULL,
    event_id BLOB NOT NULL,
    ticket_type_id BLOB NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity >= 1),
    status TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    hold_id BLOB,
    offered_at BIGINT,
    offer_expires_at BIGINT,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);
CREATE UNIQUE INDEX waiting_list_live ON waiting_list (org_id, ticket_type_id, email)
    WHERE status IN ('waiting', 'offering', 'offered');
CREATE INDEX waiting_list_line ON waiting_list (status, org_id, ticket_type_id, joined_at);
