-- The last pending reason said the workload can never be placed (it was refused): a restart
-- must not announce it again.
ALTER TABLE workloads ADD COLUMN pending_unschedulable boolean NOT NULL DEFAULT false;
