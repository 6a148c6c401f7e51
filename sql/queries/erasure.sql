-- Erasure of one conversation (`python -m worker forget`; worker/store/erasure.py; migration
-- 0005). Run as the tables' owner, in one transaction, in this order.

-- name: lock_conversation_outbox
-- The transaction lock the relays' claim_outbox takes per conversation key: waits for a relay
-- that is publishing this conversation right now, and keeps relays off it until the erasure
-- commits, so the tombstone published after the commit follows the conversation's last event.
SELECT pg_advisory_xact_lock(7301, hashtext($1::text));

-- name: lock_conversation_writers
-- Exclusive here, shared by every writer of an extraction (lock_conversation_for_writing): an
-- extraction that read the conversation before this erasure writes after it, or not at all.
SELECT pg_advisory_xact_lock(7302, hashtext($1::text));

-- name: lock_erased_state
-- The row lock every writer of the conversation holds while it writes a version (lock_state):
-- a version in progress commits before the erasure starts, and none is written until it ends.
-- A statement of its own, before the deletes: they then read after that writer's commit and
-- also see the turns it inserted.
SELECT id FROM tenant.conversation_states
WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text
FOR UPDATE;

-- name: erase_conversation
-- Every row of the conversation, in every table, and how many of each. Outbox rows are keyed
-- by the conversation key ($4); published ones go too: their payloads hold the same quotes and
-- names, and unpublished ones must not reach the topic after the tombstone.
WITH turns AS (
    DELETE FROM tenant.conversation_turns
    WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text
    RETURNING 1
), transitions AS (
    DELETE FROM tenant.stage_transitions
    WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text
    RETURNING 1
), overrides AS (
    DELETE FROM tenant.overrides
    WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text
    RETURNING 1
), deferred AS (
    -- Turns still waiting for a debounced extraction (migration 0007), and their schedule.
    DELETE FROM tenant.deferred_turns
    WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text
    RETURNING 1
), scheduled AS (
    DELETE FROM tenant.extraction_due
    WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text
    RETURNING 1
), outbox AS (
    DELETE FROM tenant.outbox
    WHERE tenant_id = $1::uuid AND key = $4::text
    RETURNING 1
), states AS (
    DELETE FROM tenant.conversation_states
    WHERE tenant_id = $1::uuid AND account_id = $2::text AND contact_id = $3::text
    RETURNING 1
)
SELECT (SELECT count(*) FROM states)::int AS conversation_states,
       (SELECT count(*) FROM turns)::int AS conversation_turns,
       (SELECT count(*) FROM transitions)::int AS stage_transitions,
       (SELECT count(*) FROM overrides)::int AS overrides,
       (SELECT count(*) FROM deferred)::int AS deferred_turns,
       (SELECT count(*) FROM scheduled)::int AS extraction_due,
       (SELECT count(*) FROM outbox)::int AS outbox;

-- name: insert_erasure
-- The record that the erasure happened: the key's sha256, never the key itself.
INSERT INTO tenant.erasures (tenant_id, conversation_hash, erased_by, rows_deleted)
VALUES ($1::uuid, $2::text, $3::text, $4::jsonb)
RETURNING erased_at;

-- name: last_erasure
-- When this conversation was last erased, if ever: a second `forget` publishes the tombstone
-- again instead of answering "no such conversation".
SELECT max(erased_at) FROM tenant.erasures
WHERE tenant_id = $1::uuid AND conversation_hash = $2::text;

-- name: lock_conversation_for_writing
-- Shared: writers of one conversation do not wait for each other here (the state's row lock
-- orders them), only for a `forget` of it in progress (lock_conversation_writers), and such a
-- forget waits for them. Taken before the state's row lock, in the order forget takes both.
SELECT pg_advisory_xact_lock_shared(7302, hashtext($1::text));

-- name: count_erasures
-- How many times the conversation ($1: the key's hash) was erased, in the connection's tenant
-- (migration 0009). A statement of its own after lock_conversation_for_writing, so that it
-- sees a forget that committed while the lock was awaited.
SELECT tenant.conversation_erasures($1::text);
