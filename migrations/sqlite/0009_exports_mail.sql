-- An export's current build: a build's writes count only while its token
-- is the export's (a rescued job's second build supersedes the first).
ALTER TABLE exports ADD COLUMN build_token TEXT;
-- "Has this order's mail of this kind gone already?", asked before each send.
CREATE INDEX mail_log_order ON mail_log (org_id, order_id, kind);
