-- The deployment's own name for the epoch Redis keeps (inv:epoch:<name>):
-- random, so two deployments sharing a Redis (or a database made anew under
-- an old name) never read each other's epoch.
ALTER TABLE inventory_epoch ADD COLUMN deployment TEXT NOT NULL DEFAULT '';
UPDATE inventory_epoch SET deployment = md5(random()::text || clock_timestamp()::text);
