//! The two pages a person sees during single sign-on: sign in, and (for third-party apps)
//! consent. Plain HTML forms with every value escaped; no scripts. They wear the web app's
//! look (its header, card, colours, dark and light), so signing in to an app feels like COSS.

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The web app's colours and card (`web/src/style.css`), inline: these pages load nothing else.
const STYLE: &str = ":root{--bg:#f5f6f8;--panel:#fff;--panel-2:#f0f2f5;--line:#d9dde5;--text:#141821;\
--muted:#555f70;--accent:#1d4ed8;--sell:#c0223f;color-scheme:light;\
font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,\"Noto Sans KR\",sans-serif;font-size:14px}\
@media (prefers-color-scheme:dark){:root{--bg:#0b0e14;--panel:#131722;--panel-2:#1a1f2e;\
--line:#2a2f3d;--text:#e6e8ee;--muted:#9aa3b5;--accent:#3b82f6;--sell:#f0506e;color-scheme:dark}}\
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--text)}\
header{padding:8px 16px;background:var(--panel);border-bottom:1px solid var(--line)}\
header a{font-weight:800;letter-spacing:1px;color:var(--text);text-decoration:none;font-size:18px}\
main{max-width:420px;margin:40px auto;background:var(--panel);border:1px solid var(--line);\
border-radius:6px;padding:16px}h1{font-size:18px;margin:0 0 12px}\
form{display:flex;flex-direction:column;gap:10px}\
label{display:flex;flex-direction:column;gap:4px;color:var(--muted);font-size:12px}\
input{background:var(--panel-2);color:var(--text);border:1px solid var(--line);border-radius:4px;\
padding:6px 8px;font:inherit}button{background:var(--accent);color:#fff;border:0;border-radius:4px;\
padding:7px 12px;cursor:pointer;font:inherit}button[value=deny]{background:transparent;\
color:var(--text);border:1px solid var(--line)}[role=alert]{color:var(--sell)}\
:focus-visible{outline:2px solid var(--accent);outline-offset:1px}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"color-scheme\" content=\"dark light\"><title>{}</title><link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\"><style>{STYLE}</style></head><body><header><a href=\"/\">COSS</a></header><main><h1>{}</h1>{body}</main></body></html>",
        escape(title),
        escape(title)
    )
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    )
}

/// The sign-in form; `request` is the authorization request's query, resumed after sign-in.
pub(crate) fn login(client_name: &str, request: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    page(
        "Sign in to COSS",
        &format!(
            "<p>{} wants you to sign in with your COSS account.</p>{error}\
             <form method=\"post\" action=\"/oauth2/login\">{}\
             <label>Email <input type=\"email\" name=\"email\" autocomplete=\"username\" required></label>\
             <label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label>\
             <label>Two-factor code (if enabled) <input name=\"totp_code\" inputmode=\"numeric\" autocomplete=\"one-time-code\"></label>\
             <button type=\"submit\">Sign in</button></form>",
            escape(client_name),
            hidden("request", request)
        ),
    )
}

/// The consent form: the app, what it asks for, allow or deny.
pub(crate) fn consent(client_name: &str, scopes: &[&str], fields: &[(&str, String)]) -> String {
    let items: String = scopes
        .iter()
        .map(|s| {
            let what = match *s {
                "openid" => "know who you are on COSS",
                "email" => "see your email address",
                "profile" => "see your display name",
                other => other,
            };
            format!("<li>{}</li>", escape(what))
        })
        .collect();
    let hidden_fields: String = fields.iter().map(|(n, v)| hidden(n, v)).collect();
    page(
        "Allow access?",
        &format!(
            "<p>{} asks to:</p><ul>{items}</ul>\
             <form method=\"post\" action=\"/oauth2/authorize\">{hidden_fields}\
             <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
            escape(client_name)
        ),
    )
}

/// An error shown in the browser when the app cannot be told (unknown client or redirect).
pub(crate) fn error(message: &str) -> String {
    page("Sign-in failed", &format!("<p>{}</p>", escape(message)))
}
