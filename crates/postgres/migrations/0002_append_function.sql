-- Hearth schema, version 2: a batch of appends in one statement.
--
-- `hearth_append` runs the appends of one group-commit batch (docs/postgres.md,
-- "Group commit"), in array order, inside the caller's transaction and with the
-- caller's rights (SECURITY INVOKER: RLS applies to every statement in it). Before
-- each append it sets `app.tenant_id` to that append's household (transaction-
-- local, as the application does), so every row it reads or writes is checked
-- against that household's policy.
--
-- One call per batch instead of a statement per append: measured with pgbench on
-- the 2-core benchmark machine, 4 appends per call ran 7,359 appends/s against
-- 4,673-5,512 for 4 pipelined statements per transaction (BENCHMARKS.md). Its statements run
-- with generic plans (`plan_cache_mode`): with custom plans PL/pgSQL re-planned
-- every statement on every call, which cost more than the statements themselves.
--
-- The arguments are parallel arrays, one element per append, except the `event_*`
-- and `job_kinds` arrays, which hold every append's events one after the other
-- (`counts` says how many each has). An append with a NULL outcome records its
-- command as accepted and appends its events at `expected` + 1, + 2, ...; one with
-- an outcome records its command as rejected with that outcome.
--
-- Returns one number per append:
--   >= 0  written: the household's last_seq after it (0 for a rejected command);
--   -1    the command id was already recorded: nothing written;
--   -2    the order was not at `expected` (checked only when the append has
--         events: an empty decision is recorded at the head): nothing written.
-- A refused append undoes its seq bump (the household's row lock is held, so no
-- one has seen it) and the others go on. Any error raised (which the checks under
-- the household's lock leave to a racing rejected command with the same id, or to
-- a value the tables refuse) aborts the whole call: the caller runs the appends
-- again one per transaction.
CREATE FUNCTION hearth_append(
    tenants          uuid[],
    command_ids      uuid[],
    command_types    text[],
    command_payloads jsonb[],
    command_metadata jsonb[],
    outcomes         jsonb[],
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
                    WHERE e.tenant_id = t AND e.aggregate_id = aggregates[i])
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
                    INSERT INTO events (tenant_id, seq, id, aggregate_id, version, type,
                                        schema_version, payload, metadata, created_at,
                                        requires_job)
                    SELECT t, head - n + k, event_ids[off + k], aggregates[i], expected[i] + k,
                           event_types[off + k], event_schemas[off + k], event_payloads[off + k],
                           event_metadata[off + k], event_created[off + k], event_requires[off + k]
                    FROM generate_series(1, n) AS k
                )
                INSERT INTO jobs (tenant_id, id, order_id, kind, command_id, created_at)
                SELECT t, event_ids[off + k], aggregates[i], job_kinds[off + k], cmd,
                       event_created[off + k]
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

-- `hearth serve` checks, as the application role, that the database has every
-- migration it knows before it starts (`check_schema`).
GRANT SELECT ON hearth_migrations TO hearth_app;
