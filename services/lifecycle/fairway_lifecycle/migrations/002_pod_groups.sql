-- The pod group lifecycle last announced to the scheduler, so it is announced again only when
-- a pod appears, is bound, finishes or goes away.
ALTER TABLE workloads
    ADD COLUMN podgroup_sequence  integer NOT NULL DEFAULT 0,
    ADD COLUMN podgroup_signature text    NOT NULL DEFAULT '';
