-- Audit events (CONTRACT §13) and the webhook outbox. An event is written in the transaction of
-- the change it describes, together with one delivery per webhook of its company that wants it.

CREATE TABLE events (
    -- A ULID: its text sorts by time, so "newest first" and the page cursor are the primary key.
    id          text        PRIMARY KEY CHECK (char_length(id) = 26),
    type        text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    company_id  uuid        REFERENCES companies (id) ON DELETE CASCADE,
    actor_kind  text        NOT NULL CHECK (actor_kind IN ('admin', 'api_token', 'tenant', 'anonymous', 'system')),
    actor_id    text,
    subject     jsonb       NOT NULL,
    ip          text,
    request_id  text
);
CREATE INDEX events_company_idx ON events (company_id, id);
CREATE INDEX events_type_idx ON events (type, id);
CREATE INDEX events_occurred_idx ON events (occurred_at);

CREATE TABLE webhooks (
    id          uuid        PRIMARY KEY,
    company_id  uuid        NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    url         text        NOT NULL CHECK (char_length(url) BETWEEN 1 AND 2048),
    events      text[]      NOT NULL CHECK (cardinality(events) > 0),
    -- The signing secret is derived from the app key and this salt: it can sign without being
    -- stored, so the database alone does not reveal it.
    secret_salt bytea       NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX webhooks_company_idx ON webhooks (company_id);

CREATE TABLE webhook_deliveries (
    webhook_id      uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        text        NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    attempts        integer     NOT NULL DEFAULT 0,
    -- When a worker may take it next (a taken delivery is leased by moving this forward);
    -- NULL once delivered or given up.
    next_attempt_at timestamptz,
    delivered_at    timestamptz,
    failed_at       timestamptz,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

CREATE TABLE webhook_attempts (
    seq        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id uuid        NOT NULL,
    event_id   text        NOT NULL,
    attempt    integer     NOT NULL,
    -- The receiver's HTTP status, or NULL when none came (refused, timed out).
    status     integer,
    error      text,
    at         timestamptz NOT NULL,
    FOREIGN KEY (webhook_id, event_id) REFERENCES webhook_deliveries ON DELETE CASCADE
);
CREATE INDEX webhook_attempts_webhook_idx ON webhook_attempts (webhook_id, seq);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (webhook_id, event_id);
