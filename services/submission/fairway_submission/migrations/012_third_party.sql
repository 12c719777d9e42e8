-- Third-party workloads (issue 18): pods Fairway schedules but did not create, grouped by top
-- owner and announced by lifecycle. Their row in the view names their owner; one whose
-- namespace belongs to no project has no project (only administrators see it).
ALTER TABLE workloads ALTER COLUMN project_id DROP NOT NULL;
ALTER TABLE workloads ADD COLUMN third_party jsonb;
ALTER TABLE workloads ADD COLUMN third_party_observed_at timestamptz;
-- When its request went to the scheduler (once it has a project).
ALTER TABLE workloads ADD COLUMN third_party_submitted_at timestamptz;
