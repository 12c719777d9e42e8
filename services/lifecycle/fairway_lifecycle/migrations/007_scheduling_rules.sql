-- Scheduling rules (issue 8). Projects' and departments' rules as the ORG stream last said
-- (the durable consumers do not replay acknowledged messages after a restart).
CREATE TABLE org_rules (
    kind          text  NOT NULL,  -- 'project' | 'department'
    org_id        text  NOT NULL,
    name          text  NOT NULL,
    department_id text,            -- projects: their department
    rules         jsonb NOT NULL DEFAULT '{}'::jsonb,  -- camelCase keys, only the limits set
    PRIMARY KEY (kind, org_id)
);
CREATE INDEX org_rules_name ON org_rules (kind, name);

-- What the rules count for each workload's current run, so that a restart neither resets
-- nor double counts: time spent running (closed stretches plus the open one since
-- running_since), consecutive idle GPU windows up to last_window_end (a window is recorded
-- once: only a later window_end moves it), and the stop the rules decided, for the phase
-- reason of its Stopping and Stopped events.
CREATE TABLE workload_usage (
    workload_id     text PRIMARY KEY,
    running_seconds double precision NOT NULL DEFAULT 0,
    running_since   timestamptz,
    idle_windows    integer NOT NULL DEFAULT 0,
    last_window_end timestamptz,
    stop_reason     text,
    stop_message    text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
