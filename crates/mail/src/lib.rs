//! The email side of the transactional outbox: a worker takes due messages from the store,
//! renders their template (plain text and HTML), delivers them to a maildir (the embedded
//! default, in the data dir) or over SMTP, and records each delivery; a failure is retried
//! with exponential backoff. Every message carries a Message-ID derived from its outbox id,
//! and a maildir file is named by it, so a redelivery after a crash between delivering and
//! recording overwrites the same file (maildir) or can be recognised as a duplicate (SMTP).

use std::path::{Path, PathBuf};

use coss_store::{QueuedMail, Store, StoreError};
use lettre::message::{Mailbox, MultiPart, header::MessageId};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

/// The first retry waits 30 s, each next one twice as long, up to an hour.
pub const FIRST_RETRY_MS: i64 = 30_000;
/// The longest wait between attempts.
pub const MAX_RETRY_MS: i64 = 3_600_000;

/// Why a message could not be rendered or delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The template is unknown or its data is incomplete.
    #[error("template {0}: {1}")]
    Template(String, String),
    /// The message could not be built (e.g. a bad address).
    #[error("message: {0}")]
    Build(String),
    /// The SMTP server refused or could not be reached.
    #[error("smtp: {0}")]
    Smtp(String),
    /// Writing to the maildir failed.
    #[error("maildir: {0}")]
    Maildir(#[from] std::io::Error),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// Every template the platform sends.
pub const TEMPLATES: [&str; 10] = [
    "verify_email",
    "account_exists",
    "password_reset",
    "password_changed",
    "new_device_login",
    "two_factor_changed",
    "withdrawal_confirmation",
    "deposit_credited",
    "weekly_revenue_share",
    "refund_link",
];

/// Renders `template` with its JSON `payload`; `base_url` is where links point (the web app).
pub fn render(template: &str, payload: &str, base_url: &str) -> Result<Rendered, MailError> {
    let data: Value = serde_json::from_str(payload).map_err(|e| {
        MailError::Template(template.to_owned(), format!("payload is not JSON: {e}"))
    })?;
    let field = |name: &str| -> Result<String, MailError> {
        match data.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(MailError::Template(
                template.to_owned(),
                format!("missing {name}"),
            )),
        }
    };
    let (subject, lines, link): (String, Vec<String>, Option<(String, String)>) = match template {
        "verify_email" => (
            "Confirm your COSS email address".into(),
            vec!["Welcome to COSS. Confirm this address to finish creating your account; the link works for 24 hours.".into()],
            Some(("Confirm my address".into(), format!("{base_url}/verify-email?token={}", field("token")?))),
        ),
        "account_exists" => (
            "Someone tried to sign up with your email address".into(),
            vec![
                format!("At {} someone tried to create a COSS account with this address, which already has one. Nothing was changed.", field("time")?),
                "If it was you, sign in, or reset your password if you forgot it. If it was not, you need do nothing.".into(),
            ],
            Some(("Reset my password".into(), format!("{base_url}/reset-password"))),
        ),
        "password_reset" => (
            "Reset your COSS password".into(),
            vec![
                "Someone asked to reset the password of your COSS account. The link works for one hour and signs out every device.".into(),
                "If it was not you, ignore this email: your password stays as it is.".into(),
            ],
            Some(("Choose a new password".into(), format!("{base_url}/reset-password?token={}", field("token")?))),
        ),
        "new_device_login" => (
            "New sign-in to your COSS account".into(),
            vec![format!("Your account was signed in from {} at {}. If it was not you, reset your password now.", field("device")?, field("time")?)],
            None,
        ),
        "password_changed" => (
            "Your COSS password was changed".into(),
            vec![
                format!("The password of your COSS account was changed at {}; every other device was signed out.", field("time")?),
                "If it was not you, reset your password now and contact support.".into(),
            ],
            Some(("Reset my password".into(), format!("{base_url}/reset-password"))),
        ),
        "two_factor_changed" => (
            "Two-factor authentication changed".into(),
            vec![format!("Two-factor authentication on your COSS account was {}. If it was not you, contact support now.", field("change")?)],
            None,
        ),
        "withdrawal_confirmation" => (
            "Confirm your withdrawal".into(),
            vec![format!("You asked to withdraw {} {} to {}.", field("amount")?, field("asset")?, field("address")?)],
            Some(("Confirm the withdrawal".into(), format!("{base_url}/withdrawals/confirm?token={}", field("token")?))),
        ),
        "deposit_credited" => (
            "Deposit credited".into(),
            vec![format!("{} {} arrived in your COSS account (transaction {}).", field("amount")?, field("asset")?, field("tx")?)],
            None,
        ),
        "weekly_revenue_share" => (
            "Your weekly COSS revenue share".into(),
            vec![format!("For week {} you received {} from the platform's fee revenue. Details and proof: {base_url}/dao/weeks/{}.", field("week")?, field("summary")?, field("week")?)],
            None,
        ),
        "refund_link" => (
            "Your refund is ready".into(),
            vec![
                format!("{} is refunding you {} {}. Open the link and give the address the refund should go to; it works once.", field("merchant")?, field("amount")?, field("asset")?),
                "If you did not expect a refund, you need do nothing.".into(),
            ],
            Some(("Get my refund".into(), format!("{base_url}/refund/{}", field("token")?))),
        ),
        other => return Err(MailError::Template(other.to_owned(), "unknown template".into())),
    };
    let mut text = lines.join("\n\n");
    let mut html = lines
        .iter()
        .map(|l| format!("<p>{}</p>", escape(l)))
        .collect::<String>();
    if let Some((label, url)) = link {
        text.push_str(&format!("\n\n{label}: {url}\n"));
        html.push_str(&format!(
            "<p><a href=\"{}\">{}</a></p>",
            escape(&url),
            escape(&label)
        ));
    }
    text.push_str("\n-- \nCOSS, the Crypto One Stop Solution\n");
    let html = format!(
        "<!doctype html><html><body>{html}<p>COSS, the Crypto One Stop Solution</p></body></html>"
    );
    Ok(Rendered {
        subject,
        text,
        html,
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Where messages go.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Files in a maildir (`new/`), named by outbox id: the embedded default.
    Maildir(PathBuf),
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl Delivery {
    /// SMTP by URL: `smtp://host:port` (plain, for a relay on loopback), `smtp+starttls://…`
    /// or `smtps://…`, optionally with `user:password@`.
    pub fn smtp(url: &str) -> Result<Self, MailError> {
        let parsed = url
            .replace("smtp+starttls://", "smtp://")
            .replace("smtps://", "smtp://");
        let without_scheme = parsed
            .strip_prefix("smtp://")
            .ok_or_else(|| MailError::Smtp("use smtp://, smtp+starttls:// or smtps://".into()))?;
        let (auth, hostport) = match without_scheme.rsplit_once('@') {
            Some((auth, hostport)) => (Some(auth), hostport),
            None => (None, without_scheme),
        };
        let hostport = hostport.trim_end_matches('/');
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| MailError::Smtp("bad port".into()))?,
            ),
            None => (hostport, 25),
        };
        let builder = if url.starts_with("smtps://") {
            AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| MailError::Smtp(e.to_string()))?
        } else if url.starts_with("smtp+starttls://") {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| MailError::Smtp(e.to_string()))?
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        };
        let mut builder = builder.port(port);
        if let Some((user, password)) = auth.and_then(|a| a.split_once(':')) {
            builder = builder.credentials(Credentials::new(user.to_owned(), password.to_owned()));
        }
        Ok(Self::Smtp(builder.build()))
    }
}

/// Renders and delivers due outbox messages.
#[derive(Debug, Clone)]
pub struct Mailer {
    store: Store,
    delivery: Delivery,
    from: Mailbox,
    base_url: String,
    domain: String,
}

impl Mailer {
    /// A mailer sending as `from` (e.g. `COSS <no-reply@coss.example>`), with links to
    /// `base_url`.
    pub fn new(
        store: Store,
        delivery: Delivery,
        from: &str,
        base_url: &str,
    ) -> Result<Self, MailError> {
        let from: Mailbox = from
            .parse()
            .map_err(|e: lettre::address::AddressError| MailError::Build(e.to_string()))?;
        let domain = from.email.domain().to_owned();
        Ok(Self {
            store,
            delivery,
            from,
            base_url: base_url.trim_end_matches('/').to_owned(),
            domain,
        })
    }

    /// Delivers every message due at `now` (up to `batch`), recording each delivery or
    /// failure. Returns how many were delivered.
    pub async fn run_once(&self, now: i64, batch: i64) -> Result<usize, MailError> {
        let due = self.store.due_mail(now, batch).await?;
        let mut delivered = 0;
        for queued in due {
            match self.deliver(&queued).await {
                Ok(()) => {
                    self.store.mark_sent(queued.id, now).await?;
                    delivered += 1;
                }
                Err(error) => {
                    let wait = retry_after(queued.attempts);
                    tracing::warn!(id = queued.id, template = %queued.mail.template, attempts = queued.attempts + 1, %error, "email not delivered; will retry");
                    self.store
                        .mark_failed(queued.id, &error.to_string(), now + wait)
                        .await?;
                }
            }
        }
        Ok(delivered)
    }

    /// The Message-ID of an outbox message: the same on every attempt.
    pub fn message_id(&self, outbox_id: i64) -> String {
        format!("<outbox-{outbox_id}@{}>", self.domain)
    }

    async fn deliver(&self, queued: &QueuedMail) -> Result<(), MailError> {
        let rendered = render(&queued.mail.template, &queued.mail.payload, &self.base_url)?;
        let to: Mailbox = queued
            .mail
            .recipient
            .parse()
            .map_err(|e: lettre::address::AddressError| MailError::Build(e.to_string()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .header(MessageId::from(self.message_id(queued.id)))
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|e| MailError::Build(e.to_string()))?;
        match &self.delivery {
            Delivery::Maildir(dir) => write_maildir(dir, queued.id, &message.formatted()).await,
            Delivery::Smtp(transport) => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Smtp(e.to_string())),
        }
    }
}

/// Backoff after `attempts` failed attempts: 30 s, 60 s, 120 s … up to an hour.
pub fn retry_after(attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    FIRST_RETRY_MS
        .saturating_mul(1i64 << doublings)
        .min(MAX_RETRY_MS)
}

/// Writes one message into the maildir, which only its owner may read (messages carry
/// sign-in links and reset tokens): directories 0700, files 0600.
async fn write_maildir(dir: &Path, id: i64, bytes: &[u8]) -> Result<(), MailError> {
    for sub in ["", "tmp", "new", "cur"] {
        let mut builder = tokio::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        builder.mode(0o700);
        builder.create(dir.join(sub)).await?;
    }
    let name = format!("outbox-{id:012}.eml");
    let tmp = dir.join("tmp").join(&name);
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&tmp).await?;
    tokio::io::AsyncWriteExt::write_all(&mut file, bytes).await?;
    drop(file);
    let file = tokio::fs::File::open(&tmp).await?;
    file.sync_all().await?;
    tokio::fs::rename(&tmp, dir.join("new").join(&name)).await?;
    Ok(())
}
