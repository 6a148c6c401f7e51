-- The conversation state, its turns, the outbox and the stage proposals (CONTRACT.md section 5).
CREATE SCHEMA IF NOT EXISTS tenant;

CREATE TABLE tenant.conversation_states (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid         NOT NULL,
    account_id          varchar(100) NOT NULL,
    contact_id          varchar(100) NOT NULL,
    contact_email       varchar(255) NOT NULL,
    contact_name        varchar(200),
    deal_stage          varchar(50)  NOT NULL DEFAULT 'prospecting',
    -- varchar(32), not the contract's 20: 'individual_contributor' has 22 characters.
    persona_type        varchar(32)  NOT NULL DEFAULT 'manager',
    qualification_data  jsonb        NOT NULL DEFAULT '{}',
    interaction_count   integer      NOT NULL DEFAULT 0,
    last_interaction    timestamptz,
    last_channel        varchar(20),
    escalated           boolean      NOT NULL DEFAULT false,
    escalation_reason   varchar(500),
    confidence_score    double precision NOT NULL DEFAULT 0.5,
    next_actions        jsonb        NOT NULL DEFAULT '[]',
    follow_up_scheduled timestamptz,
    metadata_json       jsonb        NOT NULL DEFAULT '{}',
    created_at          timestamptz  NOT NULL DEFAULT now(),
    updated_at          timestamptz,
    version             bigint       NOT NULL DEFAULT 0,
    CONSTRAINT conversation_states_conversation_key UNIQUE (tenant_id, account_id, contact_id),
    -- Kept in step with schemas.DealStage by tests/integration/test_migrations.py.
    CONSTRAINT conversation_states_deal_stage_check CHECK (deal_stage IN (
        'prospecting', 'discovery', 'qualification', 'evaluation', 'negotiation',
        'closed_won', 'closed_lost', 'stalled')),
    CONSTRAINT conversation_states_persona_type_check CHECK (persona_type IN (
        'c_suite', 'vp', 'director', 'manager', 'individual_contributor')),
    CONSTRAINT conversation_states_interaction_count_check CHECK (interaction_count >= 0),
    CONSTRAINT conversation_states_confidence_check CHECK (confidence_score BETWEEN 0 AND 1),
    CONSTRAINT conversation_states_version_check CHECK (version >= 0)
);
CREATE INDEX conversation_states_tenant_account ON tenant.conversation_states (tenant_id, account_id);
CREATE INDEX conversation_states_tenant_stage ON tenant.conversation_states (tenant_id, deal_stage);

-- One row per applied turn: event_id is the idempotency key of the whole pipeline.
CREATE TABLE tenant.conversation_turns (
    event_id     uuid PRIMARY KEY,
    tenant_id    uuid         NOT NULL,
    account_id   varchar(100) NOT NULL,
    contact_id   varchar(100) NOT NULL,
    speaker      varchar(20)  NOT NULL CHECK (speaker IN ('prospect', 'rep')),
    channel      varchar(20)  NOT NULL,
    text         text         NOT NULL,
    occurred_at  timestamptz  NOT NULL,
    sequence     integer,
    metadata     jsonb        NOT NULL DEFAULT '{}',
    -- sha256 of the turn's canonical JSON: a repeated event_id with other content is a conflict.
    fingerprint  text         NOT NULL,
    received_at  timestamptz  NOT NULL DEFAULT now(),
    extracted_at timestamptz  -- null while the turn's extraction is pending (LLM failed open)
);
CREATE INDEX conversation_turns_conversation
    ON tenant.conversation_turns (tenant_id, account_id, contact_id, occurred_at);
-- Small by design: only turns whose extraction failed are in it.
CREATE INDEX conversation_turns_pending
    ON tenant.conversation_turns (tenant_id, account_id, contact_id)
    WHERE extracted_at IS NULL;

-- Transactional outbox: written in the state's transaction, published by the relay.
CREATE TABLE tenant.outbox (
    id           bigserial PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    tenant_id    uuid        NOT NULL,
    topic        text        NOT NULL,
    key          text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON tenant.outbox (id) WHERE published_at IS NULL;

-- Every stage proposal, accepted or not, with the reason.
CREATE TABLE tenant.stage_transitions (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid         NOT NULL,
    account_id  varchar(100) NOT NULL,
    contact_id  varchar(100) NOT NULL,
    version     bigint       NOT NULL,
    from_stage  varchar(50)  NOT NULL,
    to_stage    varchar(50)  NOT NULL,
    accepted    boolean      NOT NULL,
    reason      text         NOT NULL,
    created_at  timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX stage_transitions_conversation
    ON tenant.stage_transitions (tenant_id, account_id, contact_id, created_at);
