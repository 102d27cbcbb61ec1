-- Ticket types (the events slice) gain what an organizer sets beyond
-- price and capacity: a least quantity per order, hidden (sold only with a
-- voucher that names the type), an order on the storefront, retirement (off
-- sale for good; its tickets stay valid — a type with sales is never
-- deleted), and the questions asked of each ticket's attendee (a JSON list;
-- NULL asks the attendee's name, optionally).
ALTER TABLE ticket_types ADD COLUMN min_per_order BIGINT;
ALTER TABLE ticket_types ADD COLUMN hidden BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ticket_types ADD COLUMN sort_order BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ticket_types ADD COLUMN retired_at BIGINT;
ALTER TABLE ticket_types ADD COLUMN questions TEXT;

-- The answers given at checkout (the sales slice), one JSON object per
-- ticket in the order's ticket order, and each ticket's own copy (the
-- tickets slice), printed on it.
ALTER TABLE orders ADD COLUMN attendees TEXT;
ALTER TABLE tickets ADD COLUMN answers TEXT;
