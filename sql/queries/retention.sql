-- Turn text retention (worker/store/retention.py; migration 0005). One worker at a
-- time: the advisory lock `try_advisory_lock('turn-text-retention')` (sweep.sql).

-- name: clear_turn_text
-- Clears at most $3 turns extracted before $1, marking them cleared at $2 (a SECURITY DEFINER
-- function across tenants: see migration 0005). Returns how many it cleared.
SELECT tenant.clear_turn_text($1::timestamptz, $2::timestamptz, $3::int);

-- name: cleared_turn_count
-- Turns of the selected conversations whose text retention cleared: what `reextract` skips.
-- Runs in the tenant's context (row-level security).
SELECT count(*) FROM tenant.conversation_turns
WHERE tenant_id = $1::uuid
  AND ($2::text IS NULL OR (account_id = $2::text AND contact_id = $3::text))
  AND text_cleared_at IS NOT NULL;
