-- Tenant isolation. Two roles:
--   * the owner (whoever runs `migrate`, e.g. postgres) owns the tables;
--   * qualification_worker owns nothing, may not delete, and sees only the rows of the tenant
--     its session declared with set_config('app.tenant_id', …). The worker connects with
--     role=qualification_worker (setting DB_ROLE), so a query without a `WHERE tenant_id`
--     still cannot reach another tenant's conversations.
DO $$
BEGIN
    CREATE ROLE qualification_worker NOLOGIN;
EXCEPTION
    -- Roles are cluster-wide: another database of this server may have created it already.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA tenant TO qualification_worker;
GRANT SELECT, INSERT, UPDATE
    ON tenant.conversation_states, tenant.conversation_turns, tenant.stage_transitions, tenant.outbox
    TO qualification_worker;
GRANT SELECT ON tenant.schema_migrations TO qualification_worker;
GRANT USAGE ON SEQUENCE tenant.outbox_id_seq, tenant.stage_transitions_id_seq TO qualification_worker;

-- NULL (no rows at all) when no tenant was declared; '' is what RESET ALL leaves behind.
CREATE FUNCTION tenant.current_tenant() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

ALTER TABLE tenant.conversation_states ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant.conversation_states
    USING (tenant_id = tenant.current_tenant()) WITH CHECK (tenant_id = tenant.current_tenant());

ALTER TABLE tenant.conversation_turns ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant.conversation_turns
    USING (tenant_id = tenant.current_tenant()) WITH CHECK (tenant_id = tenant.current_tenant());

ALTER TABLE tenant.stage_transitions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant.stage_transitions
    USING (tenant_id = tenant.current_tenant()) WITH CHECK (tenant_id = tenant.current_tenant());

-- tenant.outbox has no policy: the relay publishes every tenant's events, and its rows are
-- exactly what goes out on `qualification.updated`, which every downstream consumer reads.
