//! The two pages a person sees during single sign-on: sign in, and (for third-party apps)
//! consent. Plain HTML forms with every value escaped; no scripts.

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

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title></head><body><main><h1>{}</h1>{body}</main></body></html>",
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
