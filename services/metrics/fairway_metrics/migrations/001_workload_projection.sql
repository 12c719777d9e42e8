-- One row per workload, folded from its submission and its phase events (which may arrive in
-- either order). The Prometheus series are rebuilt from here at start.
CREATE TABLE workloads (
    id                         text        PRIMARY KEY,
    project                    text        NOT NULL,
    workload_type              text        NOT NULL,
    submitted_at               timestamptz,              -- NULL until the submission arrives
    phase                      text,                     -- NULL until the first phase event
    phase_sequence             integer     NOT NULL DEFAULT 0,
    phase_changed_at           timestamptz,
    first_running_at           timestamptz,
    completed_at               timestamptz,
    failed_at                  timestamptz,
    -- each latency is observed once per workload, when both of its ends are known
    running_latency_observed   boolean     NOT NULL DEFAULT false,
    completed_latency_observed boolean     NOT NULL DEFAULT false
);
CREATE INDEX workloads_phase_type ON workloads (phase, workload_type);
