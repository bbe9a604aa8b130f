//! The OpenAPI description of the Binance-compatible API, built from one table of endpoints
//! (method, path, weight, security, parameters) that mirrors the router. Responses follow
//! Binance's documented shapes; errors are `{"code": -NNNN, "msg": "…"}`.

use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Required,
    ResponseBuilder, Type,
};

/// How an endpoint authenticates.
#[derive(Clone, Copy)]
enum Auth {
    None,
    Key,
    Signed,
}

/// (method, path, weight, auth, summary, parameters: name, required, description)
type Endpoint = (
    HttpMethod,
    &'static str,
    &'static str,
    Auth,
    &'static str,
    &'static [(&'static str, bool, &'static str)],
);

const SYMBOL: (&str, bool, &str) = ("symbol", true, "e.g. ETHTUSD");
const SYMBOL_OPT: (&str, bool, &str) = ("symbol", false, "e.g. ETHTUSD");
const SYMBOLS: (&str, bool, &str) = ("symbols", false, "a JSON array of symbols");
const LIMIT: (&str, bool, &str) = ("limit", false, "how many");

const ENDPOINTS: &[Endpoint] = &[
    (
        HttpMethod::Get,
        "/api/v3/ping",
        "1",
        Auth::None,
        "Test connectivity.",
        &[],
    ),
    (
        HttpMethod::Get,
        "/api/v3/time",
        "1",
        Auth::None,
        "Server time.",
        &[],
    ),
    (
        HttpMethod::Get,
        "/api/v3/exchangeInfo",
        "20",
        Auth::None,
        "Rate limits and symbols with their filters (PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL).",
        &[SYMBOL_OPT, SYMBOLS],
    ),
    (
        HttpMethod::Get,
        "/api/v3/depth",
        "5-250 by limit",
        Auth::None,
        "Order book snapshot; lastUpdateId matches the depth stream's update ids.",
        &[SYMBOL, ("limit", false, "1-5000, default 100")],
    ),
    (
        HttpMethod::Get,
        "/api/v3/trades",
        "25",
        Auth::None,
        "Recent trades.",
        &[
            SYMBOL,
            ("limit", false, "1-1000, default 500"),
            ("fromId", false, "first trade id"),
        ],
    ),
    (
        HttpMethod::Get,
        "/api/v3/historicalTrades",
        "25",
        Auth::None,
        "Older trades from an id.",
        &[SYMBOL, LIMIT, ("fromId", false, "first trade id")],
    ),
    (
        HttpMethod::Get,
        "/api/v3/aggTrades",
        "4",
        Auth::None,
        "Compressed trades (one per trade here).",
        &[
            SYMBOL,
            LIMIT,
            ("fromId", false, "first id"),
            ("startTime", false, "ms"),
            ("endTime", false, "ms"),
        ],
    ),
    (
        HttpMethod::Get,
        "/api/v3/klines",
        "2",
        Auth::None,
        "Candles in every Binance interval (1s to 1M).",
        &[
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
    ),
    (
        HttpMethod::Get,
        "/api/v3/uiKlines",
        "2",
        Auth::None,
        "Candles (same as klines).",
        &[
            SYMBOL,
            ("interval", true, "as klines"),
            ("startTime", false, "ms"),
            ("endTime", false, "ms"),
            LIMIT,
        ],
    ),
    (
        HttpMethod::Get,
        "/api/v3/avgPrice",
        "2",
        Auth::None,
        "Average price over 5 minutes.",
        &[SYMBOL],
    ),
    (
        HttpMethod::Get,
        "/api/v3/ticker/24hr",
        "2 per symbol, 80 for all",
        Auth::None,
        "24-hour rolling statistics (one-minute granularity).",
        &[SYMBOL_OPT, SYMBOLS],
    ),
    (
        HttpMethod::Get,
        "/api/v3/ticker/price",
        "2, 4 for all",
        Auth::None,
        "Last price.",
        &[SYMBOL_OPT, SYMBOLS],
    ),
    (
        HttpMethod::Get,
        "/api/v3/ticker/bookTicker",
        "2, 4 for all",
        Auth::None,
        "Best bid and ask.",
        &[SYMBOL_OPT, SYMBOLS],
    ),
    (
        HttpMethod::Post,
        "/api/v3/order",
        "1",
        Auth::Signed,
        "New order (LIMIT, LIMIT_MAKER, MARKET by quantity or quoteOrderQty, STOP_LOSS_LIMIT, TAKE_PROFIT_LIMIT); answered once durable.",
        ORDER_PARAMS,
    ),
    (
        HttpMethod::Post,
        "/api/v3/order/test",
        "1",
        Auth::Signed,
        "Validates a new order without placing it.",
        ORDER_PARAMS,
    ),
    (
        HttpMethod::Get,
        "/api/v3/order",
        "4",
        Auth::Signed,
        "One order.",
        &[
            SYMBOL,
            ("orderId", false, "either this"),
            ("origClientOrderId", false, "or this"),
        ],
    ),
    (
        HttpMethod::Delete,
        "/api/v3/order",
        "1",
        Auth::Signed,
        "Cancels an order.",
        &[
            SYMBOL,
            ("orderId", false, "either this"),
            ("origClientOrderId", false, "or this"),
            ("newClientOrderId", false, "ignored"),
            ("cancelRestrictions", false, "ignored"),
        ],
    ),
    (
        HttpMethod::Get,
        "/api/v3/openOrders",
        "6 per symbol, 80 for all",
        Auth::Signed,
        "Open orders.",
        &[SYMBOL_OPT],
    ),
    (
        HttpMethod::Delete,
        "/api/v3/openOrders",
        "1",
        Auth::Signed,
        "Cancels every open order of a symbol.",
        &[SYMBOL],
    ),
    (
        HttpMethod::Get,
        "/api/v3/allOrders",
        "20",
        Auth::Signed,
        "Orders of a symbol, open or not.",
        &[
            SYMBOL,
            ("orderId", false, "from this id"),
            ("startTime", false, "ms"),
            ("endTime", false, "ms"),
            LIMIT,
        ],
    ),
    (
        HttpMethod::Get,
        "/api/v3/account",
        "20",
        Auth::Signed,
        "Balances and commission rates.",
        &[("omitZeroBalances", false, "true to leave out zero balances")],
    ),
    (
        HttpMethod::Get,
        "/api/v3/myTrades",
        "20",
        Auth::Signed,
        "The account's trades of a symbol.",
        &[
            SYMBOL,
            ("orderId", false, "of one order"),
            ("fromId", false, "from this trade id"),
            ("startTime", false, "ms"),
            ("endTime", false, "ms"),
            LIMIT,
        ],
    ),
    (
        HttpMethod::Post,
        "/api/v3/userDataStream",
        "2",
        Auth::Key,
        "Creates a listen key for /ws/<listenKey> (60 minutes).",
        &[],
    ),
    (
        HttpMethod::Put,
        "/api/v3/userDataStream",
        "2",
        Auth::Key,
        "Keeps a listen key alive.",
        &[("listenKey", true, "the key")],
    ),
    (
        HttpMethod::Delete,
        "/api/v3/userDataStream",
        "2",
        Auth::Key,
        "Closes a listen key.",
        &[("listenKey", true, "the key")],
    ),
];

const ORDER_PARAMS: &[(&str, bool, &str)] = &[
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

const SIGNING: &[(&str, bool, &str)] = &[
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

/// The document.
#[must_use]
pub fn openapi() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for (method, path, weight, auth, summary, params) in ENDPOINTS {
        let mut operation = OperationBuilder::new()
            .tag("binance-spot")
            .summary(Some(*summary))
            .description(Some(format!("Request weight: {weight}.")))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("Binance's JSON shape")
                    .build(),
            )
            .response(
                "400",
                ResponseBuilder::new()
                    .description("{\"code\": -NNNN, \"msg\": \"…\"}, Binance's codes")
                    .build(),
            )
            .response(
                "429",
                ResponseBuilder::new()
                    .description("over a rate limit (-1003, -1015); Retry-After")
                    .build(),
            )
            .response(
                "418",
                ResponseBuilder::new()
                    .description("banned for ignoring 429s; Retry-After")
                    .build(),
            );
        let signing: &[(&str, bool, &str)] = match auth {
            Auth::Signed => SIGNING,
            _ => &[],
        };
        for (name, required, description) in params.iter().chain(signing) {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(if *required {
                        Required::True
                    } else {
                        Required::False
                    })
                    .description(Some(*description))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        match auth {
            Auth::None => {}
            Auth::Key | Auth::Signed => {
                operation =
                    operation.security(SecurityRequirement::new("api_key", Vec::<String>::new()));
            }
        }
        paths = paths.path(*path, PathItem::new(method.clone(), operation));
    }
    let components = ComponentsBuilder::new()
        .security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-MBX-APIKEY",
                "signed endpoints also take timestamp, recvWindow and signature",
            ))),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("COSS Binance-compatible spot API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Binance's spot REST API (v3) as COSS serves it: same paths, parameters, JSON \
                     shapes, error codes and weights. Parameters go in the query string or a \
                     form body. Streams: /ws/<stream>, /stream?streams=…, /ws/<listenKey>.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        let doc = openapi();
        let described: usize = doc
            .paths
            .paths
            .values()
            .map(|item| {
                [&item.get, &item.post, &item.put, &item.delete]
                    .iter()
                    .filter(|o| o.is_some())
                    .count()
            })
            .sum();
        assert_eq!(described, ENDPOINTS.len());
        assert_eq!(described, 25);
    }
}
