-- The view's pods follow lifecycle's pod-group events, which say when a pod appears, is bound,
-- finishes or goes away even while the phase stays the same (an evicted pod leaving after its
-- workload went Pending, a retry's new pod). 0: none seen yet; the phase events' pods stand.
ALTER TABLE workloads ADD COLUMN pods_sequence integer NOT NULL DEFAULT 0;
