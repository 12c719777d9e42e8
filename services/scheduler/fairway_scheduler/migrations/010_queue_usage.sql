-- Time-aware fairness. A node pool's own settings (NodePoolChanged.timeAwareFairness as a
-- JSON object; NULL: the cluster's), and each queue's usage history: resource-seconds a
-- project or department held in a node pool, per bucket of `bucket_seconds` starting at
-- `bucket_start`. The scheduler adds to a row (it never rewrites one), in batches, and
-- deletes rows older than its retention.
ALTER TABLE node_pools ADD COLUMN time_aware_fairness jsonb;

CREATE TABLE queue_usage (
    kind                  text             NOT NULL,
    name                  text             NOT NULL,
    node_pool             text             NOT NULL,
    bucket_start          timestamptz      NOT NULL,
    bucket_seconds        double precision NOT NULL,
    gpu_seconds           double precision NOT NULL DEFAULT 0,
    cpu_millicore_seconds double precision NOT NULL DEFAULT 0,
    memory_mib_seconds    double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, name, node_pool, bucket_start)
);
CREATE INDEX queue_usage_by_start ON queue_usage (bucket_start);
