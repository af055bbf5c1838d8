-- Schema version 3: members leave (or are removed) and sessions (issue 14).
-- Additive: a removed member keeps their row, marked, so their id is never
-- admitted again and the history can still name them.
ALTER TABLE members ADD COLUMN removed_at INTEGER;

-- A member's session on one device; ended_at is set when the member ends it, when
-- the member is removed, or when a rotated credential is presented again.
CREATE TABLE sessions (
    tenant_id    BLOB    NOT NULL REFERENCES households (tenant_id),
    session_id   BLOB    NOT NULL,
    member_id    BLOB    NOT NULL,
    device       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    ended_at     INTEGER,
    PRIMARY KEY (tenant_id, session_id),
    FOREIGN KEY (tenant_id, member_id) REFERENCES members (tenant_id, member_id)
) WITHOUT ROWID;
CREATE INDEX sessions_of_member ON sessions (tenant_id, member_id);

-- Every refresh credential a session had, by the SHA-256 of the credential (hex; the
-- credential itself is never stored). rotated_at is set when the credential is
-- exchanged for the next: presenting it again is a reuse.
CREATE TABLE session_credentials (
    tenant_id  BLOB    NOT NULL REFERENCES households (tenant_id),
    hash       TEXT    NOT NULL,
    session_id BLOB    NOT NULL,
    issued_at  INTEGER NOT NULL,
    rotated_at INTEGER,
    PRIMARY KEY (tenant_id, hash),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions (tenant_id, session_id)
) WITHOUT ROWID;
