-- Deferred turns and the extraction schedule (migration 0007, worker/qualify/deferred_extraction*.py).

-- name: find_deferred_turns
-- Which of a batch's turns already wait for their extraction, with their fingerprints: a
-- redelivery is a duplicate, the same id with other content a conflict.
SELECT event_id, fingerprint FROM tenant.deferred_turns
WHERE tenant_id = $1::uuid AND event_id = ANY($2::uuid[]);

-- name: schedule_extraction
-- A conversation got deferred turns at $4. Upserted before the turns are inserted, so it takes
-- the row lock a releasing scheduler takes first (lock_extraction_due).
INSERT INTO tenant.extraction_due AS d (tenant_id, account_id, contact_id, first_at, last_at)
VALUES ($1::uuid, $2::text, $3::text, $4::timestamptz, $4::timestamptz)
ON CONFLICT (tenant_id, account_id, contact_id) DO UPDATE
SET last_at = greatest(d.last_at, excluded.last_at);

-- name: insert_deferred_turns
INSERT INTO tenant.deferred_turns
    (event_id, tenant_id, account_id, contact_id, turn, fingerprint, received_at)
SELECT t.event_id, $1::uuid, $2::text, $3::text, t.turn, t.fingerprint, $4::timestamptz
FROM unnest($5::uuid[], $6::jsonb[], $7::text[]) AS t(event_id, turn, fingerprint)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id;

-- name: read_deferred_turns
-- The conversation's deferred turns in arrival order (the service orders them as a batch).
SELECT event_id, turn FROM tenant.deferred_turns
WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text
ORDER BY received_at, event_id
LIMIT $4::int;

-- name: lock_extraction_due
-- The row lock schedule_extraction takes: a batch deferring a turn right now commits first
-- (and its turn is then seen as remaining), or waits for this release.
SELECT claim FROM tenant.extraction_due
WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text
FOR UPDATE;

-- name: delete_deferred_turns
DELETE FROM tenant.deferred_turns
WHERE tenant_id = $1::uuid AND event_id = ANY($2::uuid[]);

-- name: reschedule_extraction
-- The claim ($4) ends; turns deferred meanwhile keep the conversation scheduled, due by their
-- own arrival times. Another scheduler's claim (ours ran out) is left alone.
UPDATE tenant.extraction_due AS d
SET first_at = r.first_at, last_at = r.last_at, claim = NULL, claimed_until = NULL
FROM (SELECT min(received_at) AS first_at, max(received_at) AS last_at
      FROM tenant.deferred_turns
      WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text) AS r
WHERE d.tenant_id = $1::uuid AND d.account_id = $2::text AND d.contact_id = $3::text
  AND d.claim IS NOT DISTINCT FROM $4::uuid AND r.first_at IS NOT NULL;

-- name: unschedule_extraction
-- Nothing deferred is left: the conversation leaves the schedule.
DELETE FROM tenant.extraction_due AS d
WHERE d.tenant_id = $1::uuid AND d.account_id = $2::text AND d.contact_id = $3::text
  AND d.claim IS NOT DISTINCT FROM $4::uuid
  AND NOT EXISTS (SELECT 1 FROM tenant.deferred_turns AS t
                  WHERE t.tenant_id = $1::uuid AND t.account_id = $2::text
                    AND t.contact_id = $3::text);

-- name: claim_deferred_conversation
-- One conversation's deferred turns, due or not, claimed as $4 until the database's now() plus
-- $5, unless another claim's lease still runs (by the database's clock, as every lease: the
-- workers' clocks may disagree). The row lock is the one schedule_extraction and the
-- schedulers' claims take. No row: nothing is deferred for the conversation.
WITH due AS (
    SELECT d.tenant_id, d.account_id, d.contact_id,
           (d.claimed_until IS NULL OR d.claimed_until < now()) AS free
    FROM tenant.extraction_due AS d
    WHERE d.tenant_id = $1::uuid AND d.account_id = $2::text AND d.contact_id = $3::text
    FOR UPDATE
), claimed AS (
    UPDATE tenant.extraction_due AS d
    SET claim = $4::uuid, claimed_until = now() + $5::interval
    FROM due
    WHERE due.free AND d.tenant_id = due.tenant_id AND d.account_id = due.account_id
      AND d.contact_id = due.contact_id
    RETURNING 1
)
SELECT due.free AS claimed FROM due;

-- name: claim_due_extractions
-- The leases ($3) are set and compared by the database's clock (migration 0009's version of the
-- function); $1, the claiming worker's time, only decides which conversations are due.
SELECT tenant_id, account_id, contact_id
FROM tenant.claim_due_extractions($1::timestamptz, $2::interval, $3::interval, $4::interval,
                                  $5::uuid, $6::int);

-- name: renew_extraction_claims
-- Extended to the database's now() plus the lease ($2).
SELECT tenant.renew_extraction_claims($1::uuid[], $2::interval);
