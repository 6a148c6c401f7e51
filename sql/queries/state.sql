-- Conversation state. Every statement is scoped by tenant_id.

-- name: read_state
SELECT * FROM tenant.conversation_states
WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text;

-- name: read_snapshot
-- The short read before extraction in one round trip (not three): the conversation's erasure
-- count ($5: the key's hash; ErasureGuard compares it with a count under the writers' lock),
-- the state, unlocked (the write transaction locks it and reads it again), and its pending
-- turns (extraction failed open), the oldest $4, as arrays. conversation_erasures is STABLE, so
-- it counts in this statement's snapshot, the one the state is read in: a `forget` that commits
-- later changes the count the write compares. No state row (a new conversation, which has no
-- turns yet either): one row of the count and NULLs.
SELECT tenant.conversation_erasures($5::text) AS erasures, snap.*
FROM (VALUES (1)) AS one (n)
LEFT JOIN LATERAL (
    SELECT s.*, p.event_ids AS pending_event_ids, p.speakers AS pending_speakers,
           p.channels AS pending_channels, p.texts AS pending_texts,
           p.occurred_ats AS pending_occurred_ats
    FROM tenant.conversation_states AS s
    CROSS JOIN LATERAL (
        SELECT array_agg(t.event_id ORDER BY t.occurred_at, t.sequence NULLS LAST, t.received_at)
                   AS event_ids,
               array_agg(t.speaker ORDER BY t.occurred_at, t.sequence NULLS LAST, t.received_at)
                   AS speakers,
               array_agg(t.channel ORDER BY t.occurred_at, t.sequence NULLS LAST, t.received_at)
                   AS channels,
               array_agg(t.text ORDER BY t.occurred_at, t.sequence NULLS LAST, t.received_at)
                   AS texts,
               array_agg(
                   t.occurred_at ORDER BY t.occurred_at, t.sequence NULLS LAST, t.received_at)
                   AS occurred_ats
        FROM (
            SELECT event_id, speaker, channel, text, occurred_at, sequence, received_at
            FROM tenant.conversation_turns
            WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text
              AND extracted_at IS NULL
            ORDER BY occurred_at, sequence NULLS LAST, received_at
            LIMIT $4::int
        ) AS t
    ) AS p
    WHERE s.tenant_id = $1::uuid AND s.account_id = $2::text AND s.contact_id = $3::text
) AS snap ON true;

-- name: lock_state
-- The row lock serialises every writer of one conversation: two workers (or a redelivered
-- batch) merging at once would otherwise both read version N and lose one update.
SELECT * FROM tenant.conversation_states
WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text
FOR UPDATE;

-- name: insert_empty_state
-- First turn of a conversation: create the row so it can be locked. ON CONFLICT DO NOTHING
-- because a concurrent writer may create it first; the caller then locks that row instead.
-- A key erased n times before ($5: its hash) starts its incarnation n + 1 (migration 0009).
INSERT INTO tenant.conversation_states
    (tenant_id, account_id, contact_id, contact_email, incarnation)
VALUES ($1::uuid, $2::text, $3::text, $4::text, tenant.conversation_erasures($5::text) + 1)
ON CONFLICT (tenant_id, account_id, contact_id) DO NOTHING
RETURNING *;

-- name: upsert_state
-- Writes a whole state. The unique key makes this an upsert; callers that hold the row lock
-- (lock_state) pass version + 1 themselves.
INSERT INTO tenant.conversation_states (
    tenant_id, account_id, contact_id, contact_email, contact_name, deal_stage, persona_type,
    qualification_data, interaction_count, last_interaction, last_channel, escalated,
    escalation_reason, confidence_score, next_actions, follow_up_scheduled, metadata_json,
    updated_at, version, stalled_from, owners, suggestions)
VALUES ($1::uuid, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::jsonb,
        $9::int, $10::timestamptz, $11::text, $12::bool, $13::text, $14::float8, $15::jsonb,
        $16::timestamptz, $17::jsonb, $18::timestamptz, $19::bigint, $20::text, $21::jsonb,
        $22::jsonb)
ON CONFLICT (tenant_id, account_id, contact_id) DO UPDATE SET
    contact_email = EXCLUDED.contact_email,
    contact_name = EXCLUDED.contact_name,
    deal_stage = EXCLUDED.deal_stage,
    persona_type = EXCLUDED.persona_type,
    qualification_data = EXCLUDED.qualification_data,
    interaction_count = EXCLUDED.interaction_count,
    last_interaction = EXCLUDED.last_interaction,
    last_channel = EXCLUDED.last_channel,
    escalated = EXCLUDED.escalated,
    escalation_reason = EXCLUDED.escalation_reason,
    confidence_score = EXCLUDED.confidence_score,
    next_actions = EXCLUDED.next_actions,
    follow_up_scheduled = EXCLUDED.follow_up_scheduled,
    metadata_json = EXCLUDED.metadata_json,
    updated_at = EXCLUDED.updated_at,
    version = EXCLUDED.version,
    stalled_from = EXCLUDED.stalled_from,
    owners = EXCLUDED.owners,
    suggestions = EXCLUDED.suggestions
RETURNING *;

-- name: list_states_by_tenant
SELECT * FROM tenant.conversation_states
WHERE tenant_id = $1::uuid AND ($2::text IS NULL OR deal_stage = $2::text)
ORDER BY account_id, contact_id;

-- name: insert_stage_transition
-- Every proposal or setting of a stage, accepted or not, with what made it (source) and, for
-- an override, who (actor); for a step of an AI stage walk, its position in the walk (step).
INSERT INTO tenant.stage_transitions (
    tenant_id, account_id, contact_id, version, from_stage, to_stage, accepted, reason, source,
    actor, step)
VALUES ($1::uuid, $2::text, $3::text, $4::bigint, $5::text, $6::text, $7::bool, $8::text,
        $9::text, $10::jsonb, $11::smallint);


-- name: set_tenant
-- Declares the tenant for the row-level security policies (migration 0002). Session-level
-- on a pooled connection: the pool's RESET ALL on release clears it.
SELECT set_config('app.tenant_id', $1::text, false);
