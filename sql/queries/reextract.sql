-- Re-extraction (`python -m worker reextract`): which conversations, and which of their turns.
-- Both run in the tenant's context (row-level security); the tenant_id conditions use the indexes.

-- name: reextract_candidates
-- A tenant's conversations, or the one named by $2/$3; with $4, only those that have turns
-- whose extraction failed (extracted_at is null: the partial index conversation_turns_pending).
SELECT s.account_id, s.contact_id
FROM tenant.conversation_states s
WHERE s.tenant_id = $1::uuid
  AND ($2::text IS NULL OR (s.account_id = $2::text AND s.contact_id = $3::text))
  AND (NOT $4::bool OR EXISTS (
        SELECT 1 FROM tenant.conversation_turns t
        WHERE t.tenant_id = s.tenant_id AND t.account_id = s.account_id
          AND t.contact_id = s.contact_id AND t.extracted_at IS NULL))
ORDER BY s.account_id, s.contact_id;

-- name: recent_turns
-- The conversation's latest $4 stored turns, oldest first: what a re-extraction reads after a
-- prompt or model change (the same bound as the pending turns of a normal extraction).
-- Turns whose text retention cleared have nothing to read: skipped (cleared_turn_count).
SELECT event_id, speaker, channel, text, occurred_at
FROM (
    SELECT event_id, speaker, channel, text, occurred_at, sequence, received_at
    FROM tenant.conversation_turns
    WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text
      AND text_cleared_at IS NULL
    ORDER BY occurred_at DESC, sequence DESC NULLS FIRST, received_at DESC
    LIMIT $4::int
) AS latest
ORDER BY occurred_at, sequence NULLS LAST, received_at;
