-- Foreign usage: what a node's pods that another scheduler bound hold (from its inventory),
-- taken from its free room after a restart as before it.
ALTER TABLE nodes ADD COLUMN foreign_pods integer NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN foreign_gpus integer NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN foreign_cpu_millis integer NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN foreign_memory_mib bigint NOT NULL DEFAULT 0;
