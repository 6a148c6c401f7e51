-- Turns: one row per applied turn, keyed by the producer's event_id.

-- name: find_stored_turns
-- The short read before extraction: which of the batch's turns are already stored, so a
-- redelivered batch costs no LLM call. No lock: the write transaction re-checks on insert.
-- The fingerprint tells a redelivery (same content) from a conflict (same id, other content).
SELECT event_id, fingerprint FROM tenant.conversation_turns
WHERE tenant_id = $1::uuid AND event_id = ANY($2::uuid[]);

-- name: pending_turns
-- Turns whose extraction failed open; they ride along with the conversation's next extraction.
-- Retention never clears a pending turn; the text_cleared_at condition only makes sure no
-- emptied text ever reaches an extractor.
SELECT event_id, speaker, channel, text, occurred_at
FROM tenant.conversation_turns
WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text
  AND extracted_at IS NULL AND text_cleared_at IS NULL
ORDER BY occurred_at, sequence NULLS LAST, received_at
LIMIT $4::int;

-- name: insert_turns
-- ON CONFLICT DO NOTHING RETURNING tells which turns are new *inside* the write transaction:
-- only those count towards interaction_count, so a redelivered turn counts once.
INSERT INTO tenant.conversation_turns (
    event_id, tenant_id, account_id, contact_id, speaker, channel, text, occurred_at,
    sequence, metadata, fingerprint, extracted_at)
SELECT t.event_id, $1::uuid, $2::text, $3::text, t.speaker, t.channel, t.text, t.occurred_at,
       t.sequence, t.metadata, t.fingerprint, t.extracted_at
FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::int[],
            $10::jsonb[], $11::text[], $12::timestamptz[])
     AS t(event_id, speaker, channel, text, occurred_at, sequence, metadata, fingerprint,
          extracted_at)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id;

-- name: mark_turns_extracted
UPDATE tenant.conversation_turns SET extracted_at = $3::timestamptz
WHERE tenant_id = $1::uuid AND event_id = ANY($2::uuid[]) AND extracted_at IS NULL;

