-- Wallets. Balances of record stay in the exchange core; these tables hold what the chain
-- side needs to never lose or double a coin: the sealed HD seed, deposit addresses, the
-- watcher's recent canonical blocks (to detect reorgs after a restart), every deposit seen
-- with its status, every withdrawal with the exact signed transactions stored before they
-- were broadcast, and the hot wallet's next nonce. Amounts are decimal TEXT (they exceed
-- BIGINT); addresses and hashes are lower-case 0x hex.
CREATE TABLE wallet_seeds (
    chain_id BIGINT PRIMARY KEY,
    sealed_seed BYTEA NOT NULL,
    xpub TEXT NOT NULL,
    hot_address TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE deposit_addresses (
    chain_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    address TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (chain_id, user_id),
    UNIQUE (chain_id, address)
);

CREATE TABLE chain_blocks (
    chain_id BIGINT NOT NULL,
    height BIGINT NOT NULL,
    hash TEXT NOT NULL,
    parent_hash TEXT NOT NULL,
    PRIMARY KEY (chain_id, height)
);

CREATE TABLE chain_state (
    chain_id BIGINT PRIMARY KEY,
    halted_reason TEXT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE deposits (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id BIGINT NOT NULL,
    tx_hash TEXT NOT NULL,
    position TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    asset TEXT NOT NULL,
    amount TEXT NOT NULL,
    address TEXT NOT NULL,
    sender TEXT NOT NULL,
    block_height BIGINT NOT NULL,
    block_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    swept_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (chain_id, tx_hash, position)
);
CREATE INDEX deposits_user ON deposits (user_id, id);
CREATE INDEX deposits_status ON deposits (chain_id, status, block_height);

CREATE TABLE withdrawals (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    chain_id BIGINT NOT NULL,
    asset TEXT NOT NULL,
    to_address TEXT NOT NULL,
    amount TEXT NOT NULL,
    fee TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status TEXT NOT NULL,
    nonce BIGINT,
    tx_hash TEXT,
    block_height BIGINT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX withdrawals_status ON withdrawals (chain_id, status, id);
CREATE INDEX withdrawals_user ON withdrawals (user_id, id);

CREATE TABLE withdrawal_txs (
    tx_hash TEXT PRIMARY KEY,
    withdrawal_id BIGINT NOT NULL REFERENCES withdrawals (id),
    nonce BIGINT NOT NULL,
    raw BYTEA NOT NULL,
    max_fee_per_gas TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX withdrawal_txs_withdrawal ON withdrawal_txs (withdrawal_id);

CREATE TABLE hot_nonces (
    chain_id BIGINT NOT NULL,
    address TEXT NOT NULL,
    next_nonce BIGINT NOT NULL,
    PRIMARY KEY (chain_id, address)
);

CREATE TABLE wallet_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    ref_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX wallet_events_ref ON wallet_events (kind, ref_id, id);

CREATE TABLE withdrawal_addresses (
    user_id BIGINT NOT NULL REFERENCES users (id),
    chain_id BIGINT NOT NULL,
    address TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, chain_id, address)
);

CREATE TABLE wallet_settings (
    user_id BIGINT PRIMARY KEY REFERENCES users (id),
    allow_list_only BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE internal_transfers (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    from_user BIGINT NOT NULL REFERENCES users (id),
    to_user BIGINT NOT NULL REFERENCES users (id),
    asset TEXT NOT NULL,
    amount TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (from_user, idempotency_key)
);
CREATE INDEX internal_transfers_to ON internal_transfers (to_user, id);
