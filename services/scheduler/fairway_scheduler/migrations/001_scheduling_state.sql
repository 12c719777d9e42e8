-- The scheduler's state. The service keeps it in memory for its cycles and loads it from here at
-- start; every change is written here first, in the transaction that consumes the event (or, for
-- decisions, together with the outbox row that announces them).

-- Nodes as the inventory last reported them.
CREATE TABLE nodes (
    name           text        PRIMARY KEY,
    pool           text        NOT NULL,
    ready          boolean     NOT NULL,
    gpus           integer     NOT NULL CHECK (gpus >= 0),
    gpu_product    text,
    gpu_memory_mib integer,
    cpu_millis     integer     NOT NULL DEFAULT 0,
    memory_mib     integer     NOT NULL DEFAULT 0,
    observed_at    timestamptz NOT NULL
);

-- What each submitted workload asks of the scheduler.
CREATE TABLE workloads (
    id              text        PRIMARY KEY,
    project         text        NOT NULL,
    priority_class  text        NOT NULL,
    priority        integer     NOT NULL,
    preemptible     boolean     NOT NULL,
    node_pools      text[]      NOT NULL DEFAULT '{}',
    pods            integer     NOT NULL CHECK (pods >= 1),
    min_pods        integer     NOT NULL CHECK (min_pods >= 1),
    gpus_per_pod    integer     NOT NULL CHECK (gpus_per_pod >= 0),
    submitted_at    timestamptz NOT NULL,
    trace_headers   jsonb       NOT NULL DEFAULT '{}'::jsonb,  -- the submission's trace context
    pending_code    text,                                      -- the last cycle's reason, if any
    pending_message text
);

-- Each workload's pods as the last applied phase event reports them. Events with a sequence not
-- above `sequence` are stale; a finished (terminal) workload absorbs everything after it.
CREATE TABLE workload_status (
    workload_id   text        PRIMARY KEY,
    project       text        NOT NULL,
    sequence      integer     NOT NULL,
    phase         text        NOT NULL,
    finished      boolean     NOT NULL,
    pods          jsonb       NOT NULL DEFAULT '[]'::jsonb,  -- [{name, node, phase, gpus}]
    trace_headers jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- GPUs held: pod -> node and device indices, from the bind decision that placed the pod.
CREATE TABLE allocations (
    workload_id  text        NOT NULL,
    pod          text        NOT NULL,
    node         text        NOT NULL,
    gpu_devices  integer[]   NOT NULL,
    decision_id  text        NOT NULL,
    allocated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workload_id, pod)
);
CREATE INDEX allocations_node ON allocations (node);
