-- The back office. Operators are not users: their own accounts, roles, TOTP from the first
-- sign-in, short idle sessions and an allow-list of client networks.
CREATE TABLE operators (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    -- 'invited' (a set-up link is out), 'active', 'disabled'.
    status TEXT NOT NULL,
    -- argon2id; NULL until the operator sets it up.
    password_hash TEXT,
    -- The TOTP seed, sealed with the server key; NULL until enrolled.
    sealed_totp BLOB,
    -- The last TOTP time step accepted: each code works once.
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    -- SHA-256 of the one-time set-up token, and when it stops working.
    setup_hash BLOB,
    setup_expires_at BIGINT NOT NULL DEFAULT 0,
    -- Comma-separated networks (CIDR) the operator may sign in from.
    allowed_networks TEXT NOT NULL,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    created_by BIGINT
);

-- An operator's session: the token's hash; it ends after 15 idle minutes.
CREATE TABLE operator_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    operator_id BIGINT NOT NULL REFERENCES operators (id),
    token_hash BLOB NOT NULL UNIQUE,
    client_ip TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id);

-- Every operator action and every denial, append-only: each entry's hash commits to the one
-- before it (seq is gap-free; two writers racing for a seq, one loses and retries).
CREATE TABLE admin_audit (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    operator_id BIGINT,
    operator_email TEXT NOT NULL,
    operation TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

-- Changes that need a second operator (four eyes): submitted, then approved by someone else
-- (and carried out) or rejected or withdrawn. The status changes by compare-and-set.
CREATE TABLE admin_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    operation TEXT NOT NULL,
    params TEXT NOT NULL,
    summary TEXT NOT NULL,
    submitted_by BIGINT NOT NULL REFERENCES operators (id),
    submitted_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    decided_by BIGINT REFERENCES operators (id),
    decided_at BIGINT,
    result TEXT
);
CREATE INDEX admin_requests_status ON admin_requests (status, id);

-- Nonces of signed internal calls seen within their validity: a replay is refused.
CREATE TABLE internal_nonces (
    nonce TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX internal_nonces_expiry ON internal_nonces (expires_at);

-- A user account an operator locked (Unix ms; 0: not locked): no sign-in, no API key.
ALTER TABLE users ADD COLUMN locked_at BIGINT NOT NULL DEFAULT 0;

-- The gateway fee rate a settlement was recorded with (the core's rate at the time).
ALTER TABLE invoice_moves ADD COLUMN fee_ppm BIGINT NOT NULL DEFAULT 7500;

-- Why a withdrawal waits for operators (NULL: it needs none): it stays `review`, held in the
-- core and unsigned, until two different operators approve it, or one rejects it.
ALTER TABLE withdrawals ADD COLUMN review_reason TEXT;
CREATE TABLE withdrawal_approvals (
    withdrawal_id BIGINT NOT NULL REFERENCES withdrawals (id),
    operator_id BIGINT NOT NULL REFERENCES operators (id),
    approved_at BIGINT NOT NULL,
    PRIMARY KEY (withdrawal_id, operator_id)
);

-- The withdrawal kill switch: per asset symbol, or '*' for all. While one applies, nothing
-- of that asset is signed and new withdrawals are refused.
CREATE TABLE withdrawal_halts (
    asset TEXT PRIMARY KEY,
    halted_by BIGINT NOT NULL,
    reason TEXT NOT NULL,
    halted_at BIGINT NOT NULL
);
