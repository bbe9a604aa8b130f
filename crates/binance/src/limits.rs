//! Binance's rate limits: request weight per client address per minute, orders per account
//! per 10 seconds and per day. Over a limit the answer is 429 with `Retry-After`; an address
//! that keeps sending while limited is banned with 418, for 2 minutes doubling up to 3 days.

use crate::error::BinanceError;
use axum::http::StatusCode;
use coss_http::client_key;
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// The limits (Binance's spot defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Request weight per address per minute (0: unlimited).
    pub weight_per_minute: u32,
    /// New orders per account per 10 seconds (0: unlimited).
    pub orders_per_10s: u32,
    /// New orders per account per day (0: unlimited).
    pub orders_per_day: u32,
    /// Stream connections one address may hold open at once (0: unlimited).
    pub stream_connections_per_address: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            weight_per_minute: 6_000,
            orders_per_10s: 100,
            orders_per_day: 200_000,
            stream_connections_per_address: 100,
        }
    }
}

/// Requests refused with 429 within one minute after which an address is banned.
const STRIKES_BEFORE_BAN: u32 = 10;
const MINUTE_MS: u64 = 60_000;
const BAN_MIN_MS: u64 = 2 * MINUTE_MS;
const BAN_MAX_MS: u64 = 3 * 24 * 60 * MINUTE_MS;

#[derive(Debug, Default)]
struct Address {
    minute: u64,
    used: u32,
    strikes: u32,
    bans: u32,
    banned_until: u64,
}

#[derive(Debug, Default)]
struct Account {
    window_10s: u64,
    in_10s: u32,
    day: u64,
    in_day: u32,
}

impl Address {
    /// Whether the entry still matters at `minute` (Unix minutes) and `now` (ms): counted in
    /// this minute, banned, or banned within the longest ban (so the next ban still doubles).
    fn live(&self, minute: u64, now: u64) -> bool {
        self.minute == minute || self.banned_until.saturating_add(BAN_MAX_MS) > now
    }
}

/// The counters: one entry per client address (an IPv6 client by its /64, since one host
/// holds a whole /64), dropped once it no longer matters, so the map holds the addresses
/// seen in the current minute and the recently banned, never every address ever seen.
#[derive(Debug, Default)]
pub struct Limiter {
    limits: RateLimits,
    addresses: Mutex<Addresses>,
    /// Per account, and the day they were last pruned in.
    accounts: Mutex<(FxHashMap<u64, Account>, u64)>,
}

#[derive(Debug, Default)]
struct Addresses {
    map: FxHashMap<IpAddr, Address>,
    /// The minute entries were last pruned in.
    pruned: u64,
}

impl Limiter {
    /// Counters for these limits.
    #[must_use]
    pub fn new(limits: RateLimits) -> Limiter {
        Limiter {
            limits,
            ..Limiter::default()
        }
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// Counts `weight` for an address at `now` and returns the weight used this minute.
    ///
    /// # Errors
    /// 429 (-1003) over the limit, 418 (-1003) while banned.
    pub fn weigh(&self, ip: Option<IpAddr>, weight: u32, now: u64) -> Result<u32, BinanceError> {
        let Some(ip) = ip.map(client_key) else {
            return Ok(weight);
        };
        let minute = now / MINUTE_MS;
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if addresses.pruned != minute {
            // Once a minute: one pass over the addresses of the last minute.
            addresses.pruned = minute;
            addresses.map.retain(|_, a| a.live(minute, now));
        }
        let entry = addresses.map.entry(ip).or_default();
        if entry.banned_until > now {
            return Err(banned(entry.banned_until, now));
        }
        if entry.minute != minute {
            entry.minute = minute;
            entry.used = 0;
            entry.strikes = 0;
        }
        entry.used = entry.used.saturating_add(weight);
        let limit = self.limits.weight_per_minute;
        if limit == 0 || entry.used <= limit {
            return Ok(entry.used);
        }
        entry.strikes += 1;
        if entry.strikes > STRIKES_BEFORE_BAN {
            let length = BAN_MIN_MS
                .saturating_mul(1 << entry.bans.min(16))
                .min(BAN_MAX_MS);
            entry.bans += 1;
            entry.banned_until = now + length;
            tracing::warn!(%ip, ban_ms = length, "address banned for ignoring 429s");
            return Err(banned(entry.banned_until, now));
        }
        let retry = (minute + 1) * MINUTE_MS - now;
        Err(BinanceError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: -1003,
            msg: format!(
                "Too much request weight used; current limit is {limit} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."
            ),
            retry_after: Some(retry.div_ceil(1000)),
        })
    }

    /// Refuses an address that is banned or already over this minute's limit, before its
    /// request is read any further (counted as [`Limiter::weigh`] counts a refusal).
    ///
    /// # Errors
    /// As [`Limiter::weigh`].
    pub fn admit(&self, ip: Option<IpAddr>, now: u64) -> Result<(), BinanceError> {
        self.weigh(ip, 0, now).map(|_| ())
    }

    /// Addresses with an entry now (for tests and metrics).
    #[must_use]
    pub fn addresses_held(&self) -> usize {
        self.addresses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map
            .len()
    }

    /// Counts one new order for an account and returns the counts (10 s, day).
    ///
    /// # Errors
    /// 429 (-1015) over either limit.
    pub fn order(&self, account: u64, now: u64) -> Result<(u32, u32), BinanceError> {
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (window, day) = (now / 10_000, now / (24 * 60 * MINUTE_MS));
        let (accounts, pruned) = &mut *accounts;
        if *pruned != day {
            // Once a day: yesterday's counters no longer limit anything.
            *pruned = day;
            accounts.retain(|_, a| a.day == day);
        }
        let entry = accounts.entry(account).or_default();
        if entry.window_10s != window {
            entry.window_10s = window;
            entry.in_10s = 0;
        }
        if entry.day != day {
            entry.day = day;
            entry.in_day = 0;
        }
        let over = |count: u32, limit: u32| limit != 0 && count >= limit;
        if over(entry.in_10s, self.limits.orders_per_10s) {
            return Err(too_many_orders(
                self.limits.orders_per_10s,
                "10 SECOND",
                (window + 1) * 10_000 - now,
            ));
        }
        if over(entry.in_day, self.limits.orders_per_day) {
            return Err(too_many_orders(
                self.limits.orders_per_day,
                "1 DAY",
                (day + 1) * 24 * 60 * MINUTE_MS - now,
            ));
        }
        entry.in_10s += 1;
        entry.in_day += 1;
        Ok((entry.in_10s, entry.in_day))
    }
}

fn banned(until: u64, now: u64) -> BinanceError {
    BinanceError {
        status: StatusCode::IM_A_TEAPOT,
        code: -1003,
        msg: format!(
            "Way too much request weight used; IP banned until {until}. Please use WebSocket Streams for live updates to avoid bans."
        ),
        retry_after: Some((until - now).div_ceil(1000)),
    }
}

fn too_many_orders(limit: u32, interval: &str, retry_ms: u64) -> BinanceError {
    BinanceError {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: -1015,
        msg: format!("Too many new orders; current limit is {limit} orders per {interval}."),
        retry_after: Some(retry_ms.div_ceil(1000)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn weight_over_the_minute_gets_429_then_a_ban() {
        let limiter = Limiter::new(RateLimits {
            weight_per_minute: 10,
            ..RateLimits::default()
        });
        let t = 1_000 * MINUTE_MS + 30_000;
        assert_eq!(limiter.weigh(IP, 10, t).unwrap(), 10);
        let limited = limiter.weigh(IP, 1, t).unwrap_err();
        assert_eq!((limited.status.as_u16(), limited.code), (429, -1003));
        assert_eq!(limited.retry_after, Some(30));
        for _ in 0..9 {
            assert_eq!(limiter.weigh(IP, 1, t).unwrap_err().status.as_u16(), 429);
        }
        let ban = limiter.weigh(IP, 1, t).unwrap_err();
        assert_eq!(ban.status.as_u16(), 418);
        assert_eq!(ban.retry_after, Some(120));
        // Still banned in the next minute; free after the ban.
        assert_eq!(
            limiter
                .weigh(IP, 1, t + 60_000)
                .unwrap_err()
                .status
                .as_u16(),
            418
        );
        assert_eq!(limiter.weigh(IP, 1, t + 120_000).unwrap(), 1);
    }

    #[test]
    fn orders_are_counted_per_account_per_window() {
        let limiter = Limiter::new(RateLimits {
            orders_per_10s: 2,
            ..RateLimits::default()
        });
        let t = 5_000_000;
        limiter.order(1, t).unwrap();
        assert_eq!(limiter.order(1, t).unwrap(), (2, 2));
        assert_eq!(limiter.order(1, t).unwrap_err().code, -1015);
        limiter.order(2, t).unwrap();
        assert_eq!(limiter.order(1, t + 10_000).unwrap(), (1, 3));
    }

    #[test]
    fn addresses_are_forgotten_once_their_minute_is_over_but_bans_are_remembered() {
        let limiter = Limiter::new(RateLimits {
            weight_per_minute: 10,
            ..RateLimits::default()
        });
        let t0 = 1_700_000_000_000 / MINUTE_MS * MINUTE_MS;
        for n in 0..10_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            limiter.weigh(Some(ip), 1, t0).unwrap();
        }
        // One address ignores its 429s and is banned.
        let bad = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
        let mut refused = 0;
        for _ in 0..30 {
            refused += u32::from(limiter.weigh(Some(bad), 1, t0).is_err());
        }
        assert!(refused > STRIKES_BEFORE_BAN);
        assert_eq!(limiter.addresses_held(), 10_001);
        // The next minute holds only what still matters: the ban, then this minute's caller.
        let next = t0 + MINUTE_MS;
        let other = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));
        limiter.weigh(Some(other), 1, next).unwrap();
        assert_eq!(limiter.addresses_held(), 2);
        assert_eq!(
            limiter.weigh(Some(bad), 1, next).unwrap_err().status,
            StatusCode::IM_A_TEAPOT
        );
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_prefix() {
        let limiter = Limiter::new(RateLimits {
            weight_per_minute: 10,
            ..RateLimits::default()
        });
        let t0 = 1_700_000_000_000;
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limiter.weigh(Some(a), 6, t0).unwrap(), 6);
        assert!(
            limiter.weigh(Some(b), 6, t0).is_err(),
            "same /64, same budget"
        );
        assert_eq!(limiter.weigh(Some(elsewhere), 6, t0).unwrap(), 6);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
