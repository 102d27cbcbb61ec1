-- Private signing keys are sealed under the node's master key
-- (`sealed_key`: nonce ‖ XChaCha20-Poly1305 ciphertext, bound to the org and
-- kid; `sealed_with`: the master key's fingerprint). A key made before this
-- keeps its clear `secret_key` until a node seals it on first use; a sealed
-- key's `secret_key` is empty.
ALTER TABLE org_signing_keys ADD COLUMN sealed_key BLOB;
ALTER TABLE org_signing_keys ADD COLUMN sealed_with TEXT;
-- A retired key verifies nothing any more (its tickets were re-issued).
ALTER TABLE org_signing_keys ADD COLUMN retired_at BIGINT;

-- Which key signed a ticket's code (to find the tickets a key still
-- carries before it is retired).
ALTER TABLE tickets ADD COLUMN kid TEXT;
UPDATE tickets SET kid = substr(code, 5, 8) WHERE code LIKE 'VG1.%';
CREATE INDEX tickets_kid ON tickets (org_id, kid) WHERE status = 'valid';

-- Secrets of the deployment itself: the master key when no file is given
-- in production mode (warned at every start).
CREATE TABLE node_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
