-- Hearth schema, version 1. Applied by `hearth migrate` as the owner role.
-- Every table leads its keys and indexes with tenant_id (the household id), has
-- row-level security enabled and forced, and one tenant policy on
-- NULLIF(current_setting('app.tenant_id', true), '')::uuid.

-- Roles are cluster-wide: created here only when missing (the owner then needs
-- CREATEROLE; a DBA may create them beforehand, and this does nothing).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hearth_app') THEN
        CREATE ROLE hearth_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hearth_relay') THEN
        CREATE ROLE hearth_relay LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
END
$$;

-- The household: its name (NULL until the Directory registers it: an append to a
-- household the directory has not created yet creates its seq counter row) and its
-- seq counter. `last_seq` is bumped under a row lock by every append.
CREATE TABLE households (
    tenant_id  uuid PRIMARY KEY,
    name       text,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seq   bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
);

CREATE TABLE events (
    tenant_id      uuid NOT NULL,
    seq            bigint NOT NULL CHECK (seq > 0),
    id             uuid NOT NULL,
    aggregate_id   uuid NOT NULL,
    version        integer NOT NULL CHECK (version > 0),
    type           text NOT NULL,
    schema_version integer NOT NULL,
    payload        jsonb NOT NULL,
    metadata       jsonb NOT NULL,
    created_at     timestamptz NOT NULL,
    requires_job   boolean NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (tenant_id, seq),
    CONSTRAINT events_stream_version UNIQUE (tenant_id, aggregate_id, version),
    CONSTRAINT events_id UNIQUE (tenant_id, id)
);

-- The seed's `aggregates`: one cached state per order and snapshot schema.
CREATE TABLE snapshots (
    tenant_id      uuid NOT NULL,
    aggregate_id   uuid NOT NULL,
    schema_version integer NOT NULL,
    version        integer NOT NULL CHECK (version >= 0),
    state          jsonb NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, aggregate_id, schema_version)
);

CREATE TABLE commands (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    type       text NOT NULL,
    payload    jsonb NOT NULL,
    metadata   jsonb NOT NULL,
    status     text NOT NULL CHECK (status IN
                   ('pending', 'accepted', 'rejected', 'scheduled', 'completed', 'failed')),
    outcome    jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- The outbox: a job per event that needs durable work, written with the event.
CREATE TABLE jobs (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    order_id   uuid NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('fulfil', 'cancel')),
    command_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    status     text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'started')),
    started_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
-- Small by nature: only jobs the relay has not handed over yet.
CREATE INDEX jobs_pending ON jobs (tenant_id, created_at) WHERE status = 'pending';

CREATE TABLE members (
    tenant_id uuid NOT NULL,
    id        uuid NOT NULL,
    name      text NOT NULL,
    role      text NOT NULL CHECK (role IN ('owner', 'member')),
    joined_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE invites (
    tenant_id  uuid NOT NULL,
    code       text NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_by    uuid,
    used_at    timestamptz,
    PRIMARY KEY (tenant_id, code)
);

-- Row-level security: on, forced (the owner too), one tenant policy per table.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['households', 'events', 'snapshots', 'commands', 'jobs', 'members', 'invites']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid) '
            'WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END
$$;

-- The relay reads across households, and only this: which households moved
-- (tenant_id, last_seq: the feed's fallback poll) and which jobs are pending.
CREATE POLICY relay_heads ON households FOR SELECT TO hearth_relay USING (true);
CREATE POLICY relay_pending_jobs ON jobs FOR SELECT TO hearth_relay USING (status = 'pending');

-- Aborts the append statement with a Hearth SQLSTATE, so that a pipelined COMMIT
-- turns into a rollback (HR001: command id already recorded, HR002: the stream is
-- not at the expected version). Runs with the caller's rights.
CREATE FUNCTION hearth_abort(code text, message text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON FUNCTION hearth_abort(text, text) FROM PUBLIC;

-- The application role: DML it needs, nothing else. No DELETE anywhere.
GRANT USAGE ON SCHEMA public TO hearth_app, hearth_relay;
GRANT SELECT, INSERT, UPDATE ON households TO hearth_app;
GRANT SELECT, INSERT ON events TO hearth_app;
GRANT SELECT, INSERT, UPDATE ON snapshots TO hearth_app;
GRANT SELECT, INSERT ON commands TO hearth_app;
GRANT SELECT, INSERT, UPDATE (status, started_at) ON jobs TO hearth_app;
GRANT SELECT, INSERT ON members TO hearth_app;
GRANT SELECT, INSERT, UPDATE (created_by, created_at, expires_at, used_by, used_at) ON invites TO hearth_app;
GRANT EXECUTE ON FUNCTION hearth_abort(text, text) TO hearth_app;

-- The relay role: read-only, and only these columns.
GRANT SELECT (tenant_id, last_seq) ON households TO hearth_relay;
GRANT SELECT (tenant_id, id, order_id, kind, command_id, created_at, status) ON jobs TO hearth_relay;
