-- Version 6: a job carries the correlation id of the command whose event asked for it
-- and the command's trace context (issue 18), so the process's commands, provider calls
-- and spans carry them on. Additive: a job recorded before has neither and reads as
-- correlated to its command.
ALTER TABLE jobs ADD COLUMN correlation_id uuid;
ALTER TABLE jobs ADD COLUMN traceparent text;
-- The relay's scan reads them (its grant on jobs is per column).
GRANT SELECT (correlation_id, traceparent) ON jobs TO hearth_relay;

-- hearth_append as in version 3, but the jobs it records take the correlation id from
-- their event's metadata and the trace context from their command's (both of which the
-- caller already passes). Same signature and rights.
CREATE OR REPLACE FUNCTION hearth_append(
    tenants          uuid[],
    command_ids      uuid[],
    command_types    text[],
    command_payloads jsonb[],
    command_metadata jsonb[],
    outcomes         jsonb[],
    domains          text[],
    aggregates       uuid[],
    expected         int4[],
    counts           int4[],
    event_ids        uuid[],
    event_types      text[],
    event_schemas    int4[],
    event_payloads   jsonb[],
    event_metadata   jsonb[],
    event_created    timestamptz[],
    event_requires   bool[],
    job_kinds        text[]
) RETURNS int8[]
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    appends  int := coalesce(array_length(tenants, 1), 0);
    events   int := coalesce(array_length(event_ids, 1), 0);
    i        int;
    off      int := 0;
    n        int;
    t        uuid;
    cmd      uuid;
    head     int8;
    result   int8;
    results  int8[] := '{}';
    recorded bool;
    version  int4;
    ignored  text;
BEGIN
    IF coalesce(array_length(command_ids, 1), 0) <> appends
       OR coalesce(array_length(command_types, 1), 0) <> appends
       OR coalesce(array_length(command_payloads, 1), 0) <> appends
       OR coalesce(array_length(command_metadata, 1), 0) <> appends
       OR coalesce(array_length(outcomes, 1), 0) <> appends
       OR coalesce(array_length(domains, 1), 0) <> appends
       OR coalesce(array_length(aggregates, 1), 0) <> appends
       OR coalesce(array_length(expected, 1), 0) <> appends
       OR coalesce(array_length(counts, 1), 0) <> appends
       OR coalesce(array_length(event_types, 1), 0) <> events
       OR coalesce(array_length(event_schemas, 1), 0) <> events
       OR coalesce(array_length(event_payloads, 1), 0) <> events
       OR coalesce(array_length(event_metadata, 1), 0) <> events
       OR coalesce(array_length(event_created, 1), 0) <> events
       OR coalesce(array_length(event_requires, 1), 0) <> events
       OR coalesce(array_length(job_kinds, 1), 0) <> events
       OR (SELECT coalesce(sum(c), 0) FROM unnest(counts) AS c) <> events THEN
        RAISE EXCEPTION USING ERRCODE = 'HR004',
            MESSAGE = 'hearth_append: the argument arrays do not describe the same appends';
    END IF;

    FOR i IN 1 .. appends LOOP
        t := tenants[i];
        cmd := command_ids[i];
        n := counts[i];
        ignored := set_config('app.tenant_id', t::text, true);

        IF outcomes[i] IS NOT NULL THEN
            -- A rejected command: recorded with its outcome, nothing else.
            INSERT INTO commands (tenant_id, id, type, payload, metadata, status, outcome)
            VALUES (t, cmd, command_types[i], command_payloads[i], command_metadata[i],
                    'rejected', outcomes[i])
            ON CONFLICT (tenant_id, id) DO NOTHING;
            result := CASE WHEN FOUND THEN 0 ELSE -1 END;
        ELSE
            -- The seq bump takes the household's row lock, held to COMMIT: from
            -- here on no other transaction appends to this household, so the
            -- checks below cannot be raced (each statement reads a new snapshot).
            UPDATE households h SET last_seq = h.last_seq + n
            WHERE h.tenant_id = t
            RETURNING h.last_seq INTO head;
            IF NOT FOUND THEN
                -- First append of a household the directory has not registered.
                INSERT INTO households AS h (tenant_id, last_seq) VALUES (t, n)
                ON CONFLICT (tenant_id) DO UPDATE SET last_seq = h.last_seq + EXCLUDED.last_seq
                RETURNING h.last_seq INTO head;
            END IF;

            -- Both checks in one statement: a repeated command id wins over a
            -- version conflict (its first outcome is the answer).
            SELECT EXISTS (SELECT FROM commands c WHERE c.tenant_id = t AND c.id = cmd),
                   (SELECT coalesce(max(e.version), 0) FROM events e
                    WHERE e.tenant_id = t AND e.domain = domains[i]
                      AND e.aggregate_id = aggregates[i])
            INTO recorded, version;
            IF recorded THEN
                result := -1;
            ELSIF n > 0 AND version <> expected[i] THEN
                -- (An empty decision is recorded at the head whatever the version.)
                result := -2;
            ELSE
                -- The command, its events and their outbox jobs in one statement.
                WITH command AS (
                    INSERT INTO commands (tenant_id, id, type, payload, metadata, status, outcome)
                    VALUES (t, cmd, command_types[i], command_payloads[i], command_metadata[i],
                            'accepted',
                            jsonb_build_object('status', 'accepted', 'seq', head, 'events', n))
                ), appended AS (
                    INSERT INTO events (tenant_id, seq, id, domain, aggregate_id, version, type,
                                        schema_version, payload, metadata, created_at,
                                        requires_job)
                    SELECT t, head - n + k, event_ids[off + k], domains[i], aggregates[i],
                           expected[i] + k,
                           event_types[off + k], event_schemas[off + k], event_payloads[off + k],
                           event_metadata[off + k], event_created[off + k], event_requires[off + k]
                    FROM generate_series(1, n) AS k
                )
                INSERT INTO jobs (tenant_id, id, domain, aggregate_id, kind, command_id,
                                  created_at, correlation_id, traceparent)
                SELECT t, event_ids[off + k], domains[i], aggregates[i], job_kinds[off + k], cmd,
                       event_created[off + k],
                       (event_metadata[off + k] ->> 'correlationId')::uuid,
                       command_metadata[i] ->> 'traceparent'
                FROM generate_series(1, n) AS k
                WHERE job_kinds[off + k] IS NOT NULL;
                result := head;
            END IF;

            IF result < 0 THEN
                UPDATE households h SET last_seq = h.last_seq - n WHERE h.tenant_id = t;
            END IF;
        END IF;

        results := results || result;
        off := off + n;
    END LOOP;
    RETURN results;
END
$$;

REVOKE ALL ON FUNCTION hearth_append FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth_append TO hearth_app;
