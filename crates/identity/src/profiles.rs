//! User profiles (display name, country; the verification level is set by the back office
//! and later bounds withdrawals) and merchant profiles (business name, website, settlement
//! preferences, webhook URL and signing secret). Every field is validated with its own error
//! code; the webhook secret is sealed at rest and shown only when made or rotated.

use coss_store::MerchantRecord;
use coss_types::UserId;

use crate::{Accounts, IdentityError, Secret, random_secret};
use zeroize::Zeroizing;

/// ISO 3166-1 alpha-2 codes (officially assigned).
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// How merchant payments settle.
pub const SETTLEMENT_MODES: [&str; 2] = ["hold", "convert"];

/// A user's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Shown to others (e.g. on payments), if set.
    pub display_name: Option<String>,
    /// ISO 3166-1 alpha-2 country code, if set.
    pub country: Option<String>,
    /// Identity verification level (0 = none), set by the back office.
    pub verification_level: i64,
}

/// Changes to a profile: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    /// New display name.
    pub display_name: Option<Option<String>>,
    /// New country.
    pub country: Option<Option<String>>,
}

/// A merchant profile as submitted.
#[derive(Debug, Clone)]
pub struct MerchantInput {
    /// 1 to 100 characters.
    pub business_name: String,
    /// An http(s) URL, if any.
    pub website: Option<String>,
    /// The asset payments settle in (2 to 10 upper-case letters or digits).
    pub settlement_asset: String,
    /// `hold` (keep what was paid) or `convert` (convert to the settlement asset).
    pub settlement_mode: String,
    /// Where payment events are posted: https (http only to a loopback address, for tests).
    pub webhook_url: Option<String>,
}

/// A merchant profile as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    /// The business's name.
    pub business_name: String,
    /// Its website.
    pub website: Option<String>,
    /// The asset payments settle in.
    pub settlement_asset: String,
    /// `hold` or `convert`.
    pub settlement_mode: String,
    /// Where payment events are posted.
    pub webhook_url: Option<String>,
    /// When it was created (Unix ms).
    pub created_at: i64,
    /// When it last changed (Unix ms).
    pub updated_at: i64,
}

impl Accounts {
    /// The account's profile.
    pub async fn profile(&self, user_id: UserId) -> Result<Profile, IdentityError> {
        let record = self.store.profile(user_id).await?;
        Ok(Profile {
            display_name: record.display_name,
            country: record.country,
            verification_level: record.verification_level,
        })
    }

    /// Applies a patch after validating every field it sets (nothing changes if one fails).
    pub async fn update_profile(
        &self,
        user_id: UserId,
        patch: &ProfilePatch,
        now: i64,
    ) -> Result<Profile, IdentityError> {
        let mut profile = self.profile(user_id).await?;
        if let Some(name) = &patch.display_name {
            profile.display_name = name.as_deref().map(display_name).transpose()?;
        }
        if let Some(country) = &patch.country {
            profile.country = country.as_deref().map(country_code).transpose()?;
        }
        self.store
            .put_profile(
                user_id,
                profile.display_name.as_deref(),
                profile.country.as_deref(),
                now,
            )
            .await?;
        Ok(profile)
    }

    /// The account's merchant profile, if it has one.
    pub async fn merchant(&self, user_id: UserId) -> Result<Option<Merchant>, IdentityError> {
        Ok(self.store.merchant(user_id).await?.map(merchant))
    }

    /// Creates or replaces the merchant profile. The first save makes the webhook signing
    /// secret and returns it (the only time it is shown); later saves keep it.
    pub async fn put_merchant(
        &self,
        user_id: UserId,
        input: &MerchantInput,
        now: i64,
    ) -> Result<(Merchant, Option<Secret>), IdentityError> {
        let business_name = input.business_name.trim();
        if business_name.is_empty()
            || business_name.chars().count() > 100
            || business_name.chars().any(char::is_control)
        {
            return Err(IdentityError::invalid(
                "invalid_business_name",
                "the business name must have 1 to 100 characters and no control characters",
            ));
        }
        let website = input
            .website
            .as_deref()
            .map(|w| url(w, "invalid_website", false))
            .transpose()?;
        let asset = input.settlement_asset.trim();
        if !(2..=10).contains(&asset.len())
            || !asset
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(IdentityError::invalid(
                "invalid_settlement_asset",
                "the settlement asset must be a symbol of 2 to 10 upper-case letters or digits",
            ));
        }
        if !SETTLEMENT_MODES.contains(&input.settlement_mode.as_str()) {
            return Err(IdentityError::invalid(
                "invalid_settlement_mode",
                "the settlement mode must be hold or convert",
            ));
        }
        let webhook_url = input
            .webhook_url
            .as_deref()
            .map(|w| url(w, "invalid_webhook_url", true))
            .transpose()?;
        let existing = self.store.merchant(user_id).await?;
        let (sealed, created_at, fresh) = match existing {
            Some(record) => (record.sealed_webhook_secret, record.created_at, None),
            None => {
                let secret = webhook_secret()?;
                let sealed = self
                    .vault
                    .seal(secret.expose().as_bytes(), &purpose(user_id))?;
                (sealed, now, Some(secret))
            }
        };
        let record = MerchantRecord {
            business_name: business_name.to_owned(),
            website,
            settlement_asset: asset.to_owned(),
            settlement_mode: input.settlement_mode.clone(),
            webhook_url,
            sealed_webhook_secret: sealed,
            created_at,
            updated_at: now,
        };
        self.store.put_merchant(user_id, &record).await?;
        Ok((merchant(record), fresh))
    }

    /// Replaces the webhook signing secret and returns the new one (shown once).
    pub async fn rotate_webhook_secret(
        &self,
        user_id: UserId,
        now: i64,
    ) -> Result<Secret, IdentityError> {
        let mut record = self.store.merchant(user_id).await?.ok_or_else(|| {
            IdentityError::invalid("no_merchant_profile", "create a merchant profile first")
        })?;
        let secret = webhook_secret()?;
        record.sealed_webhook_secret = self
            .vault
            .seal(secret.expose().as_bytes(), &purpose(user_id))?;
        record.updated_at = now;
        self.store.put_merchant(user_id, &record).await?;
        Ok(secret)
    }

    /// The webhook signing secret (for the gateway that signs webhook deliveries).
    pub async fn webhook_secret(&self, user_id: UserId) -> Result<Option<Secret>, IdentityError> {
        let Some(record) = self.store.merchant(user_id).await? else {
            return Ok(None);
        };
        let plain = self
            .vault
            .open(&record.sealed_webhook_secret, &purpose(user_id))?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| IdentityError::Crypto)?;
        Ok(Some(Secret(Zeroizing::new(text))))
    }
}

fn merchant(record: MerchantRecord) -> Merchant {
    Merchant {
        business_name: record.business_name,
        website: record.website,
        settlement_asset: record.settlement_asset,
        settlement_mode: record.settlement_mode,
        webhook_url: record.webhook_url,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

fn purpose(user_id: UserId) -> Vec<u8> {
    format!("webhook:{user_id}").into_bytes()
}

fn webhook_secret() -> Result<Secret, IdentityError> {
    Ok(Secret(Zeroizing::new(format!(
        "whsec_{}",
        random_secret()?.expose()
    ))))
}

fn display_name(name: &str) -> Result<String, IdentityError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(IdentityError::invalid(
            "invalid_display_name",
            "the display name must have 1 to 64 characters and no control characters",
        ));
    }
    Ok(name.to_owned())
}

fn country_code(code: &str) -> Result<String, IdentityError> {
    let code = code.trim().to_ascii_uppercase();
    if code.len() == 2 && COUNTRIES.split(' ').any(|c| c == code) {
        Ok(code)
    } else {
        Err(IdentityError::invalid(
            "invalid_country",
            "the country must be an ISO 3166-1 alpha-2 code such as KR or US",
        ))
    }
}

/// Whether a URL host is this machine (`localhost`, 127.0.0.0/8, `[::1]`): the only hosts
/// plain http is allowed to for callbacks (webhooks, SSO redirects), for local development.
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An absolute http(s) URL of at most 2,048 bytes with a host; `https_only` allows plain
/// http only to loopback hosts.
fn url(text: &str, code: &'static str, https_only: bool) -> Result<String, IdentityError> {
    let bad = |why: &str| IdentityError::invalid(code, why.to_owned());
    if text.len() > 2048 {
        return Err(bad("the URL must be at most 2048 bytes"));
    }
    let parsed = url::Url::parse(text.trim()).map_err(|_| bad("not an absolute URL"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| bad("the URL needs a host"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if !https_only || is_loopback_host(host) => {}
        _ if https_only => return Err(bad("the webhook URL must use https")),
        _ => return Err(bad("the URL must use http or https")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("the URL must not carry credentials"));
    }
    Ok(parsed.to_string())
}
