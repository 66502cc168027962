-- The dashboard lists one state's jobs newest first and counts jobs per state; this index
-- serves both without sorting or scanning the whole table.
CREATE INDEX jobs_state_id ON jobs (state, id);
