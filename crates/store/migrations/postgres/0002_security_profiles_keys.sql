-- Sessions become families of tokens: a browser session holds one cookie token; an app
-- session holds short-lived access tokens and rotating refresh tokens (a refresh token used
-- twice ends its whole session). Sessions opened before this migration end.
DROP TABLE sessions;
CREATE TABLE sessions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL,
    device TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE session_tokens (
    token_hash BYTEA PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions (id),
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX session_tokens_session ON session_tokens (session_id);

-- Devices (a hash of user agent and address) an account has signed in from.
CREATE TABLE known_devices (
    user_id BIGINT NOT NULL REFERENCES users (id),
    device_hash BYTEA NOT NULL,
    first_seen_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_hash)
);

-- Failed-attempt counters per account or address, with the lockout they lead to.
CREATE TABLE throttle (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT NOT NULL
);

-- TOTP second factor: the seed sealed with the server key; last_step makes each code work once.
CREATE TABLE totp (
    user_id BIGINT PRIMARY KEY REFERENCES users (id),
    sealed_secret BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_step BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    code_hash BYTEA PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

-- API keys: the secret is needed to check HMAC signatures, so it is sealed, not hashed.
CREATE TABLE api_keys (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    api_key TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users (id),
    label TEXT NOT NULL,
    sealed_secret BYTEA NOT NULL,
    permissions TEXT NOT NULL,
    ip_allow_list TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE profiles (
    user_id BIGINT PRIMARY KEY REFERENCES users (id),
    display_name TEXT,
    country TEXT,
    verification_level BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE merchants (
    user_id BIGINT PRIMARY KEY REFERENCES users (id),
    business_name TEXT NOT NULL,
    website TEXT,
    settlement_asset TEXT NOT NULL,
    settlement_mode TEXT NOT NULL,
    webhook_url TEXT,
    sealed_webhook_secret BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
