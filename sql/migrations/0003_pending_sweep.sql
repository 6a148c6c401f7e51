-- The pending sweeper (worker/sweeper.py). A turn whose extraction failed (the LLM was down)
-- is stored with extracted_at null and rides along with its conversation's next extraction;
-- when the conversation goes quiet there is no next extraction, so the sweeper extracts such
-- turns once the LLM answers again.
--
-- It needs the conversations to sweep across tenants, and row-level security (0002) shows the
-- worker role no rows until it declares a tenant. This function returns keys only, as the
-- owner (whom row-level security does not filter); the sweeper then reads and writes each
-- conversation in its own tenant's context like any other unit of work.
CREATE FUNCTION tenant.quiet_pending_conversations(quiet_for interval, max_rows integer)
RETURNS TABLE (tenant_id uuid, account_id text, contact_id text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.tenant_id, t.account_id::text, t.contact_id::text
    FROM tenant.conversation_turns AS t
    WHERE t.extracted_at IS NULL  -- the partial index conversation_turns_pending
    GROUP BY t.tenant_id, t.account_id, t.contact_id
    HAVING max(t.received_at) < now() - quiet_for
    ORDER BY min(t.received_at)
    LIMIT max_rows
$$;

REVOKE ALL ON FUNCTION tenant.quiet_pending_conversations(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.quiet_pending_conversations(interval, integer)
    TO qualification_worker;
