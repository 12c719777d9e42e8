-- Phase events and pod-group events both carry pods, on two streams read by two consumers:
-- the newer list (by the lifecycle change's time) wins, whichever arrives last. Phase events
-- bring pod phases (Pending -> Running) that pod-group events do not announce.
ALTER TABLE workloads ADD COLUMN pods_at timestamptz;
