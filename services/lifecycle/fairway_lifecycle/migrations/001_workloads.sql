-- Workloads lifecycle is responsible for, and the last phase it published for each, so that a
-- restarted lifecycle neither repeats nor skips a transition.
CREATE TABLE workloads (
    workload_id    text PRIMARY KEY,
    name           text        NOT NULL,
    project        text        NOT NULL,
    workload_type  text        NOT NULL,
    namespace      text        NOT NULL,
    spec           jsonb       NOT NULL,
    trace_headers  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    attempt        integer     NOT NULL DEFAULT 1,
    phase          text        NOT NULL,
    reason         text        NOT NULL,
    message        text        NOT NULL,
    sequence       integer     NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workloads_active ON workloads (phase) WHERE phase NOT IN ('Completed', 'Failed', 'Deleted');
