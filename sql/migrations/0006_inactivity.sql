-- Inactivity stalls (CONTRACT.md section 4, v2; worker/qualify/inactivity.py). An open deal
-- whose latest turn (last_interaction) is older than STALL_AFTER_DAYS is moved to `stalled`.
--
-- The sweeper needs those deals across tenants, and row-level security (0002) shows the worker
-- role one tenant's rows at a time. As with 0003's listing function, the owner does the
-- cross-tenant part and returns keys only; each deal is then locked, re-checked and stalled in
-- its own tenant's context through the commit path, like any other version.
--
-- What it scans: open deals by last_interaction. Closed and stalled deals (most rows of an old
-- tenant) are outside the partial index.
CREATE INDEX conversation_states_open_by_activity
    ON tenant.conversation_states (last_interaction)
    WHERE deal_stage IN ('prospecting', 'discovery', 'qualification', 'evaluation', 'negotiation');

-- Open deals whose latest turn happened before quiet_before, quietest first, at most max_rows.
-- A state without turns (last_interaction null) is never listed: it has had no activity to
-- lose. The time comes from the caller (the worker's clock), not now().
CREATE FUNCTION tenant.quiet_open_conversations(quiet_before timestamptz, max_rows integer)
RETURNS TABLE (tenant_id uuid, account_id text, contact_id text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.tenant_id, s.account_id::text, s.contact_id::text
    FROM tenant.conversation_states AS s
    WHERE s.deal_stage IN ('prospecting', 'discovery', 'qualification', 'evaluation', 'negotiation')
      AND s.last_interaction < quiet_before
    ORDER BY s.last_interaction
    LIMIT max_rows
$$;

REVOKE ALL ON FUNCTION tenant.quiet_open_conversations(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.quiet_open_conversations(timestamptz, integer)
    TO qualification_worker;
