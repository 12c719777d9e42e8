-- An inference server's serving status as lifecycle last published it (endpoint, desired and
-- ready replicas, load); serving_sequence orders them, an older one changes nothing.
ALTER TABLE workloads
    ADD COLUMN serving          jsonb,
    ADD COLUMN serving_sequence bigint NOT NULL DEFAULT 0;
