-- v3: an outbox row the broker refuses (too large for it, say) is set aside instead of rolling
-- back the relay's whole claim and being claimed first again, forever: the rows behind it are
-- published, and it is retried after a delay that doubles with each refusal (README,
-- "Failure modes"). `attempts` and `last_error` say what happened, for operators.
ALTER TABLE tenant.outbox
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN last_error text;
