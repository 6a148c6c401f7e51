-- Personal data (CONTRACT.md section 5, v2): turn text retention and conversation erasure.

-- Retention (worker/store/retention.py) clears a turn's text and metadata some days after its
-- extraction and records when here; event_id and fingerprint stay, so a redelivery of the turn
-- is still recognised as a duplicate. The text column stays NOT NULL: a cleared turn holds ''.
ALTER TABLE tenant.conversation_turns ADD COLUMN text_cleared_at timestamptz NULL;
-- What the retention sweep scans: extracted turns whose text is still there, oldest first.
CREATE INDEX conversation_turns_retention
    ON tenant.conversation_turns (extracted_at)
    WHERE text_cleared_at IS NULL;

-- The sweep clears every tenant's turns, and row-level security (0002) shows the worker role
-- one tenant's rows at a time. As with 0003's listing function, the owner does the cross-tenant
-- part: this function clears at most max_rows due turns and returns how many it cleared.
-- Pending turns (extracted_at null) never compare below a cut-off, so they are never cleared.
-- SKIP LOCKED: a turn a writer holds right now is simply due in the next round.
CREATE FUNCTION tenant.clear_turn_text(
    extracted_before timestamptz, cleared_at timestamptz, max_rows integer)
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH due AS (
        SELECT event_id
        FROM tenant.conversation_turns
        WHERE text_cleared_at IS NULL AND extracted_at < extracted_before
        ORDER BY extracted_at
        LIMIT max_rows
        FOR UPDATE SKIP LOCKED
    ), cleared AS (
        UPDATE tenant.conversation_turns AS t
        SET text = '', metadata = '{}', text_cleared_at = cleared_at
        FROM due
        WHERE t.event_id = due.event_id
        RETURNING 1
    )
    SELECT count(*)::integer FROM cleared
$$;

REVOKE ALL ON FUNCTION tenant.clear_turn_text(timestamptz, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.clear_turn_text(timestamptz, timestamptz, integer)
    TO qualification_worker;

-- One row per erased conversation (`python -m worker forget`): proof that an erasure request
-- was carried out, without personal data. The conversation is named only by the sha256 of its
-- key (so a later request for the same key can be answered), with the tenant it belonged to.
-- Written by the owner only: the worker role has no grant on it.
CREATE TABLE tenant.erasures (
    id                bigserial PRIMARY KEY,
    tenant_id         uuid        NOT NULL,
    conversation_hash char(64)    NOT NULL,
    erased_at         timestamptz NOT NULL DEFAULT now(),
    erased_by         text        NOT NULL,
    -- table name -> rows deleted, e.g. {"conversation_turns": 12, …}
    rows_deleted      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX erasures_conversation ON tenant.erasures (conversation_hash, erased_at);
