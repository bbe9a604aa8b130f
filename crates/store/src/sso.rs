//! The OpenID Connect provider's records: registered clients (secret hashed), consents,
//! authorization codes (hashed, single use; a second use revokes what the first issued),
//! access tokens (hashed) and the ID-token signing keys (private halves sealed by the caller).

use coss_types::UserId;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, is_unique_violation};

/// A registered relying party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcClient {
    /// Its public id.
    pub client_id: String,
    /// SHA-256 of its secret; `None` for a public client (PKCE only).
    pub secret_hash: Option<Vec<u8>>,
    /// Shown on the consent page.
    pub name: String,
    /// Exact redirect URIs it may use.
    pub redirect_uris: Vec<String>,
    /// The platform's own apps skip the consent page.
    pub first_party: bool,
}

/// An authorization code's grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcCode {
    /// SHA-256 of the code.
    pub code_hash: Vec<u8>,
    /// The client it was issued to.
    pub client_id: String,
    /// The account.
    pub user_id: UserId,
    /// The redirect URI it was sent to.
    pub redirect_uri: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// The client's nonce, echoed in the ID token.
    pub nonce: Option<String>,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// When the user signed in (Unix ms).
    pub auth_time: i64,
    /// When it stops working (Unix ms).
    pub expires_at: i64,
}

/// What came of redeeming a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeOutcome {
    /// First use: the grant.
    Redeemed(OidcCode),
    /// Used before: every token issued from it has been revoked.
    Reused,
    /// Unknown or expired.
    Invalid,
}

/// A live access token's grant: (account, client, scopes).
pub type OidcGrant = (UserId, String, String);

/// A signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcKey {
    /// Key id (the JWT `kid`).
    pub kid: String,
    /// The PKCS#8 private key, sealed.
    pub sealed_private_key: Vec<u8>,
    /// The public key (uncompressed point).
    pub public_key: Vec<u8>,
    /// When it was made (Unix ms).
    pub created_at: i64,
    /// When a newer key replaced it for signing, if one did.
    pub retired_at: Option<i64>,
}

impl Store {
    /// Registers a client; `Conflict` if the id is taken.
    pub async fn create_oidc_client(
        &self,
        client: &OidcClient,
        now: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO oidc_clients (client_id, secret_hash, name, redirect_uris, first_party, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(client.client_id.as_str())
        .bind(client.secret_hash.as_deref())
        .bind(client.name.as_str())
        .bind(client.redirect_uris.join("\n"))
        .bind(i64::from(client.first_party))
        .bind(now)
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// A registered client.
    pub async fn oidc_client(&self, client_id: &str) -> Result<Option<OidcClient>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, secret_hash, name, redirect_uris, first_party FROM oidc_clients \
             WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(OidcClient {
                client_id: r.try_get(0)?,
                secret_hash: r.try_get(1)?,
                name: r.try_get(2)?,
                redirect_uris: r
                    .try_get::<String, _>(3)?
                    .lines()
                    .map(str::to_owned)
                    .collect(),
                first_party: r.try_get::<i64, _>(4)? != 0,
            })
        })
        .transpose()
    }

    /// The scopes the user has consented to for the client (space-separated), if any.
    pub async fn oidc_consent(
        &self,
        user_id: UserId,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT scopes FROM oidc_consents WHERE user_id = $1 AND client_id = $2")
                .bind(user_id.0)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Records (or widens) the user's consent for the client.
    pub async fn grant_oidc_consent(
        &self,
        user_id: UserId,
        client_id: &str,
        scopes: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oidc_consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, \
             granted_at = excluded.granted_at",
        )
        .bind(user_id.0)
        .bind(client_id)
        .bind(scopes)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores an authorization code.
    pub async fn create_oidc_code(&self, code: &OidcCode) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oidc_codes (code_hash, client_id, user_id, redirect_uri, scopes, nonce, \
             code_challenge, auth_time, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(code.code_hash.as_slice())
        .bind(code.client_id.as_str())
        .bind(code.user_id.0)
        .bind(code.redirect_uri.as_str())
        .bind(code.scopes.as_str())
        .bind(code.nonce.as_deref())
        .bind(code.code_challenge.as_str())
        .bind(code.auth_time)
        .bind(code.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Uses a code once. A second use revokes every access token issued from it (RFC 6749
    /// §4.1.2: the code may have been stolen).
    pub async fn redeem_oidc_code(
        &self,
        code_hash: &[u8],
        now: i64,
    ) -> Result<CodeOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE oidc_codes SET used_at = $1 \
             WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             RETURNING code_hash, client_id, user_id, redirect_uri, scopes, nonce, code_challenge, \
             auth_time, expires_at",
        )
        .bind(now)
        .bind(code_hash)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = row {
            let code = code_row(&row)?;
            tx.commit().await?;
            return Ok(CodeOutcome::Redeemed(code));
        }
        let used =
            sqlx::query("SELECT 1 FROM oidc_codes WHERE code_hash = $1 AND used_at IS NOT NULL")
                .bind(code_hash)
                .fetch_optional(&mut *tx)
                .await?;
        if used.is_none() {
            return Ok(CodeOutcome::Invalid);
        }
        sqlx::query(
            "UPDATE oidc_tokens SET revoked_at = $1 WHERE code_hash = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(code_hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(CodeOutcome::Reused)
    }

    /// Stores an access token issued from a code.
    pub async fn create_oidc_token(
        &self,
        token_hash: &[u8],
        code: &OidcCode,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oidc_tokens (token_hash, code_hash, client_id, user_id, scopes, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(code.code_hash.as_slice())
        .bind(code.client_id.as_str())
        .bind(code.user_id.0)
        .bind(code.scopes.as_str())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The grant of a live access token.
    pub async fn oidc_token(
        &self,
        token_hash: &[u8],
        now: i64,
    ) -> Result<Option<OidcGrant>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, client_id, scopes FROM oidc_tokens \
             WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((UserId(r.try_get(0)?), r.try_get(1)?, r.try_get(2)?)))
            .transpose()
    }

    /// Adds a signing key and retires the current one (it stays published until dropped).
    pub async fn add_oidc_key(&self, key: &OidcKey, now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE oidc_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO oidc_keys (kid, sealed_private_key, public_key, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key.kid.as_str())
        .bind(key.sealed_private_key.as_slice())
        .bind(key.public_key.as_slice())
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every stored signing key, newest first.
    pub async fn oidc_keys(&self) -> Result<Vec<OidcKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, sealed_private_key, public_key, created_at, retired_at FROM oidc_keys \
             ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OidcKey {
                    kid: r.try_get(0)?,
                    sealed_private_key: r.try_get(1)?,
                    public_key: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    retired_at: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Drops keys retired before `before` (no token they signed is still valid).
    pub async fn drop_oidc_keys_retired_before(&self, before: i64) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM oidc_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// When a session began (the OIDC `auth_time`).
    pub async fn session_created_at(&self, session_id: i64) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT created_at FROM sessions WHERE id = $1")
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }
}

fn code_row(row: &AnyRow) -> Result<OidcCode, StoreError> {
    Ok(OidcCode {
        code_hash: row.try_get(0)?,
        client_id: row.try_get(1)?,
        user_id: UserId(row.try_get(2)?),
        redirect_uri: row.try_get(3)?,
        scopes: row.try_get(4)?,
        nonce: row.try_get(5)?,
        code_challenge: row.try_get(6)?,
        auth_time: row.try_get(7)?,
        expires_at: row.try_get(8)?,
    })
}
