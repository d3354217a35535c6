//! GDPR (`/api/gdpr`): export everything the service holds about the caller's tree, and
//! delete the account with everything attached to it.
//!
//! Deletion order: links, persons, collaborations, contributions, notifications, and the
//! user last. Each step is a `delete_many` by owner, so a failure halfway leaves the account
//! in place (the token still works) with part of its data gone, never a link to a deleted
//! person; calling the route again finishes the job.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::links::LinkOut;
use super::message::Message;
use super::persons::PersonOut;
use super::users::UserOut;
use crate::domain::time::{iso, now};
use crate::http::context::AppContext;
use crate::http::error::ApiResult;
use crate::http::security::BearerAuth;
use crate::repo::{collaborators, contributions, links, notifications, persons, users};

/// The most persons, and links, an export holds (far above the tree size the lists show).
pub const EXPORT_LIMIT: i64 = 100_000;

/// API description tag.
#[derive(Tags)]
pub enum GdprTag {
    /// Data export and account deletion.
    Gdpr,
}

/// `GET /api/gdpr/export` answer.
#[derive(Debug, Clone, Object)]
pub struct GdprExport {
    /// The caller's account (without the password hash).
    pub user: UserOut,
    /// Every person of the caller's tree, oldest first.
    pub persons: Vec<PersonOut>,
    /// Every link of the caller's tree, oldest first.
    pub family_links: Vec<LinkOut>,
    /// Export time (ISO-8601 UTC).
    pub exported_at: String,
}

/// The GDPR routes.
pub struct GdprApi {
    /// Shared state.
    pub ctx: AppContext,
}

#[OpenApi(prefix_path = "/api", tag = "GdprTag::Gdpr")]
impl GdprApi {
    /// Export your data
    ///
    /// The caller's account (never the password hash), every person and every link of the
    /// caller's tree (up to 100 000 each, not the 500 of the lists).
    #[oai(path = "/gdpr/export", method = "get")]
    async fn export(&self, auth: BearerAuth) -> ApiResult<Json<GdprExport>> {
        let gw = &self.ctx.gateway;
        let me = auth.0.id_hex();
        let persons = persons::list_for_owner(gw, &me, EXPORT_LIMIT).await?;
        let links = links::list_for_owner(gw, &me, EXPORT_LIMIT).await?;
        Ok(Json(GdprExport {
            user: UserOut::from(&auth.0.user),
            persons: persons.into_iter().map(PersonOut::from).collect(),
            family_links: links.into_iter().map(LinkOut::from).collect(),
            exported_at: iso(now()),
        }))
    }

    /// Delete your account and all its data
    ///
    /// Deletes the caller's links, persons, collaborations (as owner or member),
    /// contributions (to the caller's tree or made by the caller), notifications, then the
    /// account. Safe to call again after a failure: it finishes what is left.
    #[oai(path = "/gdpr/delete-account", method = "delete")]
    async fn delete_account(&self, auth: BearerAuth) -> ApiResult<Json<Message>> {
        let gw = &self.ctx.gateway;
        let user = &auth.0.user;
        let me = user.id.to_hex();
        links::delete_for_owner(gw, &me).await?;
        persons::delete_for_owner(gw, &me).await?;
        collaborators::delete_for_user(gw, &me, &user.email).await?;
        contributions::delete_for_user(gw, &me).await?;
        notifications::delete_for_user(gw, &me).await?;
        crate::repo::email_tokens::delete_for_user(gw, user.id).await?;
        users::delete(gw, user.id).await?;
        tracing::info!(user.id = %user.id, "account deleted (GDPR)");
        Ok(Message::json("Account and all associated data deleted"))
    }
}
