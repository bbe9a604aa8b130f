//! API keys for bots and merchants, signed the way trading clients already sign for Binance:
//! the key travels in `X-MBX-APIKEY`; the request carries `timestamp` (Unix ms), optionally
//! `recvWindow` (ms, default 5,000, at most 60,000) and `signature`, the hex HMAC-SHA256 under
//! the key's secret of the query string concatenated with the body, `signature` itself left
//! out. A request is accepted when the key is live, the client's address is on the key's
//! allow-list (if it has one), the timestamp is no more than 1 s ahead of the server and no
//! older than recvWindow, the signature matches (constant time) and the key holds the
//! permission the endpoint needs. Keys are created only with a current TOTP code; their
//! secret is shown once and sealed at rest; revocation takes effect on the next request.

use coss_types::UserId;
use std::net::IpAddr;
use std::sync::Arc;

use coss_store::NewApiKey;
use ring::hmac;

use crate::{Accounts, Authenticated, IdentityError, Secret, random_bytes};
use zeroize::Zeroizing;

/// Default `recvWindow` (ms).
pub const DEFAULT_RECV_WINDOW_MS: i64 = 5_000;
/// Largest accepted `recvWindow` (ms).
pub const MAX_RECV_WINDOW_MS: i64 = 60_000;
/// How far ahead of the server's clock a timestamp may be (ms).
pub const MAX_CLOCK_AHEAD_MS: i64 = 1_000;
/// Live keys an account may hold.
pub const MAX_KEYS_PER_ACCOUNT: usize = 30;
/// Entries an allow-list may hold.
pub const MAX_ALLOW_LIST: usize = 30;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// Read balances, orders, history (every key has it).
    Read,
    /// Place and cancel orders.
    Trade,
    /// Request withdrawals (needs an IP allow-list).
    Withdraw,
    /// Create invoices and read payments (the merchant gateway).
    Merchant,
}

impl Permission {
    /// Every permission, in order.
    pub const ALL: [Permission; 4] = [Self::Read, Self::Trade, Self::Withdraw, Self::Merchant];

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Trade => "trade",
            Self::Withdraw => "withdraw",
            Self::Merchant => "merchant",
        }
    }

    /// Parses a name from the API.
    pub fn parse(name: &str) -> Result<Self, IdentityError> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| {
                IdentityError::invalid(
                    "invalid_permission",
                    format!("unknown permission {name:?}: use read, trade, withdraw or merchant"),
                )
            })
    }
}

/// A key as its owner sees it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Id to revoke it by.
    pub id: i64,
    /// The public key string (sent in `X-MBX-APIKEY`).
    pub api_key: String,
    /// The owner's name for it.
    pub label: String,
    /// What it may do.
    pub permissions: Vec<Permission>,
    /// Addresses or networks it accepts requests from (empty: any).
    pub ip_allow_list: Vec<String>,
    /// When it was created (Unix ms).
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// A new key: the only time its secret is shown.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The key as listed.
    pub key: ApiKey,
    /// The HMAC secret.
    pub secret: Secret,
}

/// How long a checked key is trusted without asking the store again. A key revoked through
/// this process stops working on its next request; one revoked by another process sharing
/// the database, within this long.
pub const KEY_CACHE_MS: u64 = 2_000;
/// Most keys cached at once (the cache is emptied when full).
const KEY_CACHE_MAX: usize = 100_000;

/// A live key as requests are checked against it: the secret already unsealed into an HMAC
/// key, never printed.
pub(crate) struct LiveKey {
    id: i64,
    pub(crate) user_id: UserId,
    permissions: Vec<Permission>,
    networks: Vec<Network>,
    restricted: bool,
    hmac: hmac::Key,
}

impl std::fmt::Debug for LiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKey")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// Recently checked keys by their public key string.
pub(crate) type KeyCache =
    std::sync::Mutex<std::collections::HashMap<String, (Arc<LiveKey>, std::time::Instant)>>;

/// A signed request as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The `X-MBX-APIKEY` header.
    pub api_key: &'a str,
    /// The raw query string (without `?`).
    pub query: &'a str,
    /// The raw body (form-encoded for Binance clients; may be empty).
    pub body: &'a str,
    /// The client's address, if known.
    pub client_ip: Option<IpAddr>,
    /// The permission the endpoint needs.
    pub needs: Permission,
}

/// A verified request's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAuth {
    /// The account.
    pub user_id: UserId,
    /// The key's id.
    pub key_id: i64,
    /// What the key may do.
    pub permissions: Vec<Permission>,
}

/// The hex HMAC-SHA256 signature of `payload` under `secret` (what clients compute).
pub fn sign(secret: &str, payload: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(hmac::sign(&key, payload.as_bytes()))
}

impl Accounts {
    /// Creates a key (a current TOTP code required): `read` is always included; `withdraw`
    /// needs an allow-list. The secret is returned once.
    pub async fn create_api_key(
        &self,
        auth: &Authenticated,
        label: &str,
        permissions: &[Permission],
        ip_allow_list: &[String],
        totp_code: Option<&str>,
        now: i64,
    ) -> Result<NewKey, IdentityError> {
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control) {
            return Err(IdentityError::invalid(
                "invalid_label",
                "the label must have 1 to 64 characters and no control characters",
            ));
        }
        let mut permissions = permissions.to_vec();
        permissions.push(Permission::Read);
        permissions.sort();
        permissions.dedup();
        if ip_allow_list.len() > MAX_ALLOW_LIST {
            return Err(IdentityError::invalid(
                "invalid_ip_allow_list",
                format!("at most {MAX_ALLOW_LIST} addresses or networks"),
            ));
        }
        let mut allow = Vec::with_capacity(ip_allow_list.len());
        for entry in ip_allow_list {
            allow.push(parse_network(entry)?.to_string());
        }
        if permissions.contains(&Permission::Withdraw) && allow.is_empty() {
            return Err(IdentityError::invalid(
                "withdraw_needs_ip_allow_list",
                "a key with the withdraw permission must be limited to an IP allow-list",
            ));
        }
        let live = self
            .store
            .api_keys_of(auth.user_id)
            .await?
            .iter()
            .filter(|k| k.revoked_at.is_none())
            .count();
        if live >= MAX_KEYS_PER_ACCOUNT {
            return Err(IdentityError::invalid(
                "too_many_api_keys",
                format!("an account may hold {MAX_KEYS_PER_ACCOUNT} live keys; revoke one first"),
            ));
        }
        self.require_second_factor(auth.user_id, totp_code, now)
            .await?;
        let api_key = alphanumeric(&*random_bytes::<48>()?);
        let secret = Secret(Zeroizing::new(alphanumeric(&*random_bytes::<48>()?)));
        let sealed_secret = self
            .vault
            .seal(secret.expose().as_bytes(), &purpose(&api_key))?;
        let record = NewApiKey {
            api_key: api_key.clone(),
            user_id: auth.user_id,
            label: label.to_owned(),
            sealed_secret,
            permissions: permissions
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(","),
            ip_allow_list: allow.join(","),
        };
        let id = self.store.create_api_key(&record, now).await?;
        Ok(NewKey {
            key: ApiKey {
                id,
                api_key,
                label: label.to_owned(),
                permissions,
                ip_allow_list: allow,
                created_at: now,
                revoked_at: None,
            },
            secret,
        })
    }

    /// The account's keys, revoked ones included.
    pub async fn api_keys(&self, user_id: UserId) -> Result<Vec<ApiKey>, IdentityError> {
        self.store
            .api_keys_of(user_id)
            .await?
            .into_iter()
            .map(|r| {
                Ok(ApiKey {
                    id: r.id,
                    api_key: r.api_key,
                    label: r.label,
                    permissions: split(&r.permissions)
                        .map(Permission::parse)
                        .collect::<Result<_, _>>()?,
                    ip_allow_list: split(&r.ip_allow_list).map(str::to_owned).collect(),
                    created_at: r.created_at,
                    revoked_at: r.revoked_at,
                })
            })
            .collect()
    }

    /// Revokes one of the account's live keys.
    pub async fn revoke_api_key(
        &self,
        user_id: UserId,
        id: i64,
        now: i64,
    ) -> Result<(), IdentityError> {
        if self.store.revoke_api_key(user_id, id, now).await? {
            // Effective on the next request in this process (others within KEY_CACHE_MS).
            self.key_cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|_, (key, _)| key.id != id);
            Ok(())
        } else {
            Err(IdentityError::ApiKeyNotFound)
        }
    }

    /// The owner of a live key presented from an allowed address, for the few endpoints that
    /// take the key without a signature (Binance's user data stream keys).
    pub async fn key_owner(
        &self,
        api_key: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<UserId, IdentityError> {
        Ok(self.live_key(api_key, client_ip).await?.user_id)
    }

    /// A live key allowed from `client_ip`: from the cache of recently checked keys, else
    /// from the store (then cached for [`KEY_CACHE_MS`]).
    async fn live_key(
        &self,
        api_key: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Arc<LiveKey>, IdentityError> {
        let fresh = std::time::Instant::now();
        let cached = self
            .key_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(api_key)
            .filter(|(_, at)| fresh.duration_since(*at).as_millis() < u128::from(KEY_CACHE_MS))
            .map(|(key, _)| Arc::clone(key));
        let key = match cached {
            Some(key) => key,
            None => {
                let record = self
                    .store
                    .api_key(api_key)
                    .await?
                    .ok_or(IdentityError::ApiKeyInvalid)?;
                if record.revoked_at.is_some() {
                    return Err(IdentityError::ApiKeyRevoked);
                }
                if self
                    .store
                    .user(record.user_id)
                    .await?
                    .is_none_or(|u| u.locked_at > 0)
                {
                    return Err(IdentityError::AccountLocked);
                }
                let secret = self
                    .vault
                    .open(&record.sealed_secret, &purpose(&record.api_key))?;
                let key = Arc::new(LiveKey {
                    id: record.id,
                    user_id: record.user_id,
                    permissions: split(&record.permissions)
                        .map(Permission::parse)
                        .collect::<Result<_, _>>()?,
                    networks: split(&record.ip_allow_list)
                        .filter_map(|n| parse_network(n).ok())
                        .collect(),
                    restricted: !record.ip_allow_list.is_empty(),
                    hmac: hmac::Key::new(hmac::HMAC_SHA256, &secret),
                });
                let mut cache = self
                    .key_cache
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if cache.len() >= KEY_CACHE_MAX {
                    cache.clear();
                }
                cache.insert(api_key.to_owned(), (Arc::clone(&key), fresh));
                key
            }
        };
        if key.restricted
            && !client_ip.is_some_and(|ip| key.networks.iter().any(|n| n.contains(ip)))
        {
            return Err(IdentityError::IpNotAllowed);
        }
        Ok(key)
    }

    /// Verifies a signed request (see the module documentation for the rules and their order).
    pub async fn verify_signed(
        &self,
        request: &SignedRequest<'_>,
        now: i64,
    ) -> Result<KeyAuth, IdentityError> {
        let key = self.live_key(request.api_key, request.client_ip).await?;
        let (payload, params) = signed_payload(request.query, request.body);
        // Unix milliseconds as an unsigned integer (Binance: `^[0-9]{1,20}$`); a number too
        // large for any clock is simply far ahead. Compared without arithmetic that could
        // overflow, whatever the caller sent.
        let timestamp: u64 = params
            .timestamp
            .ok_or(IdentityError::MissingParameter("timestamp"))?
            .parse()
            .map_err(|_| {
                IdentityError::invalid("invalid_timestamp", "timestamp must be Unix milliseconds")
            })?;
        let timestamp = i64::try_from(timestamp).unwrap_or(i64::MAX);
        let window = match params.recv_window {
            None => DEFAULT_RECV_WINDOW_MS,
            Some(text) => match text.parse::<i64>() {
                Ok(w) if (1..=MAX_RECV_WINDOW_MS).contains(&w) => w,
                _ => {
                    return Err(IdentityError::invalid(
                        "invalid_parameter",
                        format!("recvWindow must be 1 to {MAX_RECV_WINDOW_MS} ms"),
                    ));
                }
            },
        };
        if timestamp > now.saturating_add(MAX_CLOCK_AHEAD_MS) {
            return Err(IdentityError::TimestampAhead);
        }
        if now.saturating_sub(timestamp) > window {
            return Err(IdentityError::TimestampOutsideWindow);
        }
        let signature = params
            .signature
            .ok_or(IdentityError::MissingParameter("signature"))?;
        let signature = hex::decode(signature).map_err(|_| IdentityError::InvalidSignature)?;
        hmac::verify(&key.hmac, payload.as_bytes(), &signature)
            .map_err(|_| IdentityError::InvalidSignature)?;
        if !key.permissions.contains(&request.needs) {
            return Err(IdentityError::PermissionDenied(request.needs.as_str()));
        }
        Ok(KeyAuth {
            user_id: key.user_id,
            key_id: key.id,
            permissions: key.permissions.clone(),
        })
    }
}

fn purpose(api_key: &str) -> Vec<u8> {
    format!("api_key:{api_key}").into_bytes()
}

fn split(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').filter(|s| !s.is_empty())
}

/// 64 characters of [A-Za-z0-9] from 48 random bytes (about 378 bits).
fn alphanumeric(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // 48 bytes = 384 bits, read 6 at a time: 64 values below 64; the 2 values above 61 wrap,
    // which biases two letters slightly but leaves far more than 256 bits of entropy.
    let mut out = String::with_capacity(64);
    let mut acc = 0u32;
    let mut bits = 0;
    for byte in bytes {
        acc = (acc << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            let index = usize::try_from((acc >> bits) & 63).unwrap_or_default() % ALPHABET.len();
            out.push(char::from(ALPHABET[index]));
        }
    }
    out
}

#[derive(Default)]
struct Params<'a> {
    timestamp: Option<&'a str>,
    recv_window: Option<&'a str>,
    signature: Option<&'a str>,
}

/// The signed payload (query then body, each without its `signature` parameter) and the
/// parameters the check needs.
fn signed_payload<'a>(query: &'a str, body: &'a str) -> (String, Params<'a>) {
    let mut params = Params::default();
    let mut payload = String::with_capacity(query.len() + body.len());
    for part in [query, body] {
        let mut first = true;
        for pair in part.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "signature" => {
                    params.signature = Some(value);
                    continue;
                }
                "timestamp" => params.timestamp = Some(value),
                "recvWindow" => params.recv_window = Some(value),
                _ => {}
            }
            if !first {
                payload.push('&');
            }
            payload.push_str(pair);
            first = false;
        }
    }
    (payload, params)
}

/// An address or CIDR network (`192.0.2.7`, `10.0.0.0/8`, `2001:db8::/32`): API keys' IP
/// allow-lists and the HTTP edge's trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses an address or a CIDR network.
    pub fn parse(text: &str) -> Result<Network, IdentityError> {
        parse_network(text)
    }

    /// Whether `ip` is in the network (an IPv4 address also matches as IPv4-mapped IPv6).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V6(_), IpAddr::V4(ip)) => self.contains(IpAddr::V6(ip.to_ipv6_mapped())),
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let full = if self.address.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.address)
        } else {
            write!(f, "{}/{}", self.address, self.prefix)
        }
    }
}

fn parse_network(text: &str) -> Result<Network, IdentityError> {
    let bad = || {
        IdentityError::invalid(
            "invalid_ip_allow_list",
            format!("{text:?} is not an IP address or CIDR network"),
        )
    };
    let (address, prefix) = match text.trim().split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text.trim(), None),
    };
    let address: IpAddr = address.parse().map_err(|_| bad())?;
    let full = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => full,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= full)
            .ok_or_else(bad)?,
    };
    Ok(Network { address, prefix })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_the_query_then_the_body_without_the_signature() {
        let (payload, params) = signed_payload(
            "symbol=LTCBTC&side=BUY&signature=abc",
            "quantity=1&timestamp=1499827319559&recvWindow=5000",
        );
        assert_eq!(
            payload,
            "symbol=LTCBTC&side=BUYquantity=1&timestamp=1499827319559&recvWindow=5000"
        );
        assert_eq!(params.signature, Some("abc"));
        assert_eq!(params.timestamp, Some("1499827319559"));
        assert_eq!(params.recv_window, Some("5000"));
    }

    #[test]
    fn binance_documented_example_signature() {
        // The example from Binance's spot API documentation (HMAC SHA256).
        let secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
        let payload = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        assert_eq!(
            sign(secret, payload),
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
    }

    #[test]
    fn networks_match_addresses_inside_them() {
        let net = parse_network("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(
            parse_network("127.0.0.1")
                .unwrap()
                .contains("::ffff:127.0.0.1".parse().unwrap())
        );
        assert!(
            parse_network("::1")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(
            parse_network("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(parse_network("10.0.0.0/33").is_err());
        assert!(parse_network("localhost").is_err());
    }

    #[test]
    fn keys_are_64_alphanumeric_characters() {
        let key = alphanumeric(&[0xff; 48]);
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
