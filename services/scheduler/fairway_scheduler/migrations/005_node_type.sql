-- A workload may ask for one node type (a project's or department's scheduling rule): only
-- nodes labelled fairway.io/node-type=<it> take its pods.
ALTER TABLE workloads ADD COLUMN node_type text;
