-- The audit log: every change made by a user, API key or device, written
-- in the transaction of the change (unsealed), then sealed into a hash
-- chain per org by the sealer (seq, prev_hash, hash), so that a row deleted
-- or edited after sealing is detected by `voelgoed audit verify`.
CREATE TABLE audit_log (
    id BLOB PRIMARY KEY,
    org_id BLOB NOT NULL,
    at BIGINT NOT NULL,
    -- user, api_key, device, operator
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT,
    before TEXT,
    after TEXT,
    client_ip TEXT,
    request_id TEXT,
    seq BIGINT,
    prev_hash BLOB,
    hash BLOB
);
CREATE INDEX audit_log_unsealed ON audit_log (org_id, id) WHERE seq IS NULL;
CREATE UNIQUE INDEX audit_log_chain ON audit_log (org_id, seq);
CREATE INDEX audit_log_read ON audit_log (org_id, id);

-- The last sealed link of each org's chain.
CREATE TABLE audit_heads (
    org_id BLOB PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash BLOB NOT NULL
);
