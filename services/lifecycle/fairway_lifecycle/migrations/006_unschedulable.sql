-- The scheduler found the workload can never be placed (no pool has nodes that large).
ALTER TABLE workloads
    ADD COLUMN unschedulable_code    text,
    ADD COLUMN unschedulable_message text;
