//! JWTs exactly as the old service made them: HS256, claims `user_id` (hex ObjectId),
//! `iat`, `exp` = issue time + 7 days. Tokens from the old service verify here and ours
//! verify there (PyJWT decodes them with the same secret).
//!
//! Ours add `iat_ms`, the issue time in milliseconds (PyJWT ignores unknown claims), so a
//! logout ([`Claims::issued_before`]) can tell a token issued just before it from one
//! issued just after it in the same second. A token without it (the old service's) counts
//! as issued at the start of its `iat` second.

use std::time::Duration;

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode, errors::ErrorKind,
};
use serde::{Deserialize, Serialize};

/// Token lifetime, as in the old service.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user's id, a 24-hex ObjectId string.
    pub user_id: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Issued at, milliseconds since the epoch (ours only; absent in the old service's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<i64>,
}

impl Claims {
    /// When the token was issued, milliseconds since the epoch (`iat` seconds when the
    /// token has no `iat_ms`).
    pub fn issued_ms(&self) -> i64 {
        self.iat_ms.unwrap_or(self.iat.saturating_mul(1000))
    }

    /// True when the token was issued at or before `cutoff_ms` (a logout or a password
    /// change at that instant revokes it).
    pub fn issued_before(&self, cutoff_ms: i64) -> bool {
        self.issued_ms() <= cutoff_ms
    }
}

/// Why a token was refused; the Display is the contract's `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// `exp` is in the past.
    #[error("Token expired")]
    Expired,
    /// Malformed, tampered, wrong algorithm or missing claims.
    #[error("Invalid token")]
    Invalid,
}

/// Signs and verifies tokens with the configured secret.
#[derive(Clone)]
pub struct TokenCodec {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCodec(****)")
    }
}

impl TokenCodec {
    /// A codec for `secret` (never empty: configuration generates one when unset).
    pub fn new(secret: &[u8]) -> Self {
        assert!(!secret.is_empty(), "the JWT secret is never empty");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        Self {
            encoding: EncodingKey::from_secret(secret).expect("a non-empty HMAC secret is valid"),
            decoding: DecodingKey::from_secret(secret).expect("a non-empty HMAC secret is valid"),
            validation,
        }
    }

    /// A token for `user_id`, valid for seven days from now.
    pub fn issue(&self, user_id: &str) -> String {
        self.issue_after(user_id, None)
    }

    /// A token for `user_id`, valid for seven days from now, that a revocation at
    /// `revoked_until_ms` (the user's cutoff) does not cover: its `iat_ms` is now, or just
    /// after the cutoff when the cutoff is not in the past (the same millisecond, or another
    /// replica's clock ahead of this one). `iat` stays the real time in seconds: PyJWT
    /// refuses an `iat` in the future.
    pub fn issue_after(&self, user_id: &str, revoked_until_ms: Option<i64>) -> String {
        let now = chrono::Utc::now();
        let now_ms = now.timestamp_millis();
        let iat_ms = revoked_until_ms.map_or(now_ms, |cut| now_ms.max(cut + 1));
        self.sign(user_id, now.timestamp(), Some(iat_ms))
    }

    /// A token issued at `iat` (seconds), valid seven days, without `iat_ms` (as the old
    /// service made them).
    pub fn issue_at(&self, user_id: &str, iat: i64) -> String {
        self.sign(user_id, iat, None)
    }

    fn sign(&self, user_id: &str, iat: i64, iat_ms: Option<i64>) -> String {
        let claims = Claims {
            user_id: user_id.to_string(),
            iat,
            exp: iat + TOKEN_LIFETIME.as_secs() as i64,
            iat_ms,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by the old service's code path: `jwt.encode({"user_id": ..., "exp": ..., "iat": ...},
    /// "old-service-secret", algorithm="HS256")` with PyJWT 2.15.1, exp in 2100.
    const PYJWT_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoiNjU3NGE1YjJjM2Q0ZTVmNjA3MTgyOTNhIiwiZXhwIjo0MTAyNDQ0ODAwLCJpYXQiOjE3MDIwMDAwMDB9.Th3mm5vCdyxg1cJFaeNOI1Db_McD6DpH2SIFoodXVGw";

    #[test]
    fn round_trip() {
        let codec = TokenCodec::new(b"s3cret");
        let t = codec.issue("6574a5b2c3d4e5f60718293a");
        let c = codec.verify(&t).unwrap();
        assert_eq!(c.user_id, "6574a5b2c3d4e5f60718293a");
        assert_eq!(c.exp - c.iat, 7 * 24 * 3600);
        let ms = c.iat_ms.unwrap();
        assert!(ms / 1000 == c.iat, "{c:?}");
    }

    #[test]
    fn a_token_issued_after_a_cutoff_is_not_covered_by_it_even_in_the_same_millisecond() {
        let codec = TokenCodec::new(b"s3cret");
        let cutoff = chrono::Utc::now().timestamp_millis() + 5_000;
        let c = codec.verify(&codec.issue_after("u", Some(cutoff))).unwrap();
        assert!(!c.issued_before(cutoff), "{c:?}");
        assert!(
            c.iat <= chrono::Utc::now().timestamp(),
            "iat is never in the future"
        );
        let before = codec.verify(&codec.issue("u")).unwrap();
        assert!(before.issued_before(cutoff));
        // A token of the old service (seconds only) counts from the start of its second.
        let iat = chrono::Utc::now().timestamp() - 10;
        let old = codec.verify(&codec.issue_at("u", iat)).unwrap();
        assert_eq!(old.iat_ms, None);
        assert!(old.issued_before(iat * 1000));
        assert!(!old.issued_before(iat * 1000 - 1));
    }

    #[test]
    fn expired_and_tampered_tokens_are_refused() {
        let codec = TokenCodec::new(b"s3cret");
        let old = codec.issue_at("u", chrono::Utc::now().timestamp() - 8 * 24 * 3600);
        assert_eq!(codec.verify(&old), Err(TokenError::Expired));
        let other = TokenCodec::new(b"other").issue("u");
        assert_eq!(codec.verify(&other), Err(TokenError::Invalid));
        assert_eq!(codec.verify("not.a.token"), Err(TokenError::Invalid));
    }

    #[test]
    fn a_token_made_by_pyjwt_verifies() {
        let codec = TokenCodec::new(b"old-service-secret");
        let c = codec.verify(PYJWT_TOKEN).unwrap();
        assert_eq!(c.user_id, "6574a5b2c3d4e5f60718293a");
        assert_eq!(c.iat, 1702000000);
        assert_eq!(c.exp, 4102444800);
        assert_eq!(c.issued_ms(), 1_702_000_000_000);
    }
}
