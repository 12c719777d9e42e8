-- What the scheduler says: why a workload waits, and each queue's fair share and usage.
ALTER TABLE workloads
    ADD COLUMN scheduler_code       text,
    ADD COLUMN scheduler_message    text,
    ADD COLUMN scheduler_changed_at timestamptz;

CREATE TABLE queue_status (
    kind       text        NOT NULL,
    name       text        NOT NULL,
    node_pool  text        NOT NULL,
    status     jsonb       NOT NULL,
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (kind, name, node_pool)
);
