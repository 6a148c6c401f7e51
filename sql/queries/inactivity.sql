-- Inactivity stalls (worker/qualify/inactivity.py; migration 0006). One worker sweeps at a
-- time: the advisory lock `try_advisory_lock('inactivity-sweeper')` (sweep.sql).

-- name: quiet_open_conversations
-- Keys of open deals whose latest turn happened before $1, quietest first, at most $2 (a
-- SECURITY DEFINER function across tenants: see migration 0006).
SELECT tenant_id, account_id, contact_id
FROM tenant.quiet_open_conversations($1::timestamptz, $2::int);

-- name: stall_source
-- What stalled a stalled deal: the source of its latest accepted stage record, when that
-- record moved it to `stalled` (no row otherwise, and for rows stalled before v2 kept no
-- record). A turn resumes a deal only when this says `inactivity`. Runs in the tenant's
-- context, under the state's row lock, so no other record of this deal can appear meanwhile.
SELECT latest.source
FROM (
    SELECT to_stage, source
    FROM tenant.stage_transitions
    WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text AND accepted
    ORDER BY version DESC, id DESC
    LIMIT 1
) AS latest
WHERE latest.to_stage = 'stalled';
