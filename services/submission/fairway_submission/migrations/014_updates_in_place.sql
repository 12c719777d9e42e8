-- A workload's view row is rewritten at every phase, pod-group and pending change (about ten
-- times in its life): room left in each page lets PostgreSQL keep the new version on its
-- page (no index entries to write).
ALTER TABLE workloads SET (fillfactor = 80);
