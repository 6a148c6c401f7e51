-- Jobs that one worker at a time runs across the fleet (sweepers), and what they look for.

-- name: try_advisory_lock
-- One worker at a time per named job ($1), so two never sweep the same conversations at once.
-- A session lock on the connection held for the round: released by advisory_unlock, by the
-- pool's reset of the connection, or by the session ending if the worker dies.
SELECT pg_try_advisory_lock(7302, hashtext($1::text));

-- name: advisory_unlock
SELECT pg_advisory_unlock(7302, hashtext($1::text));

-- name: quiet_pending_conversations
-- Keys of conversations with pending turns and no newer pending turn for $1 seconds, oldest
-- first, at most $2 (a SECURITY DEFINER function: see migration 0003).
SELECT tenant_id, account_id, contact_id
FROM tenant.quiet_pending_conversations(make_interval(secs => $1::float8), $2::int);
