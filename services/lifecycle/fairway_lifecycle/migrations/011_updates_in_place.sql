-- A workload's row is rewritten at every phase and pod-group change (about ten times in its
-- life). The index on phase made every such update write new index entries (a changed
-- indexed column rules out an update in place), and no query used it: loading the active
-- workloads at start-up reads the table whole (its condition on `desired` has no index).
-- Room left in each page lets PostgreSQL keep a row's new version on its page.
DROP INDEX IF EXISTS workloads_active;
ALTER TABLE workloads SET (fillfactor = 80);
