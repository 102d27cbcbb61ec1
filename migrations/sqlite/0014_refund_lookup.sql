-- A provider's refund event names our refund (metadata[refund_id]) but not
-- its org: found by id alone.
CREATE INDEX refunds_id ON refunds (id);
