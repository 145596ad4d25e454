-- The purge (retention.*) finds old rows by their time, in batches.
CREATE INDEX calls_at ON calls (at);
CREATE INDEX sends_at ON sends (at);
CREATE INDEX enrolments_updated ON enrolments (updated_at);
CREATE INDEX lifecycle_operations_finished ON lifecycle_operations (finished_at);
