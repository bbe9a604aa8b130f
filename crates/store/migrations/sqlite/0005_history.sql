-- History: projections of the exchange core's events, rebuilt from the journal when lost
-- (the writer starts after `history_cursor.seq`; an empty database is rebuilt from event 1).
-- Amounts that can exceed 64 bits are decimal text in smallest units; prices are in ticks
-- and quantities in lots of their market.
CREATE TABLE history_cursor (
    id INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL
);

CREATE TABLE trades (
    id BIGINT PRIMARY KEY,
    market BIGINT NOT NULL,
    price BIGINT NOT NULL,
    qty BIGINT NOT NULL,
    quote TEXT NOT NULL,
    taker_side TEXT NOT NULL,
    maker_order BIGINT NOT NULL,
    taker_order BIGINT NOT NULL,
    maker_account BIGINT NOT NULL,
    taker_account BIGINT NOT NULL,
    maker_fee TEXT NOT NULL,
    taker_fee TEXT NOT NULL,
    time_ms BIGINT NOT NULL
);
CREATE INDEX trades_by_market ON trades (market, id);
CREATE INDEX trades_by_maker ON trades (maker_account, id);
CREATE INDEX trades_by_taker ON trades (taker_account, id);

CREATE TABLE orders (
    id BIGINT PRIMARY KEY,
    account BIGINT NOT NULL,
    market BIGINT NOT NULL,
    side TEXT NOT NULL,
    kind TEXT NOT NULL,
    price BIGINT,
    qty BIGINT,
    client_id TEXT,
    executed BIGINT NOT NULL,
    cum_quote TEXT NOT NULL,
    status TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    update_ms BIGINT NOT NULL
);
CREATE INDEX orders_by_account ON orders (account, id);

-- The statement: every balance after every change, by event sequence number.
CREATE TABLE balance_changes (
    seq BIGINT PRIMARY KEY,
    account BIGINT NOT NULL,
    asset BIGINT NOT NULL,
    available TEXT NOT NULL,
    locked TEXT NOT NULL,
    time_ms BIGINT NOT NULL
);
CREATE INDEX balance_changes_by_account ON balance_changes (account, asset, seq);

-- One-minute candles (longer intervals aggregate them).
CREATE TABLE candles (
    market BIGINT NOT NULL,
    open_time BIGINT NOT NULL,
    open BIGINT NOT NULL,
    high BIGINT NOT NULL,
    low BIGINT NOT NULL,
    close BIGINT NOT NULL,
    volume TEXT NOT NULL,
    quote_volume TEXT NOT NULL,
    trades BIGINT NOT NULL,
    PRIMARY KEY (market, open_time)
);
