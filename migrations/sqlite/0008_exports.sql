-- The exports slice: an export of an event's attendees, orders or
-- check-ins, built by a job into chunks (so any node can serve it and no
-- node holds it whole in memory), downloadable through a signed link.
CREATE TABLE exports (
    id BLOB PRIMARY KEY,
    org_id BLOB NOT NULL,
    event_id BLOB NOT NULL,
    -- attendees, orders, checkins
    kind TEXT NOT NULL,
    -- csv, xlsx
    format TEXT NOT NULL,
    -- queued, running, ready, failed
    status TEXT NOT NULL,
    rows_done BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    error TEXT,
    -- The key download links are signed with (random per export).
    link_key BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    -- The file is deleted after this.
    expires_at BIGINT NOT NULL
);
CREATE INDEX exports_org ON exports (org_id, id);
CREATE INDEX exports_expiry ON exports (expires_at);

CREATE TABLE export_chunks (
    export_id BLOB NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (export_id, seq)
);
