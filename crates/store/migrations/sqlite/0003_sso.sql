-- The OpenID Connect provider: registered clients (secrets hashed), users' consents, single-use
-- authorization codes and access tokens (hashed), and ID-token signing keys (sealed).
CREATE TABLE oidc_clients (
    client_id TEXT PRIMARY KEY,
    secret_hash BLOB,
    name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    first_party BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE oidc_consents (
    user_id BIGINT NOT NULL REFERENCES users (id),
    client_id TEXT NOT NULL REFERENCES oidc_clients (client_id),
    scopes TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE oidc_codes (
    code_hash BLOB PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oidc_clients (client_id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE oidc_tokens (
    token_hash BLOB PRIMARY KEY,
    code_hash BLOB NOT NULL,
    client_id TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    scopes TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX oidc_tokens_code ON oidc_tokens (code_hash);

CREATE TABLE oidc_keys (
    kid TEXT PRIMARY KEY,
    sealed_private_key BLOB NOT NULL,
    public_key BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
