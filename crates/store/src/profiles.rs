//! User profiles (display name, country, verification level) and merchant profiles (business,
//! website, settlement preferences, webhook URL and its sealed signing secret). Validation is
//! the caller's; this stores what it is given.

use coss_types::UserId;
use sqlx::Row;

use crate::{Store, StoreError};

/// A user's profile; an account without a row has the default (nothing set, level 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileRecord {
    /// Shown to others (e.g. in payments), if set.
    pub display_name: Option<String>,
    /// ISO 3166-1 alpha-2 country code, if set.
    pub country: Option<String>,
    /// Identity verification level (0 = none); later sets withdrawal limits.
    pub verification_level: i64,
}

/// A merchant profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantRecord {
    /// The business's name.
    pub business_name: String,
    /// Its website, if any.
    pub website: Option<String>,
    /// The asset payments settle in.
    pub settlement_asset: String,
    /// How payments settle (e.g. keep as paid, or convert).
    pub settlement_mode: String,
    /// Where payment events are posted, if anywhere.
    pub webhook_url: Option<String>,
    /// The webhook signing secret, sealed.
    pub sealed_webhook_secret: Vec<u8>,
    /// When the profile was created (Unix ms).
    pub created_at: i64,
    /// When it last changed (Unix ms).
    pub updated_at: i64,
}

impl Store {
    /// The account's profile (the default if none was saved).
    pub async fn profile(&self, user_id: UserId) -> Result<ProfileRecord, StoreError> {
        let row = sqlx::query(
            "SELECT display_name, country, verification_level FROM profiles WHERE user_id = $1",
        )
        .bind(user_id.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => ProfileRecord {
                display_name: r.try_get(0)?,
                country: r.try_get(1)?,
                verification_level: r.try_get(2)?,
            },
            None => ProfileRecord::default(),
        })
    }

    /// Saves display name and country (the verification level is kept).
    pub async fn put_profile(
        &self,
        user_id: UserId,
        display_name: Option<&str>,
        country: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO profiles (user_id, display_name, country, verification_level, updated_at) \
             VALUES ($1, $2, $3, 0, $4) ON CONFLICT (user_id) DO UPDATE SET \
             display_name = excluded.display_name, country = excluded.country, \
             updated_at = excluded.updated_at",
        )
        .bind(user_id.0)
        .bind(display_name)
        .bind(country)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets the verification level (the back office's decision, never the user's).
    pub async fn set_verification_level(
        &self,
        user_id: UserId,
        level: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO profiles (user_id, verification_level, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET verification_level = excluded.verification_level, \
             updated_at = excluded.updated_at",
        )
        .bind(user_id.0)
        .bind(level)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The account's merchant profile, if it has one.
    pub async fn merchant(&self, user_id: UserId) -> Result<Option<MerchantRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT business_name, website, settlement_asset, settlement_mode, webhook_url, \
             sealed_webhook_secret, created_at, updated_at FROM merchants WHERE user_id = $1",
        )
        .bind(user_id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(MerchantRecord {
                business_name: r.try_get(0)?,
                website: r.try_get(1)?,
                settlement_asset: r.try_get(2)?,
                settlement_mode: r.try_get(3)?,
                webhook_url: r.try_get(4)?,
                sealed_webhook_secret: r.try_get(5)?,
                created_at: r.try_get(6)?,
                updated_at: r.try_get(7)?,
            })
        })
        .transpose()
    }

    /// Creates or replaces the account's merchant profile (`created_at` is kept on replace).
    pub async fn put_merchant(
        &self,
        user_id: UserId,
        merchant: &MerchantRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO merchants (user_id, business_name, website, settlement_asset, \
             settlement_mode, webhook_url, sealed_webhook_secret, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (user_id) DO UPDATE SET \
             business_name = excluded.business_name, website = excluded.website, \
             settlement_asset = excluded.settlement_asset, \
             settlement_mode = excluded.settlement_mode, webhook_url = excluded.webhook_url, \
             sealed_webhook_secret = excluded.sealed_webhook_secret, \
             updated_at = excluded.updated_at",
        )
        .bind(user_id.0)
        .bind(merchant.business_name.as_str())
        .bind(merchant.website.as_deref())
        .bind(merchant.settlement_asset.as_str())
        .bind(merchant.settlement_mode.as_str())
        .bind(merchant.webhook_url.as_deref())
        .bind(merchant.sealed_webhook_secret.as_slice())
        .bind(merchant.created_at)
        .bind(merchant.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
