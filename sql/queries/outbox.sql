-- The transactional outbox behind `qualification.updated`.

-- name: insert_outbox
-- Written in the same transaction as the state version it announces; the deterministic
-- event_id makes a replayed write (which cannot happen under the row lock) a no-op anyway.
-- The NOTIFY that wakes the relays rides in the same statement (one round trip, not two); it
-- is delivered at commit, and only for a row that was new.
WITH inserted AS (
    INSERT INTO tenant.outbox (event_id, tenant_id, topic, key, payload)
    VALUES ($1::uuid, $2::uuid, $3::text, $4::text, $5::jsonb)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
)
SELECT pg_notify('tenant_outbox', '') FROM inserted;

-- name: claim_outbox
-- SKIP LOCKED lets several relays share the table. The advisory lock on the conversation key
-- keeps a conversation with one relay at a time: without it a second relay could skip the
-- locked version N and publish N + 1 first. Rows come in id order, which is version order
-- within a conversation because versions are written under the state's row lock.
SELECT id, event_id, topic, key, payload, attempts,
       extract(epoch FROM clock_timestamp() - created_at)::float8 AS age_s  -- for the metrics
FROM tenant.outbox
WHERE published_at IS NULL
  -- A row the broker refused waits out its delay (defer_outbox_rows) behind the others.
  AND (next_attempt_at IS NULL OR next_attempt_at <= now())
  AND pg_try_advisory_xact_lock(7301, hashtext(key))
ORDER BY id
LIMIT $1::int
FOR UPDATE SKIP LOCKED;

-- name: mark_outbox_published
UPDATE tenant.outbox SET published_at = now() WHERE id = ANY($1::bigint[]);

-- name: defer_outbox_rows
-- Rows of the claim the broker refused: tried again after $3 seconds, doubled with each refusal
-- up to $4 seconds, so a row that can never be published costs one try per $4 and blocks
-- nothing.
UPDATE tenant.outbox AS o
SET attempts = o.attempts + 1,
    next_attempt_at = now() + make_interval(
        secs => least($3::float8 * power(2, o.attempts), $4::float8)
    ),
    last_error = refused.error
FROM unnest($1::bigint[], $2::text[]) AS refused(id, error)
WHERE o.id = refused.id;

-- name: outbox_backlog
SELECT count(*) FROM tenant.outbox WHERE published_at IS NULL;
