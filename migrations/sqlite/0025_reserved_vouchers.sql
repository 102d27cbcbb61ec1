-- A voucher may reserve its uses of one ticket type: while the reservation
-- stands (`reserved_for` set), the type's availability counts all of
-- `max_uses` as taken and the voucher's own holds of that type count
-- nothing more. It ends (NULL) when the voucher's time is up.
ALTER TABLE vouchers ADD COLUMN reserved_for BLOB;
CREATE INDEX vouchers_reserved ON vouchers (org_id, reserved_for) WHERE reserved_for IS NOT NULL;
