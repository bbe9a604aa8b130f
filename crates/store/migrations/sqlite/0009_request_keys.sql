-- The exchange core's request id of an internal transfer: random, so that a database restored
-- from a backup (which reuses row ids) never names a transfer the core already made for
-- someone else. Decimal text (a u64). NULL for transfers made before: their request id derives
-- from the row id.
ALTER TABLE internal_transfers ADD COLUMN request_key TEXT;

-- Start-up reconciliation finds the record of each withdrawal the core still holds by its
-- request key.
CREATE INDEX withdrawals_request_key ON withdrawals (request_key);
