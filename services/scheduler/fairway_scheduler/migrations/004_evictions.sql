-- Pods a preemption decision is evicting (reclaim, preempt, consolidate, stale gang), written
-- with the decision's outbox row and dropped with the pod's allocation: until then the pod
-- holds its GPUs, is no candidate for another decision, and its room is promised to the
-- workload it was evicted for.
CREATE TABLE evictions (
    workload_id text        NOT NULL,
    pod         text        NOT NULL,
    decision_id text        NOT NULL,
    reason      text        NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workload_id, pod)
);
