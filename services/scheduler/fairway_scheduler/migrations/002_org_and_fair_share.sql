-- The fair-share scheduler: org units (projects, departments, node pools) as the org events
-- last stated them, what workloads ask beyond whole GPUs, what allocations hold, and what the
-- scheduler last published about queues and pending workloads.

-- Org units, last value per unit. `stream_sequence` is the ORG stream's sequence of the event
-- stored: an older one (a redelivery after a newer one) never overwrites a newer one.
CREATE TABLE projects (
    id                 text        PRIMARY KEY,
    name               text        NOT NULL,
    department_id      text,
    resources          jsonb       NOT NULL DEFAULT '[]'::jsonb,  -- [PoolResources]
    default_node_pools text[]      NOT NULL DEFAULT '{}',
    deleted            boolean     NOT NULL DEFAULT false,
    stream_sequence    bigint      NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE departments (
    id                 text        PRIMARY KEY,
    name               text        NOT NULL,
    resources          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    default_node_pools text[]      NOT NULL DEFAULT '{}',
    deleted            boolean     NOT NULL DEFAULT false,
    stream_sequence    bigint      NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE node_pools (
    name                   text        PRIMARY KEY,
    label_key              text,
    label_value            text,
    gpu_placement          text        NOT NULL DEFAULT 'binpack',
    cpu_placement          text        NOT NULL DEFAULT 'binpack',
    min_guaranteed_runtime text,
    deleted                boolean     NOT NULL DEFAULT false,
    stream_sequence        bigint      NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- Nodes: their labels (which pool takes them) and pod capacity.
ALTER TABLE nodes
    ADD COLUMN labels   jsonb   NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN max_pods integer NOT NULL DEFAULT 110;

-- Workloads: fractions, CPU and memory per pod; the project's id; the pending stretch.
ALTER TABLE workloads
    ADD COLUMN project_id      text,
    ADD COLUMN gpu_portion     double precision,
    ADD COLUMN gpu_memory_mib  integer,
    ADD COLUMN gpu_limit       double precision,
    ADD COLUMN cpu_millis      integer     NOT NULL DEFAULT 0,
    ADD COLUMN memory_mib      integer     NOT NULL DEFAULT 0,
    ADD COLUMN pending_since   timestamptz,                   -- when this stretch of waiting began
    ADD COLUMN pending_version integer     NOT NULL DEFAULT 0; -- SchedulingPending events sent

-- Allocations: the fraction of each device, and the host resources held.
ALTER TABLE allocations
    ADD COLUMN portion        double precision,
    ADD COLUMN gpu_memory_mib integer,
    ADD COLUMN gpu_limit      double precision,
    ADD COLUMN cpu_millis     integer NOT NULL DEFAULT 0,
    ADD COLUMN memory_mib     integer NOT NULL DEFAULT 0;

-- The queue status last published per queue; `version` numbers the QueueStatusChanged events.
CREATE TABLE queue_status (
    kind       text        NOT NULL,
    name       text        NOT NULL,
    node_pool  text        NOT NULL,
    status     jsonb       NOT NULL,
    version    integer     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name, node_pool)
);
