-- Hearth schema, version 5: a household's time zone (issue 17), an IANA name that
-- every member sees and picks times in. Additive: households created before it get
-- UTC (`hearth_core::ports::DEFAULT_TIME_ZONE`); the application checks names it
-- accepts. hearth_app already may SELECT and UPDATE households; hearth_relay still
-- reads only (tenant_id, last_seq).
ALTER TABLE households ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC';
