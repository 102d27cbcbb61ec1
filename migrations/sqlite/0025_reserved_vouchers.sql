-- A voucher may reserve its uses of one ticket type: while the reservation
-- stands (`reserved_for` set), the type's availability counts all of
-- `max_uses` as taken and the voucher's own holds of that type count
-- nothing more. It ends (NULL) when the voucher's time is up.
ALTER TABLE vouchers ADD COLUMN reserved_for BLOB;
CREATE INDEX vouchers_reserved ON vouchers (org_id, reserved_for) WHERE reserved_for IS NOT NULL;
-- A hold that took a reserved voucher's tickets from its reservation names
-- the ticket type it took them for (NULL: it took them from the type, as
-- any hold). The ledger leaves those tickets out while the reservation
-- stands; ending it clears the mark on every live hold in the same
-- transaction, so a release knows from its own hold which counters to
-- give back.
ALTER TABLE holds ADD COLUMN reserved_type BLOB;
