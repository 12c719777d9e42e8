-- A distributed workload's master sized apart from its workers (its masterSpec's compute):
-- PodSize's fields as a JSON object; NULL when the master is sized like the workers.
ALTER TABLE workloads ADD COLUMN master jsonb;
