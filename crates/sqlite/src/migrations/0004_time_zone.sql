-- Schema version 4: a household's time zone (issue 17), an IANA name that every
-- member sees and picks times in. Additive: households created before it get UTC
-- (`hearth_core::ports::DEFAULT_TIME_ZONE`); the application checks names it accepts.
ALTER TABLE households ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
