//! User data stream keys: made, kept alive and closed with an API key.

use super::orders::random_text;
use super::*;

// ---- user data stream keys ----

/// Listen keys live 60 minutes unless kept alive.
const LISTEN_KEY_MS: u64 = 60 * 60_000;

/// Answers the account's live listen key, kept alive, or makes one: as on Binance, one key per
/// account, so a client that asks on every reconnect holds one key, not thousands.
pub(crate) async fn new_listen_key(c: Call) -> Answer {
    c.params.all_read()?;
    let user_id = c.user_id.ok_or_else(|| BinanceError::internal("no user"))?;
    let mut keys = c.binance.listen_keys();
    keys.retain(|_, k| k.expires_ms > c.now);
    if let Some((key, live)) = keys.iter_mut().find(|(_, k)| k.user_id == user_id) {
        live.expires_ms = c.now + LISTEN_KEY_MS;
        return Ok(json!({ "listenKey": key }));
    }
    let key = random_text(60)?;
    keys.insert(
        key.clone(),
        ListenKey {
            user_id,
            expires_ms: c.now + LISTEN_KEY_MS,
        },
    );
    Ok(json!({ "listenKey": key }))
}

pub(crate) fn listen_key_of(c: &Call) -> Result<String, BinanceError> {
    let key = c.params.require("listenKey")?.to_owned();
    let keys = c.binance.listen_keys();
    match keys.get(&key) {
        Some(k) if Some(k.user_id) == c.user_id && k.expires_ms > c.now => Ok(key),
        _ => Err(BinanceError::new(-1125, "This listenKey does not exist.")),
    }
}

pub(crate) async fn keep_listen_key(c: Call) -> Answer {
    let key = listen_key_of(&c)?;
    c.params.all_read()?;
    let mut keys = c.binance.listen_keys();
    if let Some(k) = keys.get_mut(&key) {
        k.expires_ms = c.now + LISTEN_KEY_MS;
    }
    Ok(json!({}))
}

pub(crate) async fn close_listen_key(c: Call) -> Answer {
    let key = listen_key_of(&c)?;
    c.params.all_read()?;
    c.binance.listen_keys().remove(&key);
    Ok(json!({}))
}

impl Binance {
    /// The user a live listen key belongs to.
    #[must_use]
    pub fn listen_key_user(&self, key: &str) -> Option<UserId> {
        let keys = self.listen_keys();
        keys.get(key)
            .filter(|k| k.expires_ms > self.inner.gate.clock.now().0)
            .map(|k| k.user_id)
    }
}
