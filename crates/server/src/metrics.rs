//! Prometheus metrics of the HTTP edge: requests by method, route (the router's pattern, never
//! the raw path, so ids and keys never become labels) and status, with a latency histogram.
//! The server renders them at `/metrics` in the text exposition format, with its own gauges.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum_seconds: f64,
    buckets: [u64; BUCKETS.len()],
}

type Key = (String, String, u16);

/// Request counters, shared by the middleware and the `/metrics` handler.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    series: Arc<Mutex<BTreeMap<Key, Series>>>,
}

impl Metrics {
    /// Empty counters.
    #[must_use]
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = series
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        entry.count += 1;
        entry.sum_seconds += seconds;
        for (bucket, bound) in entry.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
    }

    /// The counters in Prometheus's text format.
    #[must_use]
    pub fn render(&self) -> String {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut out = String::new();
        out.push_str(
            "# HELP coss_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE coss_http_requests_total counter\n");
        for ((method, route, status), s) in &series {
            let _ = writeln!(
                out,
                "coss_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str(
            "# HELP coss_http_request_duration_seconds Time to answer, by method and route.\n",
        );
        out.push_str("# TYPE coss_http_request_duration_seconds histogram\n");
        let mut by_route: BTreeMap<(&str, &str), Series> = BTreeMap::new();
        for ((method, route, _), s) in &series {
            let total = by_route.entry((method, route)).or_default();
            total.count += s.count;
            total.sum_seconds += s.sum_seconds;
            for (t, b) in total.buckets.iter_mut().zip(s.buckets) {
                *t += b;
            }
        }
        for ((method, route), s) in by_route {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            for (bound, count) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "coss_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "coss_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "coss_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_seconds
            );
            let _ = writeln!(
                out,
                "coss_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}

/// The middleware: times each request and counts it under its route pattern.
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics.record(
        &method,
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let metrics = Metrics::new();
        metrics.record("GET", "/api/v3/depth", 200, 0.0007);
        metrics.record("GET", "/api/v3/depth", 400, 0.02);
        let text = metrics.render();
        assert!(text.contains(
            "coss_http_requests_total{method=\"GET\",route=\"/api/v3/depth\",status=\"200\"} 1"
        ));
        assert!(text.contains(
            "coss_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v3/depth\",le=\"0.001\"} 1"
        ));
        assert!(text.contains(
            "coss_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v3/depth\"} 2"
        ));
    }
}
