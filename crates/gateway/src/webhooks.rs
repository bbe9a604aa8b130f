//! Webhooks: per merchant, up to [`MAX_ENDPOINTS`] endpoints with event filters, each with
//! its own signing secret (shown once, stored sealed). Every event has a unique id and is
//! recorded with one delivery per endpoint in one transaction, so none is lost. A delivery is
//! a POST of the event's JSON with `COSS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>" under the secret>` and `COSS-Event-Id`; receivers recompute it and reject
//! timestamps older than a few minutes. Network errors, 408, 429 and 5xx are retried with
//! backoff ([`RETRY_DELAYS_S`]) for [`RETRY_WINDOW_MS`] (three days); other answers end it.
//! Per endpoint, events go in order while the oldest pending one has been tried fewer than
//! [`ORDERED_ATTEMPTS`] times; after that it retries on its own and the rest go on, so one
//! failing event never blocks an endpoint for good. Every attempt is logged (code, time,
//! the answer's first bytes), and a delivery can be sent again by hand.

use std::net::IpAddr;
use std::time::Instant;

use coss_store::{Delivery, DeliveryAttempt, DeliveryStatus, InvoiceRecord, WebhookEndpoint};
use coss_types::UserId;
use ring::hmac;
use serde::Serialize;

use crate::{Gateway, GatewayError, InvoiceView, public_id};

/// Most endpoints per merchant.
pub const MAX_ENDPOINTS: usize = 10;
/// How long a delivery is retried.
pub const RETRY_WINDOW_MS: i64 = 3 * 24 * 3600 * 1000;
/// Waits after the 1st, 2nd, … failed attempt (the last repeats).
pub const RETRY_DELAYS_S: [i64; 10] = [
    10, 30, 120, 600, 1_800, 3_600, 7_200, 14_400, 28_800, 43_200,
];
/// Attempts the oldest pending delivery of an endpoint gets before later ones overtake it.
pub const ORDERED_ATTEMPTS: i64 = 3;
/// Most bytes of an answer kept in the log.
pub const RESPONSE_LOG_BYTES: usize = 1024;
/// The event kinds.
pub const EVENT_KINDS: [&str; 11] = [
    "invoice.created",
    "invoice.processing",
    "invoice.settled",
    "invoice.expired",
    "invoice.invalid",
    "invoice.reopened",
    "invoice.paid_partial",
    "invoice.paid_over",
    "invoice.paid_late",
    "invoice.marked",
    "invoice.refunded",
];
const SECRET_PURPOSE: &[u8] = b"webhook-endpoint-secret";

/// The signature header's value for `body` sent at `t` (Unix seconds).
#[must_use]
pub fn signature(secret: &[u8], t: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(tag.as_ref()))
}

/// Checks a `COSS-Signature` header as a receiver should: the HMAC matches (in constant
/// time) and the timestamp is within `tolerance_s` of `now_s`.
#[must_use]
pub fn verify(secret: &[u8], header: &str, body: &str, now_s: i64, tolerance_s: i64) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let Some(t) = t else {
        return false;
    };
    if (now_s - t).abs() > tolerance_s {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let message = format!("{t}.{body}");
    v1.iter()
        .any(|tag| hmac::verify(&key, message.as_bytes(), tag).is_ok())
}

/// An endpoint as its merchant sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct EndpointView {
    /// Its id.
    pub id: i64,
    /// Where deliveries go.
    pub url: String,
    /// Event kinds it gets (`*`: all).
    pub events: Vec<String>,
    /// Whether it gets new events.
    pub enabled: bool,
    /// The signing secret: only in the answer that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Made (Unix ms).
    pub created_at: i64,
}

/// A delivery as its merchant sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DeliveryView {
    /// Its id.
    pub id: i64,
    /// The endpoint.
    pub endpoint_id: i64,
    /// The event's id.
    pub event_id: String,
    /// The event's kind.
    pub event: String,
    /// `pending`, `delivered`, `failed`.
    pub status: &'static str,
    /// Attempts made.
    pub attempts: i64,
    /// Next attempt (Unix ms), while pending.
    pub next_at: Option<i64>,
    /// Made (Unix ms).
    pub created_at: i64,
    /// The attempts, oldest first (one delivery's view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<Vec<AttemptView>>,
    /// The body sent (one delivery's view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
}

/// One attempt.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AttemptView {
    /// When (Unix ms).
    pub at: i64,
    /// How long it took.
    pub duration_ms: i64,
    /// The answer's status code.
    pub status_code: Option<i64>,
    /// The network error, if no answer.
    pub error: Option<String>,
    /// The answer's first bytes.
    pub response: Option<String>,
}

fn endpoint_view(e: &WebhookEndpoint, secret: Option<String>) -> EndpointView {
    EndpointView {
        id: e.id,
        url: e.url.clone(),
        events: e.events.split(',').map(str::to_owned).collect(),
        enabled: e.enabled,
        secret,
        created_at: e.created_at,
    }
}

fn delivery_view(d: &Delivery) -> DeliveryView {
    DeliveryView {
        id: d.id,
        endpoint_id: d.endpoint_id,
        event_id: d.event.public_id.clone(),
        event: d.event.kind.clone(),
        status: d.status.as_str(),
        attempts: d.attempts,
        next_at: (d.status == DeliveryStatus::Pending).then_some(d.next_at),
        created_at: d.created_at,
        log: None,
        request_body: None,
    }
}

/// Whether an address is one a webhook must not reach in production.
fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| private(IpAddr::V4(v4)))
        }
    }
}

impl Gateway {
    /// Records an event for `record`'s merchant with a delivery per interested endpoint.
    pub(crate) async fn emit(
        &self,
        record: &InvoiceRecord,
        kind: &str,
        view: &InvoiceView,
    ) -> Result<(), GatewayError> {
        let id = public_id("evt")?;
        let now = self.now();
        let payload = serde_json::json!({
            "id": id,
            "type": kind,
            "created": now,
            "data": { "invoice": view },
        })
        .to_string();
        self.inner
            .store
            .record_webhook_event(
                &id,
                record.merchant_id,
                Some(record.id),
                kind,
                &payload,
                now,
            )
            .await?;
        self.inner.deliver.notify_one();
        Ok(())
    }

    /// Adds an endpoint; the answer carries its signing secret, shown only this once.
    pub async fn add_endpoint(
        &self,
        merchant: UserId,
        url: &str,
        events: &[String],
    ) -> Result<EndpointView, GatewayError> {
        let inner = &self.inner;
        let parsed =
            url::Url::parse(url).map_err(|_| GatewayError::InvalidUrl("not a URL".into()))?;
        let private_ok = inner.config.allow_private_webhooks;
        match parsed.scheme() {
            "https" => {}
            "http" if private_ok => {}
            _ => return Err(GatewayError::InvalidUrl("use https".into())),
        }
        if url.len() > 2048 || parsed.host_str().is_none() || !parsed.username().is_empty() {
            return Err(GatewayError::InvalidUrl(
                "a host is needed, without credentials, at most 2048 bytes".into(),
            ));
        }
        if !private_ok
            && let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = parsed.host()
            && let Ok(ip) = parsed
                .host_str()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .parse::<IpAddr>()
            && private(ip)
        {
            return Err(GatewayError::InvalidUrl(
                "a private or loopback address".into(),
            ));
        }
        let events: Vec<String> = if events.is_empty() {
            vec!["*".to_owned()]
        } else {
            events.to_vec()
        };
        for e in &events {
            if e != "*" && !EVENT_KINDS.contains(&e.as_str()) {
                return Err(GatewayError::InvalidParameter(format!("event kind {e:?}")));
            }
        }
        if inner.store.webhook_endpoints(merchant).await?.len() >= MAX_ENDPOINTS {
            return Err(GatewayError::TooMany("webhook endpoints (10)"));
        }
        let secret = format!(
            "whsec_{}",
            hex::encode(
                coss_identity::random_bytes::<32>()
                    .map_err(|_| GatewayError::Crypto("no randomness"))?
            )
        );
        let sealed = inner
            .accounts
            .vault()
            .seal(secret.as_bytes(), SECRET_PURPOSE)
            .map_err(|_| GatewayError::Crypto("cannot seal the secret"))?;
        let endpoint = inner
            .store
            .add_webhook_endpoint(merchant, url, &sealed, &events.join(","), self.now())
            .await?;
        Ok(endpoint_view(&endpoint, Some(secret)))
    }

    /// The merchant's endpoints (without secrets).
    pub async fn endpoints(&self, merchant: UserId) -> Result<Vec<EndpointView>, GatewayError> {
        Ok(self
            .inner
            .store
            .webhook_endpoints(merchant)
            .await?
            .iter()
            .map(|e| endpoint_view(e, None))
            .collect())
    }

    /// Turns an endpoint off (its log stays) or on again.
    pub async fn set_endpoint_enabled(
        &self,
        merchant: UserId,
        id: i64,
        enabled: bool,
    ) -> Result<(), GatewayError> {
        if !self
            .inner
            .store
            .set_webhook_enabled(merchant, id, enabled)
            .await?
        {
            return Err(GatewayError::NotFound);
        }
        Ok(())
    }

    /// The merchant's deliveries, newest first.
    pub async fn deliveries(
        &self,
        merchant: UserId,
        endpoint: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeliveryView>, GatewayError> {
        Ok(self
            .inner
            .store
            .deliveries_of(merchant, endpoint, limit)
            .await?
            .iter()
            .map(delivery_view)
            .collect())
    }

    async fn own_delivery(&self, merchant: UserId, id: i64) -> Result<Delivery, GatewayError> {
        self.inner
            .store
            .delivery(id)
            .await?
            .filter(|d| d.event.merchant_id == merchant)
            .ok_or(GatewayError::NotFound)
    }

    /// One delivery with its attempts and the body sent.
    pub async fn delivery(&self, merchant: UserId, id: i64) -> Result<DeliveryView, GatewayError> {
        let d = self.own_delivery(merchant, id).await?;
        let attempts = self.inner.store.delivery_attempts(id).await?;
        let mut view = delivery_view(&d);
        view.request_body = Some(d.event.payload.clone());
        view.log = Some(
            attempts
                .into_iter()
                .map(|a| AttemptView {
                    at: a.at,
                    duration_ms: a.duration_ms,
                    status_code: a.status_code,
                    error: a.error,
                    response: a.response,
                })
                .collect(),
        );
        Ok(view)
    }

    /// Sends a delivery again now (whatever its status).
    pub async fn redeliver(&self, merchant: UserId, id: i64) -> Result<DeliveryView, GatewayError> {
        self.own_delivery(merchant, id).await?;
        self.inner.store.redeliver(id, self.now()).await?;
        self.inner.deliver.notify_one();
        self.delivery(merchant, id).await
    }

    /// The webhook sender: wakes on new events and every second.
    pub(crate) async fn run_webhooks(self) {
        loop {
            if let Err(error) = self.deliver_due().await {
                tracing::warn!(%error, code = error.code(), "webhook sender");
            }
            tokio::select! {
                () = self.inner.deliver.notified() => {}
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    }

    /// Sends every delivery due now (at most 16 at once); how many were attempted.
    pub async fn deliver_due(&self) -> Result<usize, GatewayError> {
        let due = self
            .inner
            .store
            .due_deliveries(self.now(), ORDERED_ATTEMPTS, 64)
            .await?;
        let count = due.len();
        let mut running = tokio::task::JoinSet::new();
        for delivery in due {
            while running.len() >= 16 {
                running.join_next().await;
            }
            let gateway = self.clone();
            running.spawn(async move {
                if let Err(error) = gateway.attempt(&delivery).await {
                    tracing::warn!(delivery = delivery.id, %error, "webhook attempt not recorded");
                }
            });
        }
        while running.join_next().await.is_some() {}
        Ok(count)
    }

    async fn attempt(&self, delivery: &Delivery) -> Result<(), GatewayError> {
        let inner = &self.inner;
        let endpoint = inner
            .store
            .webhook_endpoint(delivery.endpoint_id)
            .await?
            .ok_or(GatewayError::NotFound)?;
        let started = Instant::now();
        let at = self.now();
        let outcome = self.post(&endpoint, delivery, at).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status_code, error, response, retry) = match outcome {
            Ok((code, body)) => {
                let retry = code == 408 || code == 429 || code >= 500;
                (Some(i64::from(code)), None, Some(body), retry)
            }
            Err(why) => (None, Some(why), None, true),
        };
        let delivered = status_code.is_some_and(|c| (200..300).contains(&c));
        let attempts = delivery.attempts + 1;
        let delay = RETRY_DELAYS_S[usize::try_from(attempts - 1)
            .unwrap_or(0)
            .min(RETRY_DELAYS_S.len() - 1)];
        let next_at = at.saturating_add(delay * 1000);
        let status = if delivered {
            DeliveryStatus::Delivered
        } else if retry && next_at < delivery.event.created_at.saturating_add(RETRY_WINDOW_MS) {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Failed
        };
        inner
            .store
            .record_attempt(
                delivery.id,
                delivery.attempts,
                &DeliveryAttempt {
                    id: 0,
                    delivery_id: delivery.id,
                    at,
                    duration_ms,
                    status_code,
                    error,
                    response,
                },
                status,
                next_at,
            )
            .await?;
        Ok(())
    }

    /// One POST: the answer's status and first bytes, or why there was none.
    async fn post(
        &self,
        endpoint: &WebhookEndpoint,
        delivery: &Delivery,
        at_ms: i64,
    ) -> Result<(u16, String), String> {
        let inner = &self.inner;
        let url = url::Url::parse(&endpoint.url).map_err(|_| "invalid URL".to_owned())?;
        if !inner.config.allow_private_webhooks {
            let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
            let port = url.port_or_known_default().unwrap_or(443);
            let resolved = tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| "the host does not resolve".to_owned())?;
            for address in resolved {
                if private(address.ip()) {
                    return Err("the host resolves to a private address".into());
                }
            }
        }
        let secret = inner
            .accounts
            .vault()
            .open(&endpoint.sealed_secret, SECRET_PURPOSE)
            .map_err(|_| "the secret does not open".to_owned())?;
        let body = delivery.event.payload.clone();
        let t = at_ms / 1000;
        let response = inner
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", "COSS-Webhooks/1")
            .header("coss-event-id", delivery.event.public_id.as_str())
            .header("coss-signature", signature(&secret, t, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_connect() {
                    "connection failed".to_owned()
                } else {
                    "request failed".to_owned()
                }
            })?;
        let code = response.status().as_u16();
        let mut kept = Vec::new();
        let mut response = response;
        while kept.len() < RESPONSE_LOG_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                _ => break,
            }
        }
        kept.truncate(RESPONSE_LOG_BYTES);
        Ok((code, String::from_utf8_lossy(&kept).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receiver_accepts_the_signature_and_refuses_changes_and_old_timestamps() {
        let secret = b"whsec_test";
        let body = r#"{"id":"evt_1"}"#;
        let header = signature(secret, 1_700_000_000, body);
        assert!(verify(secret, &header, body, 1_700_000_100, 300));
        assert!(!verify(
            secret,
            &header,
            r#"{"id":"evt_2"}"#,
            1_700_000_100,
            300
        ));
        assert!(!verify(b"other", &header, body, 1_700_000_100, 300));
        assert!(!verify(secret, &header, body, 1_700_000_400, 300));
        assert!(!verify(secret, "v1=00", body, 1_700_000_000, 300));
    }

    /// The README's receiver example, run with Python against a real signature.
    #[test]
    fn the_readme_s_python_receiver_accepts_a_real_delivery_and_refuses_a_forged_one() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("<!-- webhook-verify-example -->")
            .and_then(|at| {
                readme[at..]
                    .find("```python")
                    .map(|p| at + p + "```python".len())
            })
            .unwrap_or_default();
        let end = start + readme[start..].find("```").unwrap_or_default();
        let example = &readme[start..end];
        assert!(
            example.contains("def verify"),
            "the README lost its example"
        );
        let secret = "whsec_readme";
        let body = r#"{"id":"evt_1","type":"invoice.settled"}"#;
        let t = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
        .unwrap_or_default();
        let header = signature(secret.as_bytes(), t, body);
        let script = format!(
            "{example}\nimport sys\nbody = {body:?}.encode()\n\
             print(verify({secret:?}, {header:?}, body), \
             verify({secret:?}, {header:?}, body + b' '), \
             verify('whsec_other', {header:?}, body), \
             verify({secret:?}, {old:?}, body))\n",
            old = signature(secret.as_bytes(), t - 3600, body),
        );
        let output = std::process::Command::new("python3")
            .args(["-c", &script])
            .output();
        let Ok(output) = output else {
            // Python 3 is on every machine this runs on (the e2e tests need it too).
            panic!("python3 is missing");
        };
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "True False False False",
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "100.64.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(
                private(ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
                "{ip}"
            );
        }
        for ip in ["8.8.8.8", "2001:4860::8888"] {
            assert!(
                !private(ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))),
                "{ip}"
            );
        }
    }
}
