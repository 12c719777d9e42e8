-- A third-party workload's request is sent again when its owner is scaled (issue 18): the
-- highest revision received is kept (its pods and minimum; its place in the queue stays).
ALTER TABLE workloads ADD COLUMN revision integer NOT NULL DEFAULT 0;
-- A pod group's sequence: a third-party workload's counts tenths of a second since 2026 (it
-- must keep growing across lifecycle restarts), past 32 bits in 2032: 64 bits.
ALTER TABLE workload_status ALTER COLUMN sequence TYPE bigint;
