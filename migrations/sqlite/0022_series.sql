-- Series (the events slice): an event made with `series = 1` sells through
-- its dates, each an event of its own (`series_id` names the series) with
-- its own inventory, seats and check-in. A date's ticket types follow the
-- series' (`template_id`): made with the date, changed with the series.
ALTER TABLE events ADD COLUMN series BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN series_id BLOB;
CREATE INDEX events_series ON events (org_id, series_id, starts_at);
ALTER TABLE ticket_types ADD COLUMN template_id BLOB;
CREATE INDEX ticket_types_template ON ticket_types (org_id, template_id);
