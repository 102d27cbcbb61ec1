-- Jobs finished (issue 6): the org a job concerns (so an org sees its own
-- failed deliveries and exports), the node that runs it (so a node that
-- shuts down hands its unfinished jobs back at once), and the slots that
-- cron and periodic jobs have been enqueued for (so two nodes schedule a
-- slot once, even when the first run is already finished).
ALTER TABLE jobs ADD COLUMN org_id BLOB;
ALTER TABLE jobs ADD COLUMN locked_by TEXT;
CREATE INDEX jobs_org ON jobs (org_id, state) WHERE org_id IS NOT NULL;
CREATE INDEX jobs_failed ON jobs (state, finished_at) WHERE state IN ('dead', 'discarded');

CREATE TABLE job_slots (
    name TEXT NOT NULL,
    slot BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, slot)
);
