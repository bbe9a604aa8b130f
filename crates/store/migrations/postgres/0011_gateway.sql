-- The payment gateway. Balances of record stay in the exchange core (payments wait in its
-- gateway account until they settle to the merchant); these tables hold the invoices and what
-- is needed to never lose or double a payment, a settlement, a refund or a webhook event.
-- Amounts are decimal TEXT: smallest units of an asset, or a decimal number of the invoice's
-- pricing currency where said so.
CREATE TABLE invoices (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    merchant_id BIGINT NOT NULL REFERENCES users (id),
    idempotency_key TEXT,
    body_hash TEXT,
    currency TEXT NOT NULL,
    price TEXT NOT NULL,
    tax TEXT NOT NULL,
    tip TEXT NOT NULL,
    status TEXT NOT NULL,
    flags BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    monitor_until BIGINT NOT NULL,
    tolerance_ppm BIGINT NOT NULL,
    order_id TEXT,
    buyer_email TEXT,
    description TEXT,
    metadata TEXT,
    redirect_url TEXT,
    source TEXT NOT NULL,
    fiat_currency TEXT,
    chain_id BIGINT,
    pay_address TEXT,
    settled_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (merchant_id, idempotency_key),
    UNIQUE (chain_id, pay_address)
);
CREATE INDEX invoices_merchant ON invoices (merchant_id, id);
CREATE INDEX invoices_open ON invoices (status, expires_at);
CREATE INDEX invoices_addresses ON invoices (chain_id, created_at);

-- What each accepted asset must pay (smallest units), at the rate fixed at creation, and its
-- value in the invoice's fiat currency (reports: the fiat value at sale time).
CREATE TABLE invoice_assets (
    invoice_id BIGINT NOT NULL REFERENCES invoices (id),
    asset TEXT NOT NULL,
    due TEXT NOT NULL,
    rate TEXT,
    rate_sources TEXT,
    fiat_rate TEXT,
    confirmations BIGINT NOT NULL,
    PRIMARY KEY (invoice_id, asset)
);

-- Payments from a COSS balance (on-chain payments are the deposits rows with an invoice_id).
CREATE TABLE invoice_payments (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id BIGINT NOT NULL REFERENCES invoices (id),
    payer_id BIGINT NOT NULL REFERENCES users (id),
    asset TEXT NOT NULL,
    amount TEXT NOT NULL,
    request_key TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX invoice_payments_invoice ON invoice_payments (invoice_id, id);

-- The exchange core's settlements (GatewaySettle) and refunds of an invoice.
CREATE TABLE invoice_moves (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id BIGINT NOT NULL REFERENCES invoices (id),
    kind TEXT NOT NULL,
    asset TEXT NOT NULL,
    amount TEXT NOT NULL,
    fee TEXT NOT NULL,
    from_gateway BIGINT NOT NULL,
    payer_id BIGINT,
    address TEXT,
    token_hash TEXT,
    conversion_order BIGINT,
    request_key TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX invoice_moves_invoice ON invoice_moves (invoice_id, id);
CREATE UNIQUE INDEX invoice_moves_token ON invoice_moves (token_hash);

ALTER TABLE deposits ADD COLUMN invoice_id BIGINT;
CREATE INDEX deposits_invoice ON deposits (invoice_id);
CREATE INDEX deposits_updated ON deposits (updated_at);

CREATE TABLE webhook_endpoints (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id BIGINT NOT NULL REFERENCES users (id),
    url TEXT NOT NULL,
    sealed_secret BYTEA NOT NULL,
    events TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id, id);

CREATE TABLE webhook_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    merchant_id BIGINT NOT NULL REFERENCES users (id),
    invoice_id BIGINT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_events_merchant ON webhook_events (merchant_id, id);

CREATE TABLE webhook_deliveries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id BIGINT NOT NULL REFERENCES webhook_endpoints (id),
    event_id BIGINT NOT NULL REFERENCES webhook_events (id),
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);

CREATE TABLE webhook_attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id),
    at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    status_code BIGINT,
    error TEXT,
    response TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

CREATE TABLE pos_products (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id BIGINT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    price TEXT NOT NULL,
    currency TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX pos_products_merchant ON pos_products (merchant_id, id);
