-- Debounced extraction (EXTRACT_DEBOUNCE_MS > 0; worker/qualify/debounce.py).
--
-- A consumed turn waits here, outside tenant.conversation_turns, until its conversation is
-- extracted: a stored turn is always counted in interaction_count and named by exactly one
-- version's turn_event_ids, and a deferred one is neither yet. The extraction moves the
-- conversation's deferred turns through the ordinary write path (insert ON CONFLICT, count,
-- version, outbox) and only then deletes them here, so a crash in between only repeats work
-- the event_ids make idempotent.
CREATE TABLE tenant.deferred_turns (
    event_id    uuid         PRIMARY KEY,  -- one id space with conversation_turns' event_id
    tenant_id   uuid         NOT NULL,
    account_id  varchar(100) NOT NULL,
    contact_id  varchar(100) NOT NULL,
    turn        jsonb        NOT NULL,     -- the ConversationTurn as consumed
    fingerprint text         NOT NULL,
    received_at timestamptz  NOT NULL
);
CREATE INDEX deferred_turns_conversation
    ON tenant.deferred_turns (tenant_id, account_id, contact_id, received_at);

-- One row per conversation with deferred turns: when its deferred turns arrived and which
-- scheduler holds it. It is due once quiet for the debounce (last_at) or once its oldest
-- deferred turn waited the maximum (first_at), by the claiming worker's settings, so a changed
-- EXTRACT_DEBOUNCE_MS applies to what already waits. A claim is a lease (claimed_until),
-- renewed while the extraction runs; a crashed worker's claim runs out.
CREATE TABLE tenant.extraction_due (
    tenant_id     uuid         NOT NULL,
    account_id    varchar(100) NOT NULL,
    contact_id    varchar(100) NOT NULL,
    first_at      timestamptz  NOT NULL,  -- the oldest deferred turn's arrival
    last_at       timestamptz  NOT NULL,  -- the newest one's
    claim         uuid         NULL,
    claimed_until timestamptz  NULL,
    PRIMARY KEY (tenant_id, account_id, contact_id)
);
CREATE INDEX extraction_due_quiet ON tenant.extraction_due (last_at);
CREATE INDEX extraction_due_waited ON tenant.extraction_due (first_at);

-- The queue is consumed: the worker role may delete here (and nowhere else).
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant.deferred_turns, tenant.extraction_due
    TO qualification_worker;

ALTER TABLE tenant.deferred_turns ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant.deferred_turns
    USING (tenant_id = tenant.current_tenant()) WITH CHECK (tenant_id = tenant.current_tenant());
ALTER TABLE tenant.extraction_due ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant.extraction_due
    USING (tenant_id = tenant.current_tenant()) WITH CHECK (tenant_id = tenant.current_tenant());

-- The schedulers claim due conversations of every tenant; row-level security shows the worker
-- role one tenant at a time, so, as with 0003's listing, the owner does the cross-tenant part
-- and returns keys only. SKIP LOCKED: two schedulers never claim one conversation, and neither
-- waits for the other. A conversation whose lease is still running is someone's.
CREATE FUNCTION tenant.claim_due_extractions(
    at timestamptz, quiet interval, max_wait interval, lease interval, claim_id uuid,
    max_rows integer)
RETURNS TABLE (tenant_id uuid, account_id text, contact_id text)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH due AS (
        SELECT d.tenant_id, d.account_id, d.contact_id
        FROM tenant.extraction_due AS d
        WHERE (d.last_at <= at - quiet OR d.first_at <= at - max_wait)
          AND (d.claimed_until IS NULL OR d.claimed_until < at)
        ORDER BY d.first_at
        LIMIT max_rows
        FOR UPDATE SKIP LOCKED
    )
    UPDATE tenant.extraction_due AS d
    SET claim = claim_id, claimed_until = at + lease
    FROM due
    WHERE d.tenant_id = due.tenant_id AND d.account_id = due.account_id
      AND d.contact_id = due.contact_id
    RETURNING d.tenant_id, d.account_id::text, d.contact_id::text
$$;

-- Extends the leases of the claims a scheduler is still working on.
CREATE FUNCTION tenant.renew_extraction_claims(claim_ids uuid[], until timestamptz)
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH renewed AS (
        UPDATE tenant.extraction_due SET claimed_until = until
        WHERE claim = ANY(claim_ids)
        RETURNING 1
    )
    SELECT count(*)::integer FROM renewed
$$;

REVOKE ALL ON FUNCTION tenant.claim_due_extractions(timestamptz, interval, interval, interval, uuid, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.claim_due_extractions(timestamptz, interval, interval, interval, uuid, integer)
    TO qualification_worker;
REVOKE ALL ON FUNCTION tenant.renew_extraction_claims(uuid[], timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.renew_extraction_claims(uuid[], timestamptz)
    TO qualification_worker;
