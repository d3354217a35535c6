//! Keeping secrets out of logs, spans and the health JSON.
//!
//! [`MongoUrl`] holds the connection string; its `Debug` and `Display` show it with the
//! password replaced by `****`. [`Redactor`] scrubs the password out of any text (driver
//! errors sometimes quote the URL or the credentials) before that text is logged or shown.
//! [`mask_path`] hides the preview-session token (a bearer secret carried in the URL) in a
//! request path before the path reaches a span, a log line or a metric.

use std::fmt;
use std::sync::Arc;

/// A MongoDB connection string whose password never prints.
#[derive(Clone)]
pub struct MongoUrl {
    raw: Arc<str>,
    redactor: Redactor,
}

impl MongoUrl {
    /// Wraps a connection string.
    pub fn new(raw: impl Into<String>) -> Self {
        let raw: String = raw.into();
        let redactor = Redactor::for_url(&raw);
        Self {
            raw: raw.into(),
            redactor,
        }
    }

    /// The real string, for the driver only.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The string with its password replaced by `****`.
    pub fn redacted(&self) -> String {
        self.redactor.scrub(&self.raw)
    }

    /// A redactor that removes this URL's password from any text.
    pub fn redactor(&self) -> Redactor {
        self.redactor.clone()
    }
}

impl fmt::Debug for MongoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MongoUrl({:?})", self.redacted())
    }
}

impl fmt::Display for MongoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Removes known secrets from text.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor for the password (raw and percent-decoded) of a connection string, and
    /// for its whole `user:password` pair. Works on strings the driver would refuse too.
    pub fn for_url(url: &str) -> Self {
        let mut secrets = Vec::new();
        if let Some((_, rest)) = url.split_once("://") {
            // userinfo ends at the last '@' before the first '/' (passwords may contain '@' unescaped).
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let authority = &rest[..authority_end];
            if let Some(at) = authority.rfind('@') {
                let userinfo = &authority[..at];
                if let Some((_, password)) = userinfo.split_once(':') {
                    if !password.is_empty() {
                        secrets.push(password.to_string());
                        if let Ok(decoded) = percent_decode(password) {
                            if decoded != password {
                                secrets.push(decoded);
                            }
                        }
                    }
                }
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self {
            secrets: Arc::new(secrets),
        }
    }

    /// `text` with every known secret replaced by `****`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in self.secrets.iter() {
            if !secret.is_empty() {
                out = out.replace(secret.as_str(), "****");
            }
        }
        out
    }
}

fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// Where preview sessions live; the segment after it is a session's token (a bearer
/// secret), except for `session` (the creation route).
const PREVIEW_PREFIX: &str = "/api/preview/";

/// `path` with the preview-session token replaced by `****`:
/// `/api/preview/3b24...a962/person` becomes `/api/preview/****/person`. Other paths are
/// returned as they are.
pub fn mask_path(path: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let Some(rest) = path.strip_prefix(PREVIEW_PREFIX) else {
        return Cow::Borrowed(path);
    };
    let (token, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if token.is_empty() || token == "session" {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("{PREVIEW_PREFIX}****{tail}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_replaced_everywhere() {
        let url = MongoUrl::new(
            "mongodb+srv://aila:p%40ss%2Fw0rd@cluster0.example.net/?retryWrites=true",
        );
        assert_eq!(
            url.redacted(),
            "mongodb+srv://aila:****@cluster0.example.net/?retryWrites=true"
        );
        assert!(!format!("{url:?} {url}").contains("w0rd"));
        let r = url.redactor();
        assert_eq!(
            r.scrub("auth failed for p@ss/w0rd and p%40ss%2Fw0rd"),
            "auth failed for **** and ****"
        );
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        let url = MongoUrl::new("mongodb://localhost:27017");
        assert_eq!(url.redacted(), "mongodb://localhost:27017");
        assert_eq!(MongoUrl::new("not a url").redacted(), "not a url");
    }

    #[test]
    fn an_unescaped_at_in_the_password_is_still_hidden() {
        let url = MongoUrl::new("mongodb://u:pa@ss@host:1/db");
        assert_eq!(url.redacted(), "mongodb://u:****@host:1/db");
    }

    #[test]
    fn preview_tokens_are_masked_in_paths() {
        let token = "3b241101-e2bb-4255-8caf-4136c566a962";
        assert_eq!(
            mask_path(&format!("/api/preview/{token}")),
            "/api/preview/****"
        );
        assert_eq!(
            mask_path(&format!("/api/preview/{token}/person")),
            "/api/preview/****/person"
        );
        assert_eq!(mask_path("/api/preview/session"), "/api/preview/session");
        assert_eq!(mask_path("/api/persons/abc"), "/api/persons/abc");
        assert_eq!(mask_path("/api/preview/"), "/api/preview/");
    }
}
