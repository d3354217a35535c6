//! GDPR (`/api/gdpr`): export everything the service holds about the caller (streamed, see
//! [`super::gdpr_export`]), and delete the account with everything attached to it.
//!
//! Deletion order: links, persons, collaborations, contributions, the caller's
//! notifications, the caller's name and id in other users' notifications, and the user
//! last. Each step is a `delete_many` by owner, so a failure halfway leaves the account
//! in place (the token still works) with part of its data gone, never a link to a deleted
//! person; calling the route again finishes the job.

use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{Object, OpenApi, Tags};

use super::collaborators::CollaboratorOut;
use super::contributions::ContributionOut;
use super::gdpr_export::{Owner, StreamedExport};
use super::links::LinkOut;
use super::message::Message;
use super::notifications::NotificationOut;
use super::persons::PersonOut;
use super::users::UserOut;
use crate::domain::time::{iso, now};
use crate::http::context::AppContext;
use crate::http::error::ApiResult;
use crate::http::security::BearerAuth;
use crate::repo::{collaborators, contributions, links, notifications, persons, users};

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
    /// The collaborators of the caller's tree, accepted or pending.
    pub collaborators: Vec<CollaboratorOut>,
    /// The caller's collaborations on other users' trees, and the invitations addressed to
    /// the caller's email.
    pub shared_with_me: Vec<CollaboratorOut>,
    /// The contributions the caller proposed to other trees.
    pub contributions_made: Vec<ContributionOut>,
    /// The contributions proposed to the caller's tree.
    pub contributions_received: Vec<ContributionOut>,
    /// The caller's notifications, read or not.
    pub notifications: Vec<NotificationOut>,
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
    /// Everything the service holds about the caller: the account (never the password
    /// hash), every person and link of the caller's tree, the collaborations both ways,
    /// the contributions both ways and the notifications, oldest first, with no limit. The
    /// answer is streamed: it is written while it is read, a page at a time. If the
    /// database fails partway, the answer ends before the document is complete.
    #[oai(path = "/gdpr/export", method = "get")]
    async fn export(&self, auth: BearerAuth) -> ApiResult<StreamedExport> {
        let user = &auth.0.user;
        let owner = Owner {
            id: user.id.to_hex(),
            email: user.email.to_lowercase(),
        };
        let shown = UserOut::from(user).to_json().unwrap_or_default();
        let gw = self.ctx.gateway.clone();
        Ok(StreamedExport::start(gw, owner, shown, iso(now())).await?)
    }

    /// Delete your account and all its data
    ///
    /// Deletes the caller's links, persons (and any link of another tree naming one of
    /// them, which the old service's data may hold), collaborations (as owner or member),
    /// contributions (to the caller's tree or made by the caller), notifications, removes
    /// the caller's name and id from other users' notifications, then deletes the account. Safe to call again after a failure: it finishes what is left.
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
        notifications::forget_sender(gw, &me).await?;
        crate::repo::email_tokens::delete_for_user(gw, user.id).await?;
        users::delete(gw, user.id).await?;
        tracing::info!(user.id = %user.id, "account deleted (GDPR)");
        Ok(Message::json("Account and all associated data deleted"))
    }
}
