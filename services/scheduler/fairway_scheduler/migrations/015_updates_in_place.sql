-- A workload's request and status rows are rewritten as it moves: room left in each page lets
-- PostgreSQL keep the new version on its page (no index entries to write).
ALTER TABLE workloads SET (fillfactor = 80);
ALTER TABLE workload_status SET (fillfactor = 80);
