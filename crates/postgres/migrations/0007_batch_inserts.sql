-- Version 7: a batch's rows are written with one set-based statement (issue 20).
--
-- Until now `hearth_append` ran, per append of a batch, a statement that inserted the
-- command, its events and their jobs under that append's household
-- (`app.tenant_id`). Starting such a statement (planning is cached; initialising its
-- executor is not) was a large part of the server's CPU per append. Now the per-append
-- loop only takes each household's seq row lock and checks the command id and the
-- stream version (also against the appends accepted earlier in the same batch), and
-- the accepted appends' rows are inserted by ONE statement for the whole batch, across
-- its households.
--
-- Row-level security still holds each row to a household the transaction named: a
-- second, INSERT-only policy `batch_insert` on commands, events and jobs admits a row
-- whose household is in `app.batch_tenants`, a transaction-local list that
-- `hearth_append` sets from its own `tenants` argument (the appends' envelopes) right
-- before that statement and clears right after. Every read, update and delete, and
-- every other insert, is still held to the one household in `app.tenant_id`
-- (`tenant_isolation`, unchanged). docs/postgres.md, "Batch inserts".

CREATE POLICY batch_insert ON commands AS PERMISSIVE FOR INSERT TO hearth_app
    WITH CHECK (tenant_id = ANY (NULLIF(current_setting('app.batch_tenants', true), '')::uuid[]));
CREATE POLICY batch_insert ON events AS PERMISSIVE FOR INSERT TO hearth_app
    WITH CHECK (tenant_id = ANY (NULLIF(current_setting('app.batch_tenants', true), '')::uuid[]));
CREATE POLICY batch_insert ON jobs AS PERMISSIVE FOR INSERT TO hearth_app
    WITH CHECK (tenant_id = ANY (NULLIF(current_setting('app.batch_tenants', true), '')::uuid[]));

-- Same signature, rights and answers as version 6: per append, its head seq (accepted),
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
                   (SELECT coalesce(max(e.version), 0) FROM events e
                    WHERE e.tenant_id = t AND e.domain = domains[i]
                      AND e.aggregate_id = aggregates[i])
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
