-- An inference server's replica count as its autoscaler last set it (NULL: as submitted).
ALTER TABLE workloads ADD COLUMN replicas integer CHECK (replicas >= 0);
