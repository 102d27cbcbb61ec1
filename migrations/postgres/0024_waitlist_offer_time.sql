-- The waiting list's offer time, per event (hours; NULL: 48), kept with
-- the event's other sales settings.
ALTER TABLE event_sales_limits ADD COLUMN waitlist_offer_hours BIGINT;
-- A buyer leaves the line with the key given when they joined (its hash).
ALTER TABLE waiting_list ADD COLUMN leave_key_hash BYTEA;
