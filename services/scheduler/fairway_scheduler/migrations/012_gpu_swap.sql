-- GPU memory swap (issue 17): a node pool's swap settings, so that a restart keeps them: on
-- its swap-capable nodes fractions of one device may together ask for more GPU memory than the
-- device has, up to this much host memory per node, with this much of each device kept back.
ALTER TABLE node_pools ADD COLUMN swap_enabled boolean NOT NULL DEFAULT false;
ALTER TABLE node_pools ADD COLUMN cpu_swap_memory_mib bigint NOT NULL DEFAULT 0;
ALTER TABLE node_pools ADD COLUMN reserved_gpu_memory_for_swap_mib bigint NOT NULL DEFAULT 0;
