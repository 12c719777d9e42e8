-- A third-party workload's request follows a scale of its owner (issue 18): what was sent to
-- the scheduler last (its pods and minimum), and that request's revision (0: the first).
ALTER TABLE workloads ADD COLUMN third_party_request jsonb;
ALTER TABLE workloads ADD COLUMN third_party_revision integer NOT NULL DEFAULT 0;
-- A pod group's sequence: a third-party workload's counts tenths of a second since 2026 (it
-- must keep growing across lifecycle restarts), past 32 bits in 2032: 64 bits.
ALTER TABLE workloads ALTER COLUMN pods_sequence TYPE bigint;
DROP FUNCTION apply_pod_group_batch(uuid[], jsonb[], integer[], timestamptz[]);
CREATE FUNCTION apply_pod_group_batch(
    ids uuid[], pods jsonb[], sequences bigint[], times timestamptz[]
) RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
        UPDATE workloads SET pods = apply_pod_group_batch.pods[i], pods_sequence = sequences[i],
            pods_at = times[i]
        WHERE workload_id = ids[i] AND pods_sequence < sequences[i]
            AND (pods_at IS NULL OR times[i] >= pods_at);
    END LOOP;
END $$;
