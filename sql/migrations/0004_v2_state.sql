-- v2 state (CONTRACT.md sections 3, 4, 5): the stage a stalled deal stalled from, human-owned
-- dimensions and the AI's suggestions beside them, who and what made each stage record, and
-- one row per applied override (its event_id is its idempotency key, as for turns).
ALTER TABLE tenant.conversation_states
    ADD COLUMN stalled_from varchar(50) NULL,
    ADD COLUMN owners       jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN suggestions  jsonb NOT NULL DEFAULT '{}';

ALTER TABLE tenant.stage_transitions
    ADD COLUMN source varchar(20) NOT NULL DEFAULT 'turns',
    ADD COLUMN actor  jsonb NULL;

CREATE TABLE tenant.overrides (
    event_id    uuid PRIMARY KEY,
    tenant_id   uuid         NOT NULL,
    account_id  varchar(100) NOT NULL,
    contact_id  varchar(100) NOT NULL,
    actor       jsonb        NOT NULL,
    payload     jsonb        NOT NULL,
    fingerprint char(64)     NOT NULL,
    applied_at  timestamptz  NOT NULL DEFAULT now(),
    version     bigint       NOT NULL
);
CREATE INDEX overrides_conversation ON tenant.overrides (tenant_id, account_id, contact_id);

GRANT SELECT, INSERT ON tenant.overrides TO qualification_worker;
ALTER TABLE tenant.overrides ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant.overrides
    USING (tenant_id = tenant.current_tenant()) WITH CHECK (tenant_id = tenant.current_tenant());
