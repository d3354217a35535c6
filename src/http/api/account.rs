//! Mail-backed account routes: email verification and password reset.
//!
//! - `GET /verify-email?token=...`: a small French HTML page. A valid link verifies the
//!   address it was mailed to and accepts the pending invitations addressed to it; opened
//!   again (a mail scanner often opens it first), it says the address is confirmed.
//! - `POST /api/auth/verify-email/resend`: mails a new verification link to the caller.
//! - `POST /api/auth/password-reset/request {email}`: always the same answer (whether the
//!   email has an account or not, and in the same time: the lookup and the mail happen
//!   after the answer); mails a single-use link valid `PASSWORD_RESET_TTL_MS` (30 min).
//! - `GET /reset-password?token=...`: an HTML form that posts to the confirm route.
//! - `POST /api/auth/password-reset/confirm {token, password}`: sets the password and
//!   revokes every token issued before (the per-user cutoff, as logout does).
//!
//! Links are single-use and stored hashed ([`crate::repo::email_tokens`]). Without
//! `SMTP_URL` every route here answers 503 with a `detail` saying mail is not configured.
//! Tokens travel in the query string: the request span records the path only, and the
//! pages ask the browser not to send them on as a referrer.

use std::time::Duration;

use poem_openapi::param::Query;
use poem_openapi::payload::{Html, Json};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use tracing::Instrument;

use super::auth::{busy, check_password, parse_email};
use super::body::JsonBody;
use super::message::Message;
use crate::db::DbError;
use crate::http::context::AppContext;
use crate::http::error::{ApiError, ApiResult};
use crate::http::rate_limit::{LimitedResult, Per, Scope};
use crate::http::security::BearerAuth;
use crate::mail::templates::{self, escape};
use crate::repo::email_tokens::{self, Purpose};
use crate::repo::{collaborators, users};

/// The `detail` of every mail route while `SMTP_URL` is unset.
pub const MAIL_OFF_DETAIL: &str = "Mail is not configured on this server (SMTP_URL is unset): email verification and password reset are unavailable";

/// The answer to every password-reset request.
pub const RESET_REQUESTED: &str =
    "If an account exists for this email, a password-reset link has been sent to it";

/// API description tags.
#[derive(Tags)]
enum AccountTag {
    /// Email verification and password reset (links sent by mail).
    Account,
}

/// `POST /api/auth/password-reset/request` body.
#[derive(Debug, Object)]
pub struct ResetRequestBody {
    /// The account's email.
    #[oai(validator(max_length = 254))]
    pub email: String,
}

/// `POST /api/auth/password-reset/confirm` body.
#[derive(Debug, Object)]
pub struct ResetConfirmBody {
    /// The token of the mailed link (`token=` of `/reset-password?token=...`).
    #[oai(validator(max_length = 128))]
    pub token: String,
    /// The new password: at least 6 characters, at most 72 bytes.
    #[oai(validator(max_length = 1024))]
    pub password: String,
}

/// An HTML page.
#[derive(ApiResponse)]
pub enum Page {
    /// The link worked (or the form to use it).
    #[oai(status = 200)]
    Ok(
        Html<String>,
        /// `no-store`.
        #[oai(header = "Cache-Control")]
        String,
        /// `no-referrer`: the token in the address never leaves as a referrer.
        #[oai(header = "Referrer-Policy")]
        String,
    ),
    /// The link is unknown, expired or used already.
    #[oai(status = 400)]
    Invalid(
        Html<String>,
        /// `no-store`.
        #[oai(header = "Cache-Control")]
        String,
        /// `no-referrer`.
        #[oai(header = "Referrer-Policy")]
        String,
    ),
}

fn page(ok: bool, title: &str, body_html: &str) -> Page {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"referrer\" content=\"no-referrer\"><title>{t} - AÏLA</title></head>\n<body style=\"font-family:sans-serif;line-height:1.5;color:#222;max-width:560px;margin:40px auto;padding:0 16px\">\n<h1>{t}</h1>\n{body_html}\n</body></html>\n",
        t = escape(title)
    );
    let (cache, referrer) = ("no-store".to_string(), "no-referrer".to_string());
    if ok {
        Page::Ok(Html(html), cache, referrer)
    } else {
        Page::Invalid(Html(html), cache, referrer)
    }
}

fn invalid_link_page(ctx: &AppContext, what: &str) -> Page {
    page(
        false,
        "Lien invalide ou expiré",
        &format!(
            "<p>Ce lien {} n'est plus valable : il a expiré, a déjà servi, ou il est incomplet.</p>\n<p>Demandez-en un nouveau depuis <a href=\"{app}\">l'application AÏLA</a>.</p>",
            escape(what),
            app = escape(&app_link(ctx)),
        ),
    )
}

/// The app's address as mails and pages link it.
pub fn app_link(ctx: &AppContext) -> String {
    format!("{}/", ctx.mailer.public_base_url())
}

/// 503 with `detail` unless mail is configured.
fn require_mail(ctx: &AppContext) -> ApiResult<()> {
    if ctx.mailer.enabled() {
        Ok(())
    } else {
        Err(ApiError::retry_later(
            MAIL_OFF_DETAIL,
            Duration::from_secs(3600),
        ))
    }
}

/// Queues the verification mail of `user` (a new token each time). Without mail, does
/// nothing. `invited_by` (owner name, role) makes it the invitation's mail.
pub async fn queue_verification(
    ctx: &AppContext,
    user: &users::UserDoc,
    invited_by: Option<(&str, &str)>,
) -> Result<(), DbError> {
    if !ctx.mailer.enabled() {
        return Ok(());
    }
    let email = user.email.trim().to_lowercase();
    let token = email_tokens::create(
        &ctx.gateway,
        Purpose::VerifyEmail,
        user.id,
        &email,
        ctx.verification_ttl,
    )
    .await?;
    let link = ctx.mailer.link(&format!("/verify-email?token={token}"));
    let mail = match invited_by {
        None => templates::verify_email(&email, &link, ctx.verification_ttl),
        Some((owner, role)) => {
            templates::invite_verify(&email, owner, role, &link, ctx.verification_ttl)
        }
    };
    // A full queue is logged and counted by the mailer; the caller goes on.
    let _ = ctx.mailer.send(mail);
    Ok(())
}

/// The mail-backed account routes.
pub struct AccountApi {
    /// Shared state.
    pub ctx: AppContext,
}

#[OpenApi(tag = "AccountTag::Account")]
impl AccountApi {
    /// Verify an email address (HTML page)
    ///
    /// The link mailed at registration (or by an invitation, or by
    /// `/api/auth/verify-email/resend`). A valid link marks the account's address verified
    /// and accepts the invitations addressed to it, then shows a page saying so. Opened
    /// again before it expires (by its owner after a mail scanner fetched it first), it
    /// says the address is confirmed already and changes nothing. An unknown or expired
    /// link, or a used one whose address is not verified, shows a page saying that (400).
    /// 503 (JSON `detail`) when mail is not configured.
    #[oai(path = "/verify-email", method = "get")]
    async fn verify_email(&self, token: Query<Option<String>>) -> ApiResult<Page> {
        let ctx = &self.ctx;
        require_mail(ctx)?;
        let gw = &ctx.gateway;
        let what = "de confirmation";
        let Some(token) = token.0.map(|t| t.trim().to_string()) else {
            return Ok(invalid_link_page(ctx, what));
        };
        let Some(found) = email_tokens::find_unexpired(gw, Purpose::VerifyEmail, &token).await?
        else {
            return Ok(invalid_link_page(ctx, what));
        };
        let user = users::find_by_id(gw, found.user_id).await?;
        let Some(user) = user.filter(|u| u.email.trim().to_lowercase() == found.email) else {
            return Ok(invalid_link_page(ctx, what));
        };
        if found.used_at.is_some() {
            // Used already, often by a mail scanner that opened the link before its owner
            // did: the address is confirmed, so say so rather than call the link invalid.
            if !user.email_verified {
                return Ok(invalid_link_page(ctx, what));
            }
            return Ok(confirmed_page(
                ctx,
                &format!("L'adresse {} est déjà confirmée.", escape(&found.email)),
                "",
            ));
        }
        // Idempotent steps first, the token used up last: a failure on the way leaves the
        // link usable, and using it twice changes nothing more.
        users::mark_verified(gw, user.id).await?;
        let claimed = collaborators::claim_invitations(gw, &found.email, &user.id.to_hex()).await?;
        email_tokens::consume(gw, Purpose::VerifyEmail, &token).await?;
        tracing::info!(user.id = %user.id, invitations.accepted = claimed, "email verified");
        let shared = if claimed > 0 {
            format!(
                "<p>{claimed} arbre{s} généalogique{s} partagé{s} avec vous {est} maintenant visible{s} dans « Partagés avec moi ».</p>",
                s = if claimed > 1 { "s" } else { "" },
                est = if claimed > 1 { "sont" } else { "est" },
            )
        } else {
            String::new()
        };
        Ok(confirmed_page(
            ctx,
            &format!("Merci ! L'adresse {} est confirmée.", escape(&found.email)),
            &shared,
        ))
    }

    /// Send the verification mail again
    ///
    /// Mails a new verification link to the caller's address (earlier links stay valid
    /// until they expire). Answers at once: the mail is sent in the background. 200
    /// `Email already verified` when it is. 429 with `Retry-After` after too many from one
    /// address or one account; 503 when mail is not configured.
    #[oai(path = "/api/auth/verify-email/resend", method = "post")]
    async fn resend_verification(
        &self,
        req: &poem::Request,
        auth: BearerAuth,
    ) -> LimitedResult<Json<Message>> {
        let ctx = &self.ctx;
        require_mail(ctx)?;
        let limits = &ctx.rate_limits;
        limits.check(Scope::VerifyResend, Per::Address, &ctx.client_key(req))?;
        limits.check(Scope::VerifyResend, Per::Account, &auth.0.id_hex())?;
        let user = &auth.0.user;
        if user.email_verified {
            return Ok(Message::json("Email already verified"));
        }
        queue_verification(ctx, user, None).await?;
        Ok(Message::json("Verification email sent"))
    }

    /// Ask for a password-reset link
    ///
    /// Always answers the same 200 (whether the email has an account or not); when it
    /// has one, a single-use link valid 30 minutes (`PASSWORD_RESET_TTL_MS`) is mailed to
    /// it. 422 for an email that is not an address; 429 with `Retry-After` after too many
    /// requests from one address or for one email; 503 when mail is not configured.
    #[oai(path = "/api/auth/password-reset/request", method = "post")]
    async fn reset_request(
        &self,
        req: &poem::Request,
        body: JsonBody<ResetRequestBody>,
    ) -> LimitedResult<Json<Message>> {
        let ctx = &self.ctx;
        require_mail(ctx)?;
        let limits = &ctx.rate_limits;
        limits.check(Scope::PasswordReset, Per::Address, &ctx.client_key(req))?;
        let email = parse_email(&body.0.email).map_err(ApiError::unprocessable)?;
        limits.check(Scope::PasswordReset, Per::Account, &email)?;
        // After the answer: whether the email has an account never shows in the time taken.
        let ctx = ctx.clone();
        let span = tracing::info_span!("password_reset.prepare");
        tokio::spawn(
            crate::resilience::admission::request_scope(async move {
                if let Err(e) = prepare_reset(&ctx, &email).await {
                    tracing::warn!("password-reset link not prepared: {e}");
                }
            })
            .instrument(span),
        );
        Ok(Message::json(RESET_REQUESTED))
    }

    /// Password-reset form (HTML page)
    ///
    /// The page the mailed link opens: a form for the new password that posts to
    /// `/api/auth/password-reset/confirm`. An unknown, expired or used link shows a page
    /// saying so (400). Opening the page does not use the link up. 503 (JSON `detail`)
    /// when mail is not configured.
    #[oai(path = "/reset-password", method = "get")]
    async fn reset_form(&self, token: Query<Option<String>>) -> ApiResult<Page> {
        let ctx = &self.ctx;
        require_mail(ctx)?;
        let what = "de réinitialisation";
        let Some(token) = token.0.map(|t| t.trim().to_string()) else {
            return Ok(invalid_link_page(ctx, what));
        };
        if email_tokens::find_usable(&ctx.gateway, Purpose::PasswordReset, &token)
            .await?
            .is_none()
        {
            return Ok(invalid_link_page(ctx, what));
        }
        Ok(page(true, "Nouveau mot de passe", &reset_form_html(&token)))
    }

    /// Set a new password with a reset link
    ///
    /// Uses the link up (once only), sets the password, and revokes every token issued
    /// before on every device (as logout does); other reset links of the account stop
    /// working. 400 when the link is unknown, expired or used already; 422 for a password
    /// shorter than 6 characters or longer than 72 bytes; 503 when mail is not configured.
    #[oai(path = "/api/auth/password-reset/confirm", method = "post")]
    async fn reset_confirm(&self, body: JsonBody<ResetConfirmBody>) -> ApiResult<Json<Message>> {
        let ctx = &self.ctx;
        require_mail(ctx)?;
        let body = body.0;
        check_password(&body.password).map_err(ApiError::unprocessable)?;
        let invalid = || {
            ApiError::bad_request(
                "This password-reset link is invalid, expired or already used: ask for a new one",
            )
        };
        let gw = &ctx.gateway;
        let token = body.token.trim();
        // Checked before the bcrypt work, used up after it (a busy hasher leaves it usable).
        if email_tokens::find_usable(gw, Purpose::PasswordReset, token)
            .await?
            .is_none()
        {
            return Err(invalid());
        }
        let hash = ctx
            .hasher
            .hash(body.password)
            .await
            .map_err(busy)?
            .map_err(ApiError::internal)?;
        let Some(used) = email_tokens::consume(gw, Purpose::PasswordReset, token).await? else {
            return Err(invalid());
        };
        let user = users::find_by_id(gw, used.user_id).await?;
        let Some(user) = user.filter(|u| u.email.trim().to_lowercase() == used.email) else {
            return Err(invalid());
        };
        if !users::set_password(gw, user.id, hash).await? {
            return Err(invalid());
        }
        email_tokens::use_up_all(gw, Purpose::PasswordReset, user.id).await?;
        tracing::info!(user.id = %user.id, "password reset: earlier tokens revoked");
        Ok(Message::json(
            "Password changed: log in with the new password",
        ))
    }
}

/// The reset link of `email`'s account, if it has one, made and queued.
async fn prepare_reset(ctx: &AppContext, email: &str) -> Result<(), DbError> {
    let Some(user) = users::find_by_email(&ctx.gateway, email).await? else {
        return Ok(());
    };
    let address = user.email.trim().to_lowercase();
    let token = email_tokens::create(
        &ctx.gateway,
        Purpose::PasswordReset,
        user.id,
        &address,
        ctx.password_reset_ttl,
    )
    .await?;
    let link = ctx.mailer.link(&format!("/reset-password?token={token}"));
    let _ = ctx.mailer.send(templates::password_reset(
        &address,
        &link,
        ctx.password_reset_ttl,
    ));
    tracing::info!(user.id = %user.id, "password-reset link queued");
    Ok(())
}

fn reset_form_html(token: &str) -> String {
    format!(
        r#"<form id="reset">
<input type="hidden" name="token" value="{token}">
<p><label>Nouveau mot de passe (6 caractères au moins)<br><input type="password" name="password" minlength="6" maxlength="72" required autocomplete="new-password"></label></p>
<p><label>Confirmez-le<br><input type="password" name="confirm" minlength="6" maxlength="72" required autocomplete="new-password"></label></p>
<p><button type="submit">Enregistrer</button></p>
<p id="result" role="status"></p>
</form>
<script>
document.getElementById("reset").addEventListener("submit", async function (e) {{
  e.preventDefault();
  var f = e.target, out = document.getElementById("result");
  if (f.password.value !== f.confirm.value) {{ out.textContent = "Les deux mots de passe diffèrent."; return; }}
  try {{
    var r = await fetch("/api/auth/password-reset/confirm", {{
      method: "POST", headers: {{"Content-Type": "application/json"}},
      body: JSON.stringify({{token: f.token.value, password: f.password.value}})
    }});
    if (r.ok) {{ f.querySelectorAll("input,button").forEach(function (i) {{ i.disabled = true; }});
      out.textContent = "Mot de passe modifié : connectez-vous avec le nouveau mot de passe. Vos autres appareils sont déconnectés."; }}
    else if (r.status === 400) {{ out.textContent = "Ce lien n'est plus valable : demandez-en un nouveau depuis l'application."; }}
    else if (r.status === 422) {{ out.textContent = "Mot de passe refusé : 6 caractères au moins, 72 octets au plus."; }}
    else {{ out.textContent = "Le service est indisponible pour le moment : réessayez dans un instant."; }}
  }} catch (err) {{ out.textContent = "Le service est injoignable : réessayez dans un instant."; }}
}});
</script>"#,
        token = escape(token)
    )
}

/// The page of a confirmed address: `sentence` (HTML, escaped by the caller), then `extra`
/// (HTML), then the link to the app.
fn confirmed_page(ctx: &AppContext, sentence: &str, extra: &str) -> Page {
    page(
        true,
        "Adresse e-mail confirmée",
        &format!(
            "<p>{sentence}</p>\n{extra}<p><a href=\"{}\">Ouvrir AÏLA</a></p>",
            escape(&app_link(ctx)),
        ),
    )
}
