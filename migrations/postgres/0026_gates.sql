-- Gates: where a device scans, which ticket types it admits, whether a ticket
-- may come back in after going out (`in_out`), a JsonLogic rule, a capacity
-- and an opening window. An event without gates scans as before.
CREATE TABLE gates (
    org_id UUID NOT NULL,
    id UUID NOT NULL,
    event_id UUID NOT NULL,
    name TEXT NOT NULL,
    -- Space-separated ticket type ids; NULL: every type of the event.
    ticket_type_ids TEXT,
    reentry TEXT NOT NULL,
    rules TEXT,
    capacity BIGINT,
    opens_at BIGINT,
    closes_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX gates_event ON gates (org_id, event_id);

-- A device may be held to some gates (empty: any gate of its events), and is
-- a steward (scans) or a supervisor (may also override a refusal).
ALTER TABLE devices ADD COLUMN gate_ids TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN role TEXT NOT NULL DEFAULT 'steward';

-- Presence: a ticket is inside from an entry until an exit at an `in_out`
-- gate. `admitted_at` stays the first admission ever; `entries` counts every
-- entry, `last_entry_at` the latest.
ALTER TABLE tickets ADD COLUMN inside_since BIGINT;
ALTER TABLE tickets ADD COLUMN inside_gate UUID;
ALTER TABLE tickets ADD COLUMN entries BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN last_entry_at BIGINT;
UPDATE tickets SET inside_since = admitted_at, entries = 1, last_entry_at = admitted_at
    WHERE admitted_at IS NOT NULL;

-- The scan log: every scan, admitted or not, in order of its v7 id.
CREATE TABLE scans (
    org_id UUID NOT NULL,
    id UUID NOT NULL,
    event_id UUID NOT NULL,
    device_id UUID,
    gate_id UUID,
    ticket_id UUID,
    direction TEXT NOT NULL,
    result TEXT NOT NULL,
    reason TEXT NOT NULL,
    explanation TEXT,
    override_reason TEXT,
    scanned_at BIGINT NOT NULL,
    -- One index: every admission writes a row, so each index costs on the
    -- hot path; the log is read per event in id order, and a gate's hot
    -- tier reads an event's entries once.
    PRIMARY KEY (org_id, event_id, id)
);
