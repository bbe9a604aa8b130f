//! What every route can answer before its handler runs, added to an OpenAPI document so that
//! it lists every status the server really sends: the listener's per-address connection cap
//! and the rate limits (429), a body that is malformed, too large, of another media type or
//! stops arriving (400, 413, 415, 408), parameters that do not parse (400), and a missing or
//! refused credential on an authenticated route (401, 403).

use utoipa::openapi::path::Operation;
use utoipa::openapi::{OpenApi, RefOr, ResponseBuilder};

/// Adds the edge's answers to every operation of `doc` that does not describe them itself.
pub fn document_edge_answers(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
        ];
        for operation in operations.into_iter().flatten() {
            add(operation);
        }
    }
}

fn add(operation: &mut Operation) {
    let mut answers = vec![(
        "429",
        "too many connections from this address, or over a rate limit (Retry-After)",
    )];
    let has_body = operation.request_body.is_some();
    let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if has_body || has_parameters {
        answers.push(("400", "a malformed request (the body's `code` says what)"));
    }
    if has_body {
        answers.extend([
            ("408", "the request body stopped arriving"),
            ("413", "the request body is too large"),
            (
                "415",
                "the request body is not of the documented media type",
            ),
        ]);
    }
    let authenticated = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    if authenticated {
        answers.extend([
            (
                "401",
                "not authenticated: no, or an invalid, session, token or API key",
            ),
            (
                "403",
                "not allowed: a missing CSRF token, permission or second factor",
            ),
        ]);
    }
    for (status, description) in answers {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(description).build()));
    }
}
