-- A withdrawal's transaction may be a cancel: a zero-value send to the hot wallet itself at
-- the withdrawal's nonce, signed when its transfer cannot be mined, so that later nonces are
-- not blocked. Once a cancel is mined, the withdrawal's hold is released.
ALTER TABLE withdrawal_txs ADD COLUMN cancels BIGINT NOT NULL DEFAULT 0;

-- The exchange core's request id of a withdrawal: random, so that a database restored from a
-- backup (which reuses row ids) never names a hold the core already knows. Decimal text (a
-- u64). NULL for withdrawals made before: their request id derives from the row id.
ALTER TABLE withdrawals ADD COLUMN request_key TEXT;
