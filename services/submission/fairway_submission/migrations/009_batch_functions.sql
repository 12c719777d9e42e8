-- A consumer's fetch applied in one call: one round trip, and one statement, so atomic without
-- BEGIN and COMMIT round trips of its own. The statements are repository.py's, run in the
-- order the batch gives (tests/submission/test_phase_view.py holds the two to one result).

-- Phase transitions: every transition into the history, then each into the view (only a newer
-- one moves it; the clocks add up what it ends), then the desired phase of those a scheduling
-- rule stopped.
CREATE OR REPLACE FUNCTION apply_phase_batch(
    ids uuid[], sequences integer[], previous text[], phases text[], reasons text[],
    messages text[], times timestamptz[], running boolean[], pending boolean[], pods jsonb[],
    rule_stopped boolean[]
) RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    n integer := coalesce(array_length(ids, 1), 0);
BEGIN
    FOR i IN 1 .. n LOOP
        INSERT INTO workload_events (workload_id, sequence, previous_phase, phase, reason,
                                     message, time)
        SELECT ids[i], sequences[i], previous[i], phases[i], reasons[i], messages[i], times[i]
        WHERE EXISTS (SELECT 1 FROM workloads WHERE workload_id = ids[i])
        ON CONFLICT DO NOTHING;
    END LOOP;
    FOR i IN 1 .. n LOOP
        UPDATE workloads SET
            total_running_seconds = total_running_seconds + CASE WHEN running_since IS NULL
                THEN 0 ELSE GREATEST(0, EXTRACT(EPOCH FROM (times[i] - running_since))) END,
            total_pending_seconds = total_pending_seconds + CASE WHEN pending_since IS NULL
                THEN 0 ELSE GREATEST(0, EXTRACT(EPOCH FROM (times[i] - pending_since))) END,
            running_since = CASE WHEN running[i] THEN times[i] ELSE NULL END,
            pending_since = CASE WHEN pending[i] THEN times[i] ELSE NULL END,
            phase = phases[i], phase_reason = reasons[i], phase_message = messages[i],
            phase_sequence = sequences[i], phase_updated_at = times[i],
            pods = CASE WHEN pods_at IS NULL OR times[i] >= pods_at THEN apply_phase_batch.pods[i]
                        ELSE workloads.pods END,
            pods_at = GREATEST(pods_at, times[i])
        WHERE workload_id = ids[i] AND phase_sequence < sequences[i];
    END LOOP;
    FOR i IN 1 .. n LOOP
        IF rule_stopped[i] THEN
            UPDATE workloads SET desired_phase = 'Stopped' WHERE workload_id = ids[i]
                AND desired_phase = 'Running' AND phase_sequence <= sequences[i];
        END IF;
    END LOOP;
END $$;

-- Pod-group events: the newest list wins; an older or repeated event changes nothing.
CREATE OR REPLACE FUNCTION apply_pod_group_batch(
    ids uuid[], pods jsonb[], sequences integer[], times timestamptz[]
) RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
        UPDATE workloads SET pods = apply_pod_group_batch.pods[i], pods_sequence = sequences[i],
            pods_at = times[i]
        WHERE workload_id = ids[i] AND pods_sequence < sequences[i]
            AND (pods_at IS NULL OR times[i] >= pods_at);
    END LOOP;
END $$;
