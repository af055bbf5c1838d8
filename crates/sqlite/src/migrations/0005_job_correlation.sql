-- Schema version 5: a job carries the correlation id of the command whose event asked
-- for it and the command's trace context (issue 18), so the process's commands,
-- provider calls and spans carry them on. Additive: a job recorded before has neither
-- and reads as correlated to its command.
ALTER TABLE jobs ADD COLUMN correlation_id BLOB;
ALTER TABLE jobs ADD COLUMN traceparent TEXT;
