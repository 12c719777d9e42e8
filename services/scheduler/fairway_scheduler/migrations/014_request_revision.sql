-- A third-party workload's request is sent again when its owner is scaled (issue 18): the
-- highest revision received is kept (its pods and minimum; its place in the queue stays).
ALTER TABLE workloads ADD COLUMN revision integer NOT NULL DEFAULT 0;
