-- Preemption messages name the workloads involved as people know them.
ALTER TABLE workloads ADD COLUMN name text NOT NULL DEFAULT '';
