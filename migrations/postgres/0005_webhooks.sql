-- The webhooks slice (Standard Webhooks): an org's endpoints, one delivery
-- per (endpoint, event), and each attempt at it for the delivery log.
CREATE TABLE webhook_endpoints (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL,
    url TEXT NOT NULL,
    -- A JSON array of event types, or ["*"].
    event_types TEXT NOT NULL,
    secret TEXT NOT NULL,
    -- After a rotation the old secret keeps verifying until previous_until.
    previous_secret TEXT,
    previous_until BIGINT,
    status TEXT NOT NULL,
    disabled_reason TEXT,
    -- Set at the first failure since the last success.
    failing_since BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, status);

CREATE TABLE webhook_deliveries (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL,
    endpoint_id UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- The domain event's id: also the webhook-id header, and the order of
    -- deliveries about one subject.
    event_id UUID NOT NULL,
    event_type TEXT NOT NULL,
    -- What the event is about (an order, else a ticket, else an event):
    -- deliveries about one subject go out in event order.
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    job_id UUID,
    last_status BIGINT,
    last_latency_ms BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries (endpoint_id, event_id);
CREATE INDEX webhook_deliveries_subject ON webhook_deliveries (endpoint_id, subject, event_id)
    WHERE status <> 'delivered';

CREATE TABLE webhook_attempts (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL,
    delivery_id UUID NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at BIGINT NOT NULL,
    -- The HTTP status, when an answer came.
    status BIGINT,
    latency_ms BIGINT NOT NULL,
    error TEXT,
    -- The signed headers sent (never the secret).
    request_headers TEXT NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempted_at);
