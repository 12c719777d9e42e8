CREATE TABLE settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    username      text        NOT NULL UNIQUE,
    password_hash text        NOT NULL,
    role          text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    id         bigserial PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The API's view of workloads: as submitted, plus the phase lifecycle last reported.
CREATE TABLE workloads (
    workload_id     uuid PRIMARY KEY,
    name            text        NOT NULL,
    project_id      bigint      NOT NULL REFERENCES projects (id),
    project         text        NOT NULL,
    workload_type   text        NOT NULL,
    submitted_spec  jsonb       NOT NULL,
    effective_spec  jsonb       NOT NULL,
    created_by      text        NOT NULL,
    created_at      timestamptz NOT NULL,
    desired_phase   text        NOT NULL DEFAULT 'Running',
    phase           text        NOT NULL DEFAULT 'Creating',
    phase_reason    text,
    phase_message   text,
    phase_sequence  integer     NOT NULL DEFAULT 0,
    phase_updated_at timestamptz,
    pods            jsonb       NOT NULL DEFAULT '[]'::jsonb,
    running_since   timestamptz,
    total_running_seconds double precision NOT NULL DEFAULT 0,
    pending_since   timestamptz,
    total_pending_seconds double precision NOT NULL DEFAULT 0,
    UNIQUE (project_id, name)
);
CREATE INDEX workloads_created ON workloads (created_at);

-- Phase history, one row per transition (GET /workloads/{id}/events).
CREATE TABLE workload_events (
    workload_id uuid        NOT NULL REFERENCES workloads (workload_id) ON DELETE CASCADE,
    sequence    integer     NOT NULL,
    previous_phase text,
    phase       text        NOT NULL,
    reason      text        NOT NULL,
    message     text        NOT NULL,
    time        timestamptz NOT NULL,
    PRIMARY KEY (workload_id, sequence)
);
