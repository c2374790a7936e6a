-- Runs by dependency (`after`, `after_failure`) are keyed by the upstream end that made
-- them due, their `scheduled_for`: instances that see the same end at once insert the
-- same key, and this index keeps one, as it keeps one start per scheduled fire.
DROP INDEX runs_one_start_per_fire;
CREATE UNIQUE INDEX runs_one_start_per_fire ON runs (job_id, scheduled_for)
    WHERE trigger IN ('schedule', 'catch_up', 'dependency') AND attempt = 1;
