//! API keys for bots and merchants. The key is public (sent with every request); its secret
//! must be read back to check HMAC signatures, so the caller stores it sealed with the server
//! key. Permissions and the address allow-list are stored as comma-separated text.

use coss_types::UserId;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, is_unique_violation};

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// The public key string.
    pub api_key: String,
    /// The owner.
    pub user_id: UserId,
    /// The owner's name for it.
    pub label: String,
    /// The HMAC secret, sealed.
    pub sealed_secret: Vec<u8>,
    /// Comma-separated permissions.
    pub permissions: String,
    /// Comma-separated addresses or networks; empty allows any.
    pub ip_allow_list: String,
}

/// A stored API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Row id (what the owner revokes by).
    pub id: i64,
    /// The public key string.
    pub api_key: String,
    /// The owner.
    pub user_id: UserId,
    /// The owner's name for it.
    pub label: String,
    /// The HMAC secret, sealed.
    pub sealed_secret: Vec<u8>,
    /// Comma-separated permissions.
    pub permissions: String,
    /// Comma-separated addresses or networks; empty allows any.
    pub ip_allow_list: String,
    /// When it was created (Unix ms).
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, api_key, user_id, label, sealed_secret, permissions, ip_allow_list, \
                       created_at, revoked_at";

impl Store {
    /// Stores a new key; returns its id.
    pub async fn create_api_key(&self, key: &NewApiKey, now: i64) -> Result<i64, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO api_keys (api_key, user_id, label, sealed_secret, permissions, \
             ip_allow_list, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(key.api_key.as_str())
        .bind(key.user_id.0)
        .bind(key.label.as_str())
        .bind(key.sealed_secret.as_slice())
        .bind(key.permissions.as_str())
        .bind(key.ip_allow_list.as_str())
        .bind(now)
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(row) => Ok(row.try_get(0)?),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// The key with this public string, revoked or not.
    pub async fn api_key(&self, api_key: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE api_key = $1"
        )))
        .bind(api_key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record).transpose()
    }

    /// An account's keys, revoked ones included, oldest first.
    pub async fn api_keys_of(&self, user_id: UserId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY id"
        )))
        .bind(user_id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// Revokes one of the account's keys; false if it has no such live key.
    pub async fn revoke_api_key(
        &self,
        user_id: UserId,
        id: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 \
             WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(user_id.0)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn record(row: &AnyRow) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: row.try_get(0)?,
        api_key: row.try_get(1)?,
        user_id: UserId(row.try_get(2)?),
        label: row.try_get(3)?,
        sealed_secret: row.try_get(4)?,
        permissions: row.try_get(5)?,
        ip_allow_list: row.try_get(6)?,
        created_at: row.try_get(7)?,
        revoked_at: row.try_get(8)?,
    })
}
