-- Overrides (CONTRACT.md section 1, QualificationOverride): one row per applied override.

-- name: insert_override
-- Inside the write transaction that holds the state's row lock and writes version $7: ON
-- CONFLICT DO NOTHING RETURNING tells a new override from a redelivered one (or one whose
-- event_id another tenant took, which row-level security hides), so each applies once.
INSERT INTO tenant.overrides (
    event_id, tenant_id, account_id, contact_id, actor, payload, fingerprint, version)
VALUES ($4::uuid, $1::uuid, $2::text, $3::text, $5::jsonb, $6::jsonb, $8::text, $7::bigint)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id;

-- name: find_stored_overrides
-- The stored fingerprint of each of these event ids this tenant has: a redelivery (same) or a
-- conflict (other content).
SELECT event_id, fingerprint FROM tenant.overrides
WHERE tenant_id = $1::uuid AND event_id = ANY($2::uuid[]);
