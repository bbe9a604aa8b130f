//! Every `/api/v3` endpoint, described once: its route, the authentication it declares, its
//! request weight (the function the rate limiter uses and the text the OpenAPI document shows),
//! its description and parameters, and its handler. The router and the OpenAPI document are
//! both made from this table, so neither can name an endpoint the other lacks.

use std::future::Future;
use std::pin::Pin;

use axum::http::Method;
use coss_identity::Permission;

use super::market_data::{depth_weight, ticker_weight};
use super::{Answer, Call, Security, history, market_data, orders, user_stream};
use crate::params::Params;

/// A query or form parameter: name, whether it is required, what it is.
pub(crate) type Param = (&'static str, bool, &'static str);

/// An endpoint's running request.
type Running = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// One endpoint.
pub(crate) struct Endpoint {
    /// The method.
    pub(crate) method: Method,
    /// The path.
    pub(crate) path: &'static str,
    /// How the caller authenticates.
    pub(crate) security: Security,
    /// The request's weight against the per-address limit.
    pub(crate) weight: fn(&Params) -> u32,
    /// The weight, for people.
    pub(crate) weight_doc: &'static str,
    /// What it does.
    pub(crate) summary: &'static str,
    /// Its parameters (the signing ones are added for signed endpoints).
    pub(crate) params: &'static [Param],
    /// What runs it.
    pub(crate) handler: fn(Call) -> Running,
}

const SYMBOL: Param = ("symbol", true, "e.g. ETHTUSD");
const SYMBOL_OPT: Param = ("symbol", false, "e.g. ETHTUSD");
const SYMBOLS: Param = ("symbols", false, "a JSON array of symbols");
const LIMIT: Param = ("limit", false, "how many");

pub(crate) static ENDPOINTS: [Endpoint; 25] = [
    Endpoint {
        method: Method::GET,
        path: "/api/v3/ping",
        security: Security::None,
        weight: |_| 1,
        weight_doc: "1",
        summary: "Test connectivity.",
        params: &[],
        handler: |c| Box::pin(market_data::ping(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/time",
        security: Security::None,
        weight: |_| 1,
        weight_doc: "1",
        summary: "Server time.",
        params: &[],
        handler: |c| Box::pin(market_data::time(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/exchangeInfo",
        security: Security::None,
        weight: |_| 20,
        weight_doc: "20",
        summary: "Rate limits and symbols with their filters (PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL).",
        params: &[SYMBOL_OPT, SYMBOLS],
        handler: |c| Box::pin(market_data::exchange_info(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/depth",
        security: Security::None,
        weight: depth_weight,
        weight_doc: "5-250 by limit",
        summary: "Order book snapshot; lastUpdateId matches the depth stream's update ids.",
        params: &[SYMBOL, ("limit", false, "1-5000, default 100")],
        handler: |c| Box::pin(market_data::depth(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/trades",
        security: Security::None,
        weight: |_| 25,
        weight_doc: "25",
        summary: "Recent trades.",
        params: &[
            SYMBOL,
            ("limit", false, "1-1000, default 500"),
            ("fromId", false, "first trade id"),
        ],
        handler: |c| Box::pin(market_data::trades(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/historicalTrades",
        security: Security::None,
        weight: |_| 25,
        weight_doc: "25",
        summary: "Older trades from an id.",
        params: &[SYMBOL, LIMIT, ("fromId", false, "first trade id")],
        handler: |c| Box::pin(market_data::trades(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/aggTrades",
        security: Security::None,
        weight: |_| 4,
        weight_doc: "4",
        summary: "Compressed trades (one per trade here).",
        params: &[
            SYMBOL,
            LIMIT,
            ("fromId", false, "first id"),
            ("startTime", false, "ms"),
            ("endTime", false, "ms"),
        ],
        handler: |c| Box::pin(market_data::agg_trades(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/klines",
        security: Security::None,
        weight: |_| 2,
        weight_doc: "2",
        summary: "Candles in every Binance interval (1s to 1M).",
        params: &[
            SYMBOL,
            (
                "interval",
                true,
                "1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M",
            ),
            ("startTime", false, "ms"),
            ("endTime", false, "ms"),
            ("limit", false, "1-1000, default 500"),
            ("timeZone", false, "UTC only"),
        ],
        handler: |c| Box::pin(market_data::klines(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/uiKlines",
        security: Security::None,
        weight: |_| 2,
        weight_doc: "2",
        summary: "Candles (same as klines).",
        params: &[
            SYMBOL,
            ("interval", true, "as klines"),
            ("startTime", false, "ms"),
            ("endTime", false, "ms"),
            LIMIT,
        ],
        handler: |c| Box::pin(market_data::klines(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/avgPrice",
        security: Security::None,
        weight: |_| 2,
        weight_doc: "2",
        summary: "Average price over 5 minutes.",
        params: &[SYMBOL],
        handler: |c| Box::pin(market_data::avg_price(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/ticker/24hr",
        security: Security::None,
        weight: ticker_weight,
        weight_doc: "2 per symbol, 80 for all",
        summary: "24-hour rolling statistics (one-minute granularity).",
        params: &[SYMBOL_OPT, SYMBOLS],
        handler: |c| Box::pin(market_data::ticker_24hr(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/ticker/price",
        security: Security::None,
        weight: |p| if p.has("symbol") { 2 } else { 4 },
        weight_doc: "2, 4 for all",
        summary: "Last price.",
        params: &[SYMBOL_OPT, SYMBOLS],
        handler: |c| Box::pin(market_data::ticker_price(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/ticker/bookTicker",
        security: Security::None,
        weight: |p| if p.has("symbol") { 2 } else { 4 },
        weight_doc: "2, 4 for all",
        summary: "Best bid and ask.",
        params: &[SYMBOL_OPT, SYMBOLS],
        handler: |c| Box::pin(market_data::book_ticker(c)),
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v3/order",
        security: Security::Signed(Permission::Trade),
        weight: |_| 1,
        weight_doc: "1",
        summary: "New order (LIMIT, LIMIT_MAKER, MARKET by quantity or quoteOrderQty, STOP_LOSS_LIMIT, TAKE_PROFIT_LIMIT); answered once durable.",
        params: ORDER_PARAMS,
        handler: |c| Box::pin(orders::new_order(c)),
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v3/order/test",
        security: Security::Signed(Permission::Trade),
        weight: |_| 1,
        weight_doc: "1",
        summary: "Validates a new order without placing it.",
        params: ORDER_PARAMS,
        handler: |c| Box::pin(orders::test_order(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/order",
        security: Security::Signed(Permission::Read),
        weight: |_| 4,
        weight_doc: "4",
        summary: "One order.",
        params: &[
            SYMBOL,
            ("orderId", false, "either this"),
            ("origClientOrderId", false, "or this"),
        ],
        handler: |c| Box::pin(orders::query_order(c)),
    },
    Endpoint {
        method: Method::DELETE,
        path: "/api/v3/order",
        security: Security::Signed(Permission::Trade),
        weight: |_| 1,
        weight_doc: "1",
        summary: "Cancels an order.",
        params: &[
            SYMBOL,
            ("orderId", false, "either this"),
            ("origClientOrderId", false, "or this"),
            ("newClientOrderId", false, "ignored"),
            ("cancelRestrictions", false, "ignored"),
        ],
        handler: |c| Box::pin(orders::cancel_order(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/openOrders",
        security: Security::Signed(Permission::Read),
        weight: |p| if p.has("symbol") { 6 } else { 80 },
        weight_doc: "6 per symbol, 80 for all",
        summary: "Open orders.",
        params: &[SYMBOL_OPT],
        handler: |c| Box::pin(orders::open_orders(c)),
    },
    Endpoint {
        method: Method::DELETE,
        path: "/api/v3/openOrders",
        security: Security::Signed(Permission::Trade),
        weight: |_| 1,
        weight_doc: "1",
        summary: "Cancels every open order of a symbol.",
        params: &[SYMBOL],
        handler: |c| Box::pin(orders::cancel_open_orders(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/allOrders",
        security: Security::Signed(Permission::Read),
        weight: |_| 20,
        weight_doc: "20",
        summary: "Orders of a symbol, open or not.",
        params: &[
            SYMBOL,
            ("orderId", false, "from this id"),
            ("startTime", false, "ms"),
            ("endTime", false, "ms"),
            LIMIT,
        ],
        handler: |c| Box::pin(history::all_orders(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/account",
        security: Security::Signed(Permission::Read),
        weight: |_| 20,
        weight_doc: "20",
        summary: "Balances and commission rates.",
        params: &[("omitZeroBalances", false, "true to leave out zero balances")],
        handler: |c| Box::pin(history::account(c)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v3/myTrades",
        security: Security::Signed(Permission::Read),
        weight: |_| 20,
        weight_doc: "20",
        summary: "The account's trades of a symbol.",
        params: &[
            SYMBOL,
            ("orderId", false, "of one order"),
            ("fromId", false, "from this trade id"),
            ("startTime", false, "ms"),
            ("endTime", false, "ms"),
            LIMIT,
        ],
        handler: |c| Box::pin(history::my_trades(c)),
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v3/userDataStream",
        security: Security::ApiKey,
        weight: |_| 2,
        weight_doc: "2",
        summary: "Creates a listen key for /ws/<listenKey> (60 minutes).",
        params: &[],
        handler: |c| Box::pin(user_stream::new_listen_key(c)),
    },
    Endpoint {
        method: Method::PUT,
        path: "/api/v3/userDataStream",
        security: Security::ApiKey,
        weight: |_| 2,
        weight_doc: "2",
        summary: "Keeps a listen key alive.",
        params: &[("listenKey", true, "the key")],
        handler: |c| Box::pin(user_stream::keep_listen_key(c)),
    },
    Endpoint {
        method: Method::DELETE,
        path: "/api/v3/userDataStream",
        security: Security::ApiKey,
        weight: |_| 2,
        weight_doc: "2",
        summary: "Closes a listen key.",
        params: &[("listenKey", true, "the key")],
        handler: |c| Box::pin(user_stream::close_listen_key(c)),
    },
];

const ORDER_PARAMS: &[Param] = &[
    SYMBOL,
    ("side", true, "BUY or SELL"),
    (
        "type",
        true,
        "LIMIT, LIMIT_MAKER, MARKET, STOP_LOSS_LIMIT, TAKE_PROFIT_LIMIT",
    ),
    ("timeInForce", false, "GTC, IOC, FOK (limit types)"),
    (
        "quantity",
        false,
        "base quantity, a multiple of LOT_SIZE stepSize",
    ),
    (
        "quoteOrderQty",
        false,
        "MARKET only: quote amount instead of quantity",
    ),
    ("price", false, "a multiple of PRICE_FILTER tickSize"),
    ("stopPrice", false, "STOP_LOSS_LIMIT and TAKE_PROFIT_LIMIT"),
    (
        "newClientOrderId",
        false,
        "1-36 of A-Z a-z 0-9 . : / _ -; generated if absent",
    ),
    (
        "selfTradePreventionMode",
        false,
        "NONE, EXPIRE_TAKER, EXPIRE_MAKER (default), EXPIRE_BOTH",
    ),
    ("newOrderRespType", false, "ACK, RESULT, FULL (default)"),
];

/// The parameters every signed request adds.
pub(crate) const SIGNING: &[Param] = &[
    (
        "timestamp",
        true,
        "Unix ms; at most 1 s ahead of the server",
    ),
    ("recvWindow", false, "ms, default 5000, at most 60000"),
    (
        "signature",
        true,
        "hex HMAC-SHA256 of the query string followed by the body",
    ),
];
