-- Venue layouts (the events slice): an org's reusable seat maps, each seat
-- with a category (e.g. "Stalls") instead of a ticket type; an event
-- copies one, mapping each category to one of its ticket types.
CREATE TABLE venue_layouts (
    org_id UUID NOT NULL,
    id UUID NOT NULL,
    name TEXT NOT NULL,
    doc TEXT NOT NULL,
    categories TEXT NOT NULL,
    seats BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
