-- Node types a project's or department's workloads may pick (Run:ai's `nodeTypes`:
-- {"training": [...], "workspace": [...]}); NULL: any node. Scheduling rules already have a
-- column (schedulingRules, camelCase keys, only the limits that are set).
ALTER TABLE departments ADD COLUMN node_types jsonb;
ALTER TABLE projects ADD COLUMN node_types jsonb;
