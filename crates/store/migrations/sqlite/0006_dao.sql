-- The DAO revenue share: COSS usernames (the name a holder gives the token contract's
-- setRevenueUsername), and each paid week's report, holders and chain holdings. The balances
-- themselves move only in the exchange core.

-- A username names one account for good: it is never changed or given to another account,
-- so an address that named it keeps paying the same account.
CREATE TABLE dao_usernames (
    username TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL UNIQUE REFERENCES users (id),
    created_at BIGINT NOT NULL
);

CREATE TABLE dao_weeks (
    close_ms BIGINT PRIMARY KEY,
    week TEXT NOT NULL UNIQUE,
    -- The block the on-chain holdings were read at (NULL: no chain configured).
    block_number BIGINT,
    holders BIGINT NOT NULL,
    total TEXT NOT NULL,
    root TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    paid_at BIGINT
);

CREATE TABLE dao_week_assets (
    close_ms BIGINT NOT NULL REFERENCES dao_weeks (close_ms),
    asset BIGINT NOT NULL,
    pool TEXT NOT NULL,
    total TEXT NOT NULL,
    holders BIGINT NOT NULL,
    paid TEXT NOT NULL,
    carried TEXT NOT NULL,
    PRIMARY KEY (close_ms, asset)
);

-- Every holder of a week (at or above the minimum), platform and chain together, in leaf order.
CREATE TABLE dao_holdings (
    close_ms BIGINT NOT NULL REFERENCES dao_weeks (close_ms),
    leaf BIGINT NOT NULL,
    account BIGINT NOT NULL,
    holding TEXT NOT NULL,
    PRIMARY KEY (close_ms, leaf)
);
CREATE UNIQUE INDEX dao_holdings_by_account ON dao_holdings (account, close_ms);

-- What each address outside the platform held at the week's block, and whom it counted for
-- (rule: username, buyer, none).
CREATE TABLE dao_chain_holdings (
    close_ms BIGINT NOT NULL,
    address TEXT NOT NULL,
    amount TEXT NOT NULL,
    account BIGINT,
    rule TEXT NOT NULL,
    PRIMARY KEY (close_ms, address)
);
