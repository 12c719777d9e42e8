-- A preemption in progress: the pods it evicts (by uid) no longer count as the workload's.
ALTER TABLE workloads
    ADD COLUMN preempted      boolean NOT NULL DEFAULT false,
    ADD COLUMN preempted_pods text[]  NOT NULL DEFAULT '{}';
