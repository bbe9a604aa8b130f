//! What every HTTP edge of COSS shares, so that each edge (accounts, wallets, the DAO, single
//! sign-on, the Binance-compatible API, and the gateway, web app and back office to come)
//! states only its own rules:
//! - **who is calling**, as axum extractors that a handler names in its signature: [`Public`],
//!   [`Caller`] (a bearer token, or the session cookie plus the CSRF token on changes) and
//!   [`KeyCaller`] (a Binance-style signed API key with a required permission);
//! - [`Routes`], the only way to mount a route: a handler whose first argument is not one of
//!   those (an [`Auth`]) does not compile, and the builder records every mounted route with its
//!   authentication so a test can check each one is described;
//! - [`ApiError`], the `{"code","message"}` answer with its status;
//! - [`JsonBody`]: JSON of at most [`MAX_BODY_BYTES`] with every unknown field refused;
//! - [`ClientAddr`]: the client's address, taken from `X-Forwarded-For` only when the TCP peer
//!   is one of the configured [`TrustedProxies`] (a spoofed header from anyone else is
//!   ignored).
//!
//! The state an extractor needs (the accounts, the clock, the trusted proxies) is the [`Gate`],
//! which every edge's router state provides through axum's `FromRef`.
//!
//! A handler declares its caller's authentication as its first argument:
//!
//! ```
//! use axum::extract::State;
//! use coss_http::{Caller, Gate, Public, Routes};
//!
//! async fn status(_: Public) -> &'static str {
//!     "ok"
//! }
//!
//! async fn my_id(who: Caller, State(_gate): State<Gate>) -> String {
//!     who.user_id.to_string()
//! }
//!
//! let routes: Routes<Gate> = Routes::new().get("/status", status).get("/me", my_id);
//! assert_eq!(routes.mounted()[1].auth, "session");
//! ```
//!
//! and one that does not is refused at compile time:
//!
//! ```compile_fail
//! use axum::extract::State;
//! use coss_http::{Gate, Routes};
//!
//! async fn balances(State(_gate): State<Gate>) -> &'static str {
//!     "who is asking?"
//! }
//!
//! let routes: Routes<Gate> = Routes::new().get("/balances", balances);
//! ```

mod auth;
mod body;
mod client;
mod document;
mod error;
mod routes;

pub use auth::{
    Auth, CSRF_COOKIE, CSRF_HEADER, Caller, KeyCaller, MerchantCaller, Need, Public,
    SESSION_COOKIE, cookie, need, session, set_cookie, set_session_cookies,
};
pub use body::{BodyError, BufferedBody, JsonBody, MAX_BODY_BYTES, Query, read_body};
pub use client::{
    AddressSlot, AddressSlots, ClientAddr, ClientInfo, TrustedProxies, client_addr, client_key,
};
pub use document::document_edge_answers;
pub use error::{ApiError, identity_status};
pub use routes::{Declared, Mounted, Routes, not_found_error, with_json_fallbacks};

use coss_clock::Clock;
use coss_identity::Accounts;

/// What the extractors need from a router's state: the accounts (sessions, API keys), the
/// clock, and the proxies whose `X-Forwarded-For` is believed. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Sessions, API keys, second factors.
    pub accounts: Accounts,
    /// The platform's clock.
    pub clock: Clock,
    /// Where the real client's address may come from.
    pub proxies: TrustedProxies,
}

impl Gate {
    /// A gate over `accounts` with the system clock and no trusted proxy (the TCP peer is the
    /// client).
    #[must_use]
    pub fn new(accounts: Accounts) -> Gate {
        Gate {
            accounts,
            clock: Clock::system(),
            proxies: TrustedProxies::none(),
        }
    }

    /// The same gate reading `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Gate {
        self.clock = clock;
        self
    }

    /// Now, as the accounts service counts time (Unix milliseconds in a database integer).
    #[must_use]
    pub fn now_ms(&self) -> i64 {
        self.clock.now().as_i64()
    }

    /// The same gate believing `X-Forwarded-For` from `proxies`.
    #[must_use]
    pub fn with_proxies(mut self, proxies: TrustedProxies) -> Gate {
        self.proxies = proxies;
        self
    }
}
