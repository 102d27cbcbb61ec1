-- Quotas: a capacity shared by several ticket types of one event. A ticket
-- type's availability is the least of its own capacity left and every
-- quota it belongs to; what a quota has left is its capacity less the
-- quantities of active and consumed holds of its ticket types.
CREATE TABLE quotas (
    org_id BLOB NOT NULL,
    id BLOB NOT NULL,
    event_id BLOB NOT NULL,
    name TEXT NOT NULL,
    capacity BIGINT NOT NULL CHECK (capacity >= 0),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);
CREATE INDEX quotas_event ON quotas (org_id, event_id);

CREATE TABLE quota_ticket_types (
    org_id BLOB NOT NULL,
    quota_id BLOB NOT NULL,
    ticket_type_id BLOB NOT NULL,
    PRIMARY KEY (org_id, quota_id, ticket_type_id),
    FOREIGN KEY (org_id, quota_id) REFERENCES quotas (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, ticket_type_id) REFERENCES ticket_types (org_id, id)
);
