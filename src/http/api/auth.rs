//! `/api/auth`: registration, login, logout and the current user.
//!
//! Emails are validated and stored lower-cased; passwords are hashed with bcrypt (`$2b$`,
//! cost 12) on the blocking pool. Login answers the same 401 `Invalid email or password`
//! whether the email is unknown or the password wrong, and spends the same bcrypt work in
//! both cases, so neither the message nor the timing tells which emails are registered.
//!
//! Pending collaborator invitations are accepted only for a verified address (a registration
//! proves nothing about who owns the email): when the address is verified
//! (`/verify-email`, [`super::account`]), or at login when it was verified already (so an
//! invitation made while the verification was under way, or a verification that failed
//! half-way, still converges). Registration mails the verification link (when mail is
//! configured).

use poem_openapi::param::Header;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use super::body::JsonBody;
use super::users::UserOut;
use crate::auth::password;
use crate::http::context::AppContext;
use crate::http::error::{ApiError, ApiResult};
use crate::http::idempotency::IdempotencyScope;
use crate::http::rate_limit::{LimitedResult, Per, Scope};
use crate::http::security::BearerAuth;
use crate::repo::collaborators;
use crate::repo::users::{self, Created, NewUser};

/// Shortest password, in characters.
pub const PASSWORD_MIN_CHARS: usize = 6;
/// Longest password, in bytes: bcrypt ignores anything beyond.
pub const PASSWORD_MAX_BYTES: usize = 72;
/// Longest email (RFC 5321).
pub const EMAIL_MAX: usize = 254;

/// A cost-12 hash of a password nobody has, verified when the email is unknown so a failed
/// login always costs one bcrypt verification.
/// Made with `bcrypt.hashpw(b"not-a-real-password-timing-equalizer", bcrypt.gensalt(12))`.
const TIMING_EQUALIZER_HASH: &str = "$2b$12$0e2EudLs/wyV1Y7ILEeMyuEieFNe19OFHU063M.kiCok/R35DL7GW";

/// API description tags.
#[derive(Tags)]
enum AuthTag {
    /// Registration, login and the current user.
    Auth,
}

/// `POST /api/auth/register` body.
#[derive(Debug, Object)]
pub struct RegisterBody {
    /// Email address (stored lower-cased).
    #[oai(validator(max_length = 254))]
    pub email: String,
    /// Password: at least 6 characters, at most 72 bytes.
    #[oai(validator(min_length = 6, max_length = 72))]
    pub password: String,
    /// First name (1 to 200 characters).
    #[oai(validator(min_length = 1, max_length = 200))]
    pub first_name: String,
    /// Last name (1 to 200 characters).
    #[oai(validator(min_length = 1, max_length = 200))]
    pub last_name: String,
    /// Consent to the processing of personal data; must be true.
    #[oai(default)]
    pub gdpr_consent: bool,
}

/// `POST /api/auth/login` body.
#[derive(Debug, Object)]
pub struct LoginBody {
    /// Email address (compared lower-cased).
    #[oai(validator(max_length = 254))]
    pub email: String,
    /// Password.
    #[oai(validator(max_length = 1024))]
    pub password: String,
}

/// A token and its user.
#[derive(Debug, Object)]
pub struct AuthResponse {
    /// HS256 JWT, valid 7 days; send it as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// The user.
    pub user: UserOut,
}

/// True when `raw` holds a control character (NUL, newline, tab, DEL, ...): no email does,
/// and such input is refused before it reaches the database.
pub fn has_control(raw: &str) -> bool {
    raw.chars().any(char::is_control)
}

/// `POST /api/auth/logout` answer.
#[derive(Debug, ApiResponse)]
pub enum LogoutResponse {
    /// Every earlier token of the caller is revoked.
    #[oai(status = 204)]
    LoggedOut,
}

/// `raw` as a stored email: trimmed, lower-cased, and shaped like `local@domain.tld`.
pub fn parse_email(raw: &str) -> Result<String, String> {
    if has_control(raw.trim()) {
        return Err(
            "email: must not contain control characters (NUL, tab, newline, ...); send the address alone"
                .to_string(),
        );
    }
    let invalid = || format!("email: `{}` is not a valid email address", raw.trim());
    let email = raw.trim().to_lowercase();
    if email.is_empty() || email.len() > EMAIL_MAX {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        Ok(email)
    } else {
        Err(invalid())
    }
}

/// Checks the password rules: at least [`PASSWORD_MIN_CHARS`] characters, at most
/// [`PASSWORD_MAX_BYTES`] bytes.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(format!(
            "password: use at least {PASSWORD_MIN_CHARS} characters"
        ));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(format!(
            "password: use at most {PASSWORD_MAX_BYTES} bytes (bcrypt ignores anything longer)"
        ));
    }
    Ok(())
}

/// A name trimmed, or an error naming `field` when it is blank.
fn parse_name(field: &str, raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        Err(format!("{field}: must not be blank"))
    } else {
        Ok(name.to_string())
    }
}

/// 503 + `Retry-After`: no bcrypt slot came free within `HASH_QUEUE_TIMEOUT_MS`.
pub(crate) fn busy(b: password::Busy) -> ApiError {
    ApiError::retry_later(
        "Too many logins and registrations at once: retry shortly",
        b.waited.max(std::time::Duration::from_secs(1)),
    )
}

fn invalid_login() -> ApiError {
    ApiError::unauthorized("Invalid email or password")
}

/// The auth routes.
pub struct AuthApi {
    /// Shared state.
    pub ctx: AppContext,
}

impl AuthApi {
    fn respond(&self, user: &users::UserDoc) -> Json<AuthResponse> {
        Json(AuthResponse {
            access_token: self
                .ctx
                .tokens
                .issue_after(&user.id.to_hex(), user.tokens_cutoff_ms()),
            token_type: "bearer".into(),
            user: UserOut::from(user),
        })
    }
}

#[OpenApi(prefix_path = "/api", tag = "AuthTag::Auth")]
impl AuthApi {
    /// Create an account.
    ///
    /// The very first user of the database becomes `admin` (exactly one, even under
    /// simultaneous registrations), everyone after that `member`. A verification link is
    /// mailed to the address (`email_verified` stays false until it is followed); pending
    /// collaborator invitations addressed to this email are accepted only then, never by
    /// the registration itself. 400 `GDPR consent is required`;
    /// 400 `Email already registered`; 422 for an invalid email (control characters
    /// included), a password shorter than 6 characters or longer than 72 bytes, or a blank
    /// name; 429 with `Retry-After` after too many registrations from one address.
    #[oai(path = "/auth/register", method = "post")]
    async fn register(
        &self,
        /// Optional `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header): a
        /// unique key per intended operation (e.g. a UUID). A repeat with the same key and
        /// body gets the first answer again, with `Idempotent-Replayed: true`, and changes
        /// nothing; 409 with `Retry-After` while the first is still processed; 422 for the
        /// same key with another body; 400 for a malformed key.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        req: &poem::Request,
        body: JsonBody<RegisterBody>,
    ) -> LimitedResult<Json<AuthResponse>> {
        let limits = &self.ctx.rate_limits;
        limits.check(Scope::Register, Per::Address, &self.ctx.client_key(req))?;
        let body = body.0;
        let email = parse_email(&body.email).map_err(ApiError::unprocessable)?;
        check_password(&body.password).map_err(ApiError::unprocessable)?;
        let first_name =
            parse_name("first_name", &body.first_name).map_err(ApiError::unprocessable)?;
        let last_name =
            parse_name("last_name", &body.last_name).map_err(ApiError::unprocessable)?;
        if !body.gdpr_consent {
            return Err(ApiError::bad_request("GDPR consent is required").into());
        }
        let gw = &self.ctx.gateway;
        // With an Idempotency-Key the user's id is the key's: a retry of a registration
        // that happened (its answer lost) recognises its user and answers as the first
        // attempt would have (the same body, so the same password, from the same client).
        let id = IdempotencyScope::id_for(req, "user");
        // Checked before hashing so a taken email costs no bcrypt work; `create` checks
        // again and the unique index settles a race.
        if let Some(existing) = users::find_by_email(gw, &email).await? {
            if existing.id == id {
                collaborators::claim_invitations(gw, &email, &existing.id.to_hex()).await?;
                return Ok(self.respond(&existing));
            }
            return Err(ApiError::bad_request("Email already registered").into());
        }
        let password_hash = self
            .ctx
            .hasher
            .hash(body.password)
            .await
            .map_err(busy)?
            .map_err(ApiError::internal)?;
        let created = users::create_with_id(
            gw,
            id,
            NewUser {
                email: email.clone(),
                password_hash,
                first_name,
                last_name,
                gdpr_consent: true,
            },
        )
        .await?;
        let user = match created {
            Created::User(user) => *user,
            Created::EmailTaken => {
                return Err(ApiError::bad_request("Email already registered").into());
            }
        };
        tracing::info!(user.id = %user.id, user.role = %user.role(), "user registered");
        // Best effort: the account exists; a verification mail that could not be prepared
        // can be asked for again (`/api/auth/verify-email/resend`).
        if let Err(e) = super::account::queue_verification(&self.ctx, &user, None).await {
            tracing::warn!(user.id = %user.id, "verification mail not prepared: {e}");
        }
        Ok(self.respond(&user))
    }

    /// Log in.
    ///
    /// When the account's address is verified, the pending invitations addressed to it are
    /// accepted.
    ///
    /// 401 `Invalid email or password`, the same whether the email is unknown or the
    /// password wrong (or the email holds a control character). 429 with `Retry-After`
    /// after too many attempts from one address, or on one account from any address (an
    /// unknown email is limited the same way).
    #[oai(path = "/auth/login", method = "post")]
    async fn login(
        &self,
        req: &poem::Request,
        body: JsonBody<LoginBody>,
    ) -> LimitedResult<Json<AuthResponse>> {
        let limits = &self.ctx.rate_limits;
        limits.check(Scope::Login, Per::Address, &self.ctx.client_key(req))?;
        let body = body.0;
        limits.check(
            Scope::Login,
            Per::Account,
            &body.email.trim().to_lowercase(),
        )?;
        let gw = &self.ctx.gateway;
        if has_control(body.email.trim()) {
            return Err(invalid_login().into());
        }
        let user = users::find_by_email(gw, &body.email).await?;
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| TIMING_EQUALIZER_HASH.to_string());
        let matches = self
            .ctx
            .hasher
            .verify(body.password, hash)
            .await
            .map_err(busy)?;
        let user = match user {
            Some(user) if matches => user,
            _ => return Err(invalid_login().into()),
        };
        if user.email_verified {
            collaborators::claim_invitations(gw, &user.email, &user.id.to_hex()).await?;
        }
        Ok(self.respond(&user))
    }

    /// Log out everywhere.
    ///
    /// Revokes every token of the caller issued until now, on every device (the one sent
    /// included); a token issued afterwards (a new login) works. Answers 204 with no body;
    /// 401 when the token is missing, invalid, expired or already revoked (`Token revoked`).
    /// Changing the password revokes tokens the same way.
    #[oai(path = "/auth/logout", method = "post")]
    async fn logout(&self, auth: BearerAuth) -> ApiResult<LogoutResponse> {
        let user = &auth.0.user;
        let now = crate::domain::time::now();
        users::revoke_tokens(&self.ctx.gateway, user.id, now).await?;
        tracing::info!(user.id = %user.id, "user logged out: earlier tokens revoked");
        Ok(LogoutResponse::LoggedOut)
    }

    /// The current user.
    #[oai(path = "/auth/me", method = "get")]
    async fn me(&self, auth: BearerAuth) -> ApiResult<Json<UserOut>> {
        Ok(Json(UserOut::from(&auth.0.user)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            parse_email("  Ada.Lovelace+tree@Example.ORG ").unwrap(),
            "ada.lovelace+tree@example.org"
        );
        assert_eq!(parse_email("zoé@exemple.fr").unwrap(), "zoé@exemple.fr");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "ada@@example.org",
            "ada@exa mple.org",
            "a..b@example.org",
            "ada@-example.org",
            "ada@example..org",
        ] {
            let err = parse_email(bad).unwrap_err();
            assert!(err.starts_with("email:"), "{bad}: {err}");
        }
        assert!(parse_email(&format!("{}@example.org", "a".repeat(65))).is_err());
        for bad in ["a\u{0}@x.org", "a@x\n.org", "a\t@x.org", "a\u{7f}@x.org"] {
            let err = parse_email(bad).unwrap_err();
            assert!(err.contains("control characters"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn password_rules() {
        assert!(check_password("123456").is_ok());
        assert!(
            check_password("12345")
                .unwrap_err()
                .starts_with("password:")
        );
        assert!(check_password(&"a".repeat(72)).is_ok());
        assert!(check_password(&"a".repeat(73)).is_err());
        // 36 two-byte characters are 72 bytes; 37 are too many.
        assert!(check_password(&"é".repeat(36)).is_ok());
        assert!(check_password(&"é".repeat(37)).is_err());
    }

    #[test]
    fn blank_names_are_refused() {
        assert_eq!(parse_name("first_name", " Ada ").unwrap(), "Ada");
        assert_eq!(
            parse_name("last_name", "  ").unwrap_err(),
            "last_name: must not be blank"
        );
    }
}
