-- A withdrawal's transaction may be a cancel: a zero-value send to the hot wallet itself at
-- the withdrawal's nonce, signed when its transfer cannot be mined, so that later nonces are
-- not blocked. Once a cancel is mined, the withdrawal's hold is released.
ALTER TABLE withdrawal_txs ADD COLUMN cancels BIGINT NOT NULL DEFAULT 0;

-- The exchange core's request id of a withdrawal: random, so that a database restored from a
-- backup (which reuses row ids) never names a hold the core already knows. Decimal text (a
-- u64). NULL for withdrawals made before: their request id derives from the row id.
ALTER TABLE withdrawals ADD COLUMN request_key TEXT;

-- The hot wallet's own moves (gas top-ups of deposit addresses, moves to the cold wallet):
-- recorded with their nonce before broadcast, like withdrawals, and sent again until the
-- chain has them (or their nonce was used), so a dropped one never leaves a nonce gap under
-- later transactions.
CREATE TABLE hot_txs (
    tx_hash TEXT PRIMARY KEY,
    chain_id BIGINT NOT NULL,
    nonce BIGINT NOT NULL,
    purpose TEXT NOT NULL,
    destination TEXT NOT NULL,
    raw BLOB NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX hot_txs_pending ON hot_txs (chain_id, status);
