-- The workload projection is rewritten at every phase change. Its index on (phase, type)
-- served no query (the projection is read whole at start-up and by id after) and made every
-- phase change write new index entries; room left in each page lets PostgreSQL keep a row's
-- new version on its page.
DROP INDEX IF EXISTS workloads_phase_type;
ALTER TABLE workloads SET (fillfactor = 80);
