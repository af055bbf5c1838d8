-- Version 8: the declared batch's households are read once per statement (issue 20).
--
-- Policy expressions are evaluated for every row a statement writes. `batch_insert`'s
-- check (migration 7) cast the text of `app.batch_tenants` to uuid[] for each row, so a
-- batch of n appends parsed n households 3n times (`perf` of the backends at 32 clients:
-- `array_in` and `ExecWithCheckOptions` were a fifth of the server's CPU). The same
-- check now reads the setting through a scalar subquery, which PostgreSQL evaluates once
-- per statement (an InitPlan); what it admits is unchanged: a row whose household is in
-- the list, nothing when the list is empty or unset. docs/postgres.md, "Batch inserts".

ALTER POLICY batch_insert ON commands
    WITH CHECK (tenant_id = ANY ((SELECT NULLIF(current_setting('app.batch_tenants', true), '')::uuid[])::uuid[]));
ALTER POLICY batch_insert ON events
    WITH CHECK (tenant_id = ANY ((SELECT NULLIF(current_setting('app.batch_tenants', true), '')::uuid[])::uuid[]));
ALTER POLICY batch_insert ON jobs
    WITH CHECK (tenant_id = ANY ((SELECT NULLIF(current_setting('app.batch_tenants', true), '')::uuid[])::uuid[]));

-- The stream's version is read as its last row (one index probe) instead of max(), which
-- spared an aggregate node's set-up per append.
-- Same signature, rights and answers as versions 6 and 7 (only the stream's version is
-- read as its last row rather than an aggregate): per append, its head seq (accepted),
-- 0 (a rejection recorded), -1 (the command id was recorded before, also earlier in
-- this batch) or -2 (version conflict, also with an append earlier in this batch).
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
    appends   int := coalesce(array_length(tenants, 1), 0);
    events    int := coalesce(array_length(event_ids, 1), 0);
    i         int;
    off       int := 0;
    n         int;
    t         uuid;
    cmd       uuid;
    head      int8;
    result    int8;
    results   int8[] := '{}';
    recorded  bool;
    version   int4;
    ignored   text;
    -- What this batch accepted so far: the command ids and streams (with their new
    -- versions) as text keys, so the loop checks against them without a statement.
    seen_cmds text[] := '{}';
    streams   text[] := '{}';
    versions  int4[] := '{}';
    at        int;
    -- The accepted appends, for the one insert at the end.
    acc_i     int4[] := '{}';
    acc_off   int4[] := '{}';
    acc_head  int8[] := '{}';
    acc_t     uuid[] := '{}';
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
            -- A rejected command: recorded with its outcome at once (rejections are
            -- rare), unless this batch accepted the same id before.
            IF (t::text || cmd::text) = ANY (seen_cmds) THEN
                result := -1;
            ELSE
                INSERT INTO commands (tenant_id, id, type, payload, metadata, status, outcome)
                VALUES (t, cmd, command_types[i], command_payloads[i], command_metadata[i],
                        'rejected', outcomes[i])
                ON CONFLICT (tenant_id, id) DO NOTHING;
                result := CASE WHEN FOUND THEN 0 ELSE -1 END;
            END IF;
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
            -- version conflict (its first outcome is the answer). What this batch
            -- accepted before is not in the tables yet: checked from the keys.
            SELECT EXISTS (SELECT FROM commands c WHERE c.tenant_id = t AND c.id = cmd),
                   coalesce((SELECT e.version FROM events e
                             WHERE e.tenant_id = t AND e.domain = domains[i]
                               AND e.aggregate_id = aggregates[i]
                             ORDER BY e.version DESC LIMIT 1), 0)
            INTO recorded, version;
            recorded := recorded OR (t::text || cmd::text) = ANY (seen_cmds);
            at := array_position(streams, t::text || domains[i] || aggregates[i]::text);
            IF at IS NOT NULL THEN
                version := versions[at];
            END IF;
            IF recorded THEN
                result := -1;
            ELSIF n > 0 AND version <> expected[i] THEN
                -- (An empty decision is recorded at the head whatever the version.)
                result := -2;
            ELSE
                result := head;
                seen_cmds := seen_cmds || (t::text || cmd::text);
                IF n > 0 THEN
                    IF at IS NULL THEN
                        streams := streams || (t::text || domains[i] || aggregates[i]::text);
                        versions := versions || (expected[i] + n);
                    ELSE
                        versions[at] := expected[i] + n;
                    END IF;
                END IF;
                acc_i := acc_i || i;
                acc_off := acc_off || off;
                acc_head := acc_head || head;
                acc_t := acc_t || t;
            END IF;

            IF result < 0 THEN
                UPDATE households h SET last_seq = h.last_seq - n WHERE h.tenant_id = t;
            END IF;
        END IF;

        results := results || result;
        off := off + n;
    END LOOP;

    IF coalesce(array_length(acc_i, 1), 0) > 0 THEN
        -- The accepted appends' commands, events and jobs in one statement, each row
        -- admitted by `batch_insert` for a household of this batch only.
        ignored := set_config('app.batch_tenants', acc_t::text, true);
        WITH accepted AS (
            SELECT a.i, a.off, a.head
            FROM unnest(acc_i, acc_off, acc_head) AS a(i, off, head)
        ), command AS (
            INSERT INTO commands (tenant_id, id, type, payload, metadata, status, outcome)
            SELECT tenants[a.i], command_ids[a.i], command_types[a.i], command_payloads[a.i],
                   command_metadata[a.i], 'accepted',
                   jsonb_build_object('status', 'accepted', 'seq', a.head, 'events', counts[a.i])
            FROM accepted a
        ), rows AS (
            SELECT a.i, a.off + k AS e, a.head - counts[a.i] + k AS seq, expected[a.i] + k AS version
            FROM accepted a, generate_series(1, counts[a.i]) AS k
        ), appended AS (
            INSERT INTO events (tenant_id, seq, id, domain, aggregate_id, version, type,
                                schema_version, payload, metadata, created_at, requires_job)
            SELECT tenants[r.i], r.seq, event_ids[r.e], domains[r.i], aggregates[r.i], r.version,
                   event_types[r.e], event_schemas[r.e], event_payloads[r.e],
                   event_metadata[r.e], event_created[r.e], event_requires[r.e]
            FROM rows r
        )
        INSERT INTO jobs (tenant_id, id, domain, aggregate_id, kind, command_id,
                          created_at, correlation_id, traceparent)
        SELECT tenants[r.i], event_ids[r.e], domains[r.i], aggregates[r.i], job_kinds[r.e],
               command_ids[r.i], event_created[r.e],
               (event_metadata[r.e] ->> 'correlationId')::uuid,
               command_metadata[r.i] ->> 'traceparent'
        FROM rows r
        WHERE job_kinds[r.e] IS NOT NULL;
        ignored := set_config('app.batch_tenants', '', true);
    END IF;
    RETURN results;
END
$$;

REVOKE ALL ON FUNCTION hearth_append FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth_append TO hearth_app;
