-- The node-level scheduler (issue 17): each node pool's label and whether the node-level
-- scheduler is on for its nodes, as the ORG stream last said (the durable consumer does not
-- replay acknowledged messages after a restart).
CREATE TABLE node_pool_settings (
    name                         text PRIMARY KEY,
    label_key                    text,
    label_value                  text,
    node_level_scheduler_enabled boolean NOT NULL DEFAULT false
);
