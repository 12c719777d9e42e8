-- Policy CRUD (issue 8): the scope's name, so a refusal can say "department ml" rather than an
-- id, and who changed the policy last. Documents keep the API's nested shape in the three
-- jsonb columns; one row per (scope, workload type).
ALTER TABLE policies ADD COLUMN scope_name text;
ALTER TABLE policies ADD COLUMN updated_by text;
CREATE INDEX policies_by_type ON policies (workload_type, scope_type);
