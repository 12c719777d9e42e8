-- The workload each eviction makes room for: after a restart, the scheduler places it first
-- (its nomination) once the evicted pods are gone, as it would have without the restart.
ALTER TABLE evictions ADD COLUMN by_workload text;
