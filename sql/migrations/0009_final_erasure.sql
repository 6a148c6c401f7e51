-- Erasure is final (issue 18, part 4): a conversation created again after `forget` is a new
-- incarnation, and no extraction that read the erased one may write it back.

-- Which life of its key a conversation row is: 1 for a key never erased, n + 1 after n
-- erasures (tenant.erasures). The update events' ids include it from the second incarnation
-- on (README "event_id"), so a conversation created again never reuses the erased one's ids.
ALTER TABLE tenant.conversation_states ADD COLUMN incarnation integer NOT NULL DEFAULT 1;

-- What the worker may know of a key's erasures: how many. The worker role has no grant on
-- tenant.erasures (0005); as with 0003's listing, the owner reads it and returns only that
-- number, for the tenant the connection declared.
CREATE FUNCTION tenant.conversation_erasures(conversation_hash text)
RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*)::integer
    FROM tenant.erasures AS e
    WHERE e.tenant_id = tenant.current_tenant() AND e.conversation_hash = $1
$$;

REVOKE ALL ON FUNCTION tenant.conversation_erasures(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.conversation_erasures(text) TO qualification_worker;

-- Debounced extraction (issue 18, part 3): leases by the database's clock. 0007 compared
-- claimed_until with the claiming worker's clock, so a worker whose clock ran ahead took over
-- conversations whose lease was still running. `at` (the worker's time) now only decides which
-- conversations are due, as the deferred turns' arrival times are the workers' too.
CREATE OR REPLACE FUNCTION tenant.claim_due_extractions(
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
          AND (d.claimed_until IS NULL OR d.claimed_until < now())
        ORDER BY d.first_at
        LIMIT max_rows
        FOR UPDATE SKIP LOCKED
    )
    UPDATE tenant.extraction_due AS d
    SET claim = claim_id, claimed_until = now() + lease
    FROM due
    WHERE d.tenant_id = due.tenant_id AND d.account_id = due.account_id
      AND d.contact_id = due.contact_id
    RETURNING d.tenant_id, d.account_id::text, d.contact_id::text
$$;

DROP FUNCTION tenant.renew_extraction_claims(uuid[], timestamptz);
CREATE FUNCTION tenant.renew_extraction_claims(claim_ids uuid[], lease interval)
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH renewed AS (
        UPDATE tenant.extraction_due SET claimed_until = now() + lease
        WHERE claim = ANY(claim_ids)
        RETURNING 1
    )
    SELECT count(*)::integer FROM renewed
$$;
REVOKE ALL ON FUNCTION tenant.renew_extraction_claims(uuid[], interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.renew_extraction_claims(uuid[], interval)
    TO qualification_worker;
