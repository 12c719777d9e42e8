-- GPU memory swap (issue 17): each node pool's swap settings as the ORG stream last said, for
-- the node-side swap decision after a restart.
ALTER TABLE node_pool_settings ADD COLUMN swap_enabled boolean NOT NULL DEFAULT false;
ALTER TABLE node_pool_settings ADD COLUMN cpu_swap_memory_mib bigint NOT NULL DEFAULT 0;
ALTER TABLE node_pool_settings ADD COLUMN reserved_gpu_memory_for_swap_mib bigint NOT NULL
    DEFAULT 0;
