//! Binance's rate limits: request weight per client address per minute, orders per account
//! per 10 seconds and per day. Over a limit the answer is 429 with `Retry-After`; an address
//! that keeps sending while limited is banned with 418, for 2 minutes doubling up to 3 days.

use crate::error::BinanceError;
use axum::http::StatusCode;
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
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            weight_per_minute: 6_000,
            orders_per_10s: 100,
            orders_per_day: 200_000,
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

/// The counters.
#[derive(Debug, Default)]
pub struct Limiter {
    limits: RateLimits,
    addresses: Mutex<FxHashMap<IpAddr, Address>>,
    accounts: Mutex<FxHashMap<u64, Account>>,
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
        let Some(ip) = ip else {
            return Ok(weight);
        };
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = addresses.entry(ip).or_default();
        if entry.banned_until > now {
            return Err(banned(entry.banned_until, now));
        }
        let minute = now / MINUTE_MS;
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

    /// Counts one new order for an account and returns the counts (10 s, day).
    ///
    /// # Errors
    /// 429 (-1015) over either limit.
    pub fn order(&self, account: u64, now: u64) -> Result<(u32, u32), BinanceError> {
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = accounts.entry(account).or_default();
        let (window, day) = (now / 10_000, now / (24 * 60 * MINUTE_MS));
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
}
