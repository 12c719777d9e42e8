-- Organisation (node pools, departments, project quotas) and access control (service accounts,
-- access rules). Quotas are kept as the API's `resources` list (jsonb): per node pool, gpu / cpu
-- / memory each {deserved, limit, overQuotaWeight}.

CREATE TABLE node_pools (
    id         bigserial PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    spec       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO node_pools (name) VALUES ('default');

CREATE TABLE departments (
    id                 bigserial PRIMARY KEY,
    name               text        NOT NULL UNIQUE,
    resources          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    default_node_pools jsonb       NOT NULL DEFAULT '[]'::jsonb,
    scheduling_rules   jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
INSERT INTO departments (name) VALUES ('default');

ALTER TABLE projects
    ADD COLUMN department_id      bigint REFERENCES departments (id),
    ADD COLUMN resources          jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN default_node_pools jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN scheduling_rules   jsonb,
    ADD COLUMN updated_at         timestamptz NOT NULL DEFAULT now();
UPDATE projects SET department_id = (SELECT id FROM departments WHERE name = 'default');
ALTER TABLE projects ALTER COLUMN department_id SET NOT NULL;

CREATE TABLE service_accounts (
    id          bigserial PRIMARY KEY,
    name        text        NOT NULL UNIQUE,
    client_id   text        NOT NULL UNIQUE,
    secret_hash text        NOT NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- subject_id: the username, group name or clientId; scope_id: '' for the cluster.
CREATE TABLE access_rules (
    id           bigserial PRIMARY KEY,
    subject_type text        NOT NULL,
    subject_id   text        NOT NULL,
    role_name    text        NOT NULL,
    scope_type   text        NOT NULL,
    scope_id     text        NOT NULL DEFAULT '',
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subject_type, subject_id, role_name, scope_type, scope_id)
);
CREATE INDEX access_rules_subject ON access_rules (subject_type, subject_id);

-- Users created before access rules keep their role, now as a cluster-wide rule.
INSERT INTO access_rules (subject_type, subject_id, role_name, scope_type, created_by)
    SELECT 'user', username, role, 'cluster', 'migration' FROM users;
