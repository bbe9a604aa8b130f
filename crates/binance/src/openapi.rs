//! The OpenAPI description of the Binance-compatible API, made from the same table of
//! endpoints ([`crate::rest::ENDPOINTS`]: method, path, weight, security, parameters) that
//! mounts the routes. Responses follow Binance's documented shapes; errors are
//! `{"code": -NNNN, "msg": "…"}`.

use axum::http::Method;

use crate::rest::{ENDPOINTS, Endpoint, SIGNING, Security};

use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Required,
    ResponseBuilder, Type,
};

/// Where a stream endpoint takes its stream names: parameter, place, description.
type StreamNames = Option<(&'static str, ParameterIn, &'static str)>;

/// The stream endpoints: path, summary, and where the stream names go.
const STREAMS: &[(&str, &str, StreamNames)] = &[
    (
        "/ws",
        "A raw stream connection with no stream yet (subscribe by message).",
        None,
    ),
    (
        "/ws/{streams}",
        "Raw streams: each message is a stream's event.",
        Some((
            "streams",
            ParameterIn::Path,
            "stream names or a listen key, separated by /",
        )),
    ),
    (
        "/stream",
        "Combined streams: each message is {\"stream\", \"data\"}.",
        Some((
            "streams",
            ParameterIn::Query,
            "stream names or a listen key, separated by /",
        )),
    ),
];

/// The document.
#[must_use]
pub fn openapi() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for endpoint in &ENDPOINTS {
        paths = paths.path(
            endpoint.path,
            PathItem::new(
                http_method(&endpoint.method),
                operation(endpoint, endpoint.security),
            ),
        );
        if let Some(path) = crate::rest::session_path(endpoint) {
            paths = paths.path(
                path,
                PathItem::new(
                    http_method(&endpoint.method),
                    operation(endpoint, Security::Session),
                ),
            );
        }
    }
    for (path, summary, streams) in STREAMS {
        let mut operation = OperationBuilder::new()
            .tag("binance-streams")
            .summary(Some(*summary))
            .description(Some(
                "A WebSocket (upgrade with GET): market streams <symbol>@depth[5|10|20][@100ms], \
                 @trade, @kline_<interval>, @ticker, @bookTicker, and a listen key for its \
                 account's executionReport, outboundAccountPosition and balanceUpdate; \
                 SUBSCRIBE, UNSUBSCRIBE and LIST_SUBSCRIPTIONS messages.",
            ))
            .response(
                "101",
                ResponseBuilder::new()
                    .description("switching to the WebSocket protocol")
                    .build(),
            )
            .response(
                "400",
                ResponseBuilder::new()
                    .description("not a WebSocket upgrade, or too many streams (-1100)")
                    .build(),
            )
            .response(
                "503",
                ResponseBuilder::new()
                    .description("the server is shutting down")
                    .build(),
            );
        if let Some((name, place, description)) = streams {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(place.clone())
                    .required(Required::False)
                    .description(Some(*description))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        paths = paths.path(*path, PathItem::new(HttpMethod::Get, operation));
    }
    let components = ComponentsBuilder::new()
        .security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-MBX-APIKEY",
                "signed endpoints also take timestamp, recvWindow and signature",
            ))),
        )
        .security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                coss_http::SESSION_COOKIE,
                "the browser session of /api/v1/auth/login (client=browser); changes also send \
                 X-CSRF-Token",
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

fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::DELETE => HttpMethod::Delete,
        Method::PATCH => HttpMethod::Patch,
        _ => HttpMethod::Get,
    }
}

/// One endpoint's operation, as authenticated by `security` (its own, or the session mirror's).
fn operation(endpoint: &Endpoint, security: Security) -> utoipa::openapi::path::Operation {
    let mut operation = OperationBuilder::new()
        .tag(if security == Security::Session {
            "web-session"
        } else {
            "binance-spot"
        })
        .summary(Some(endpoint.summary))
        .description(Some(match security {
            Security::Session => format!(
                "The browser's session mirror of {} {}: the same parameters and answers, \
                 authenticated by the session cookie (and X-CSRF-Token on changes) instead of \
                 a signature. Request weight: {}.",
                endpoint.method, endpoint.path, endpoint.weight_doc
            ),
            _ => format!("Request weight: {}.", endpoint.weight_doc),
        }))
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
    let signing = match security {
        Security::Signed(_) => SIGNING,
        Security::None | Security::ApiKey | Security::Session => &[],
    };
    for (name, required, description) in endpoint.params.iter().chain(signing) {
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
    match security {
        Security::None => {}
        Security::ApiKey | Security::Signed(_) => {
            operation =
                operation.security(SecurityRequirement::new("api_key", Vec::<String>::new()));
        }
        Security::Session => {
            operation = operation
                .security(SecurityRequirement::new("cookie", Vec::<String>::new()))
                .response(
                    "401",
                    ResponseBuilder::new()
                        .description("no valid session (-2015)")
                        .build(),
                )
                .response(
                    "403",
                    ResponseBuilder::new()
                        .description("a change without the session's CSRF token (-1022)")
                        .build(),
                );
        }
    }
    operation.build()
}
