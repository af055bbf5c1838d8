-- Hearth schema, version 4: members leave (or are removed), and sessions (issue 14).
-- Additive. A removed member keeps their row, marked (the application role has no
-- DELETE), so their id is never admitted again and the history can still name them.
ALTER TABLE members ADD COLUMN removed_at timestamptz;

-- A member's session on one device; ended_at is set when the member ends it, when
-- the member is removed, or when a rotated credential is presented again.
CREATE TABLE sessions (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    member_id    uuid NOT NULL,
    device       text NOT NULL,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL,
    ended_at     timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, member_id) REFERENCES members (tenant_id, id)
);
CREATE INDEX sessions_of_member ON sessions (tenant_id, member_id);

-- Every refresh credential a session had, by the SHA-256 of the credential (hex; the
-- credential itself is never stored). rotated_at is set when it is exchanged for the
-- next: presenting it again is a reuse.
CREATE TABLE session_credentials (
    tenant_id  uuid NOT NULL,
    hash       text NOT NULL,
    session_id uuid NOT NULL,
    issued_at  timestamptz NOT NULL,
    rotated_at timestamptz,
    PRIMARY KEY (tenant_id, hash),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions (tenant_id, id)
);

-- Row-level security as on every other table.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sessions', 'session_credentials']
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

REVOKE ALL ON sessions, session_credentials FROM PUBLIC;
-- Still no DELETE: a member leaves by a mark, a session ends by a mark.
GRANT UPDATE (role, removed_at) ON members TO hearth_app;
GRANT SELECT, INSERT, UPDATE (last_used_at, ended_at) ON sessions TO hearth_app;
GRANT SELECT, INSERT, UPDATE (rotated_at) ON session_credentials TO hearth_app;
