-- Topology-aware placement: a node pool's network topology (node label keys, the widest level
-- first) and a workload's topology request (levels of it: required and preferred placement).
ALTER TABLE node_pools ADD COLUMN topology_levels text[] NOT NULL DEFAULT '{}';
ALTER TABLE workloads ADD COLUMN topology_required text;
ALTER TABLE workloads ADD COLUMN topology_preferred text;
