-- A third-party workload's request follows a scale of its owner (issue 18): what was sent to
-- the scheduler last (its pods and minimum), and that request's revision (0: the first).
ALTER TABLE workloads ADD COLUMN third_party_request jsonb;
ALTER TABLE workloads ADD COLUMN third_party_revision integer NOT NULL DEFAULT 0;
