//! The route builder: every route says how its caller is authenticated.

use axum::Router;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::routing::{MethodFilter, MethodRouter};

use crate::{ApiError, Auth};

/// Implemented for a handler's extractor list when its first extractor is an [`Auth`]: the
/// bound that makes [`Routes`] refuse a handler that does not declare its authentication.
pub trait Declared {
    /// The handler's authentication.
    type Auth: Auth;
}

macro_rules! declared {
    ($($rest:ident),*) => {
        impl<M, A: Auth, $($rest,)*> Declared for (M, A, $($rest,)*) {
            type Auth = A;
        }
    };
}

declared!();
declared!(T2);
declared!(T2, T3);
declared!(T2, T3, T4);
declared!(T2, T3, T4, T5);
declared!(T2, T3, T4, T5, T6);
declared!(T2, T3, T4, T5, T6, T7);
declared!(T2, T3, T4, T5, T6, T7, T8);
declared!(T2, T3, T4, T5, T6, T7, T8, T9);
declared!(T2, T3, T4, T5, T6, T7, T8, T9, T10);

/// One mounted route: what [`Routes`] records, so a test can check that every route is
/// described in the OpenAPI documents and declares its authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    /// The method.
    pub method: Method,
    /// The path, in axum's syntax (`/api/v1/wallet/withdrawals/{id}`).
    pub path: String,
    /// Its authentication ([`Auth::SCHEME`]).
    pub auth: &'static str,
}

/// A router whose every route names its authentication. The only way COSS mounts a route
/// (`axum::routing::{get, post, …}` and `Router::route` are refused by clippy elsewhere).
#[derive(Debug)]
pub struct Routes<S = ()> {
    router: Router<S>,
    mounted: Vec<Mounted>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    /// No routes yet.
    #[must_use]
    pub fn new() -> Self {
        Routes {
            router: Router::new(),
            mounted: Vec::new(),
        }
    }

    /// `GET` (and `HEAD`) at `path`.
    #[must_use]
    pub fn get<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: Declared + 'static,
    {
        self.on(MethodFilter::GET, Method::GET, path, handler)
    }

    /// `POST` at `path`.
    #[must_use]
    pub fn post<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: Declared + 'static,
    {
        self.on(MethodFilter::POST, Method::POST, path, handler)
    }

    /// `PUT` at `path`.
    #[must_use]
    pub fn put<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: Declared + 'static,
    {
        self.on(MethodFilter::PUT, Method::PUT, path, handler)
    }

    /// `PATCH` at `path`.
    #[must_use]
    pub fn patch<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: Declared + 'static,
    {
        self.on(MethodFilter::PATCH, Method::PATCH, path, handler)
    }

    /// `DELETE` at `path`.
    #[must_use]
    pub fn delete<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: Declared + 'static,
    {
        self.on(MethodFilter::DELETE, Method::DELETE, path, handler)
    }

    #[allow(clippy::disallowed_methods)]
    fn on<H, T>(self, filter: MethodFilter, method: Method, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: Declared + 'static,
    {
        let mut route = axum::routing::on(filter, handler);
        if <T::Auth as Auth>::READS_BODY {
            route = route.layer(axum::middleware::from_fn(crate::body::buffer_body));
        }
        self.declared(method, path, <T::Auth as Auth>::SCHEME, route)
    }

    /// A route built elsewhere whose authentication `auth` is declared by the caller: for
    /// table-driven APIs where each row of the table names its authentication (the
    /// Binance-compatible API).
    #[must_use]
    #[allow(clippy::disallowed_methods)]
    pub fn declared(
        mut self,
        method: Method,
        path: &str,
        auth: &'static str,
        route: MethodRouter<S>,
    ) -> Self {
        self.mounted.push(Mounted {
            method,
            path: path.to_owned(),
            auth,
        });
        self.router = self.router.route(path, route);
        self
    }

    /// Both sets of routes.
    #[must_use]
    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.mounted.extend(other.mounted);
        self
    }

    /// Applies `edit` (a layer, say) to the router, keeping the record.
    #[must_use]
    pub fn map(mut self, edit: impl FnOnce(Router<S>) -> Router<S>) -> Self {
        self.router = edit(self.router);
        self
    }

    /// Gives the routes their state.
    #[must_use]
    pub fn with_state<S2: Clone + Send + Sync + 'static>(self, state: S) -> Routes<S2> {
        Routes {
            router: self.router.with_state(state),
            mounted: self.mounted,
        }
    }

    /// Every route mounted so far.
    #[must_use]
    pub fn mounted(&self) -> &[Mounted] {
        &self.mounted
    }

    /// The router and the record of its routes.
    pub fn into_parts(self) -> (Router<S>, Vec<Mounted>) {
        (self.router, self.mounted)
    }

    /// The router.
    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

/// Gives a fully assembled router JSON answers for unknown paths (404 `not_found`) and
/// wrong methods (405 `method_not_allowed`). Apply once, to the top router, after every merge.
pub fn with_json_fallbacks(router: Router) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> ApiError {
    not_found_error()
}

/// The answer to a path no route takes (404 `not_found`), for a fallback of its own (the web
/// app's).
#[must_use]
pub fn not_found_error() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not accept this method",
    )
}
