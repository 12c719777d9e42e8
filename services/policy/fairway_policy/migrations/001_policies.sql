-- Policies per scope and workload type: defaults to fill in, rules to check, values to impose.
-- Policy CRUD (issue 8) writes this table; evaluation does not read it yet, so the request/reply
-- path works without the database.
CREATE TABLE policies (
    id            uuid        PRIMARY KEY,
    scope_type    text        NOT NULL CHECK (scope_type IN ('cluster', 'department', 'project')),
    scope_id      text,                   -- NULL for the cluster scope
    workload_type text        CHECK (workload_type IN ('workspace', 'training', 'distributed',
                                                       'inference')),  -- NULL: every type
    defaults      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    rules         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    imposed       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (scope_type, scope_id, workload_type)
);
