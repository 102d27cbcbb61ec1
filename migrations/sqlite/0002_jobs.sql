-- The durable job queue (kernel::jobs). System-wide, not tenant-owned: a
-- tenant's job names its org in the payload.
CREATE TABLE jobs (
    id BLOB PRIMARY KEY,
    queue TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    unique_key TEXT,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    run_at BIGINT NOT NULL,
    locked_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
-- At most one waiting or running job per (kind, unique_key).
CREATE UNIQUE INDEX jobs_unique ON jobs (kind, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'running');
CREATE INDEX jobs_ready ON jobs (queue, run_at) WHERE state = 'available';
CREATE INDEX jobs_running ON jobs (locked_at) WHERE state = 'running';
