-- A ticket type's own validity at the gate (microseconds; NULL: open):
-- scanned outside it, a ticket answers `not_valid_now`. A series' dates'
-- copies do not take their series type's (each date sets its own).
ALTER TABLE ticket_types ADD COLUMN valid_from BIGINT;
ALTER TABLE ticket_types ADD COLUMN valid_until BIGINT;
