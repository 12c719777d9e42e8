-- What a workload asks for and holds, and the time it spent waiting and running.
ALTER TABLE workloads
    ADD COLUMN project_id      text,
    ADD COLUMN gpus_requested  double precision NOT NULL DEFAULT 0,
    ADD COLUMN node_pools      text[]           NOT NULL DEFAULT '{}',
    -- [[node, gpus], ...] of its live bound pods, from the newest phase event
    ADD COLUMN placements      jsonb            NOT NULL DEFAULT '[]',
    ADD COLUMN pending_seconds double precision NOT NULL DEFAULT 0,
    ADD COLUMN running_seconds double precision NOT NULL DEFAULT 0;

-- The last value of the last-value-wins facts, kept whole as the event that said it: queue
-- status, nodes, projects, departments, node pools, pending reasons, utilization windows.
-- `sequence` is the message's stream sequence: an older message never overwrites a newer one.
CREATE TABLE current_state (
    kind     text   NOT NULL,
    key      text   NOT NULL,
    sequence bigint NOT NULL,
    payload  jsonb  NOT NULL,
    PRIMARY KEY (kind, key)
);

-- One row per preempt decision: a redelivered decision is counted once.
CREATE TABLE preemptions (
    decision_id text        PRIMARY KEY,
    workload_id text        NOT NULL,
    project     text        NOT NULL,
    reason      text        NOT NULL,
    decided_at  timestamptz NOT NULL
);

-- One row per dead-lettered message.
CREATE TABLE dead_letters (
    consumer        text        NOT NULL,
    stream          text        NOT NULL,
    stream_sequence bigint      NOT NULL,
    failed_at       timestamptz NOT NULL,
    PRIMARY KEY (consumer, stream, stream_sequence)
);

-- Periodic samples per project (by id), department (by id) and node pool (by name), kept for
-- the retention the settings give; the telemetry API reads time series from here.
CREATE TABLE samples (
    scope    text             NOT NULL,
    scope_id text             NOT NULL,
    metric   text             NOT NULL,
    at       timestamptz      NOT NULL,
    value    double precision NOT NULL,
    PRIMARY KEY (scope, scope_id, metric, at)
);
CREATE INDEX samples_at ON samples (at);
