-- autoDeletionTimeAfterCompletionSeconds: when a finished workload is deleted by itself.
ALTER TABLE workloads ADD COLUMN delete_after timestamptz;
CREATE INDEX workloads_delete_after ON workloads (delete_after) WHERE delete_after IS NOT NULL;
