//! Collaborators (`/api/collaborators`): the owner of a tree invites people by email as
//! viewers (read the tree) or editors (also propose changes). An invitation to an account
//! whose address is verified is accepted at once and notified; otherwise it waits, pending,
//! until that address is verified (a bare registration of the email is not enough: anyone
//! could register someone else's address). The invitee is mailed in every case.
//!
//! Invitation writes the collaborator, then the notification: if the second write fails the
//! collaboration exists without its notification (the invitee still sees the tree under
//! "shared with me"); nothing shown points to something missing.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use bson::doc;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::account;
use super::auth::parse_email;
use super::body::JsonBody;
use super::locks::KeyedLocks;
use super::message::Message;
use crate::domain::enums::{CollaboratorRole, CollaboratorStatus};
use crate::domain::ids::parse_object_id;
use crate::domain::time::iso;
use crate::http::context::AppContext;
use crate::http::error::{ApiError, ApiResult};
use crate::http::idempotency::IdempotencyScope;
use crate::http::rate_limit::{LimitedResult, Per, Scope};
use crate::http::security::BearerAuth;
use crate::mail::templates;
use crate::repo::collaborators::{self, CollaboratorDoc};
use crate::repo::notifications::{self, NotificationDoc};
use crate::repo::{persons, users};

/// API description tag.
#[derive(Tags)]
pub enum CollaboratorsTag {
    /// Sharing a tree with viewers and editors.
    Collaborators,
}

/// `POST /api/collaborators/invite` body.
#[derive(Debug, Clone, Object)]
pub struct InviteInput {
    /// The invitee's email.
    #[oai(validator(min_length = 3, max_length = 254))]
    pub email: String,
    /// `viewer` (reads the tree) or `editor` (also proposes changes).
    pub role: CollaboratorRole,
}

/// A collaborator of the caller's tree.
#[derive(Debug, Clone, Object)]
pub struct CollaboratorOut {
    /// Id.
    pub id: String,
    /// The tree owner's user id.
    pub tree_owner_id: String,
    /// The invitee's user id (null until the invitee registers).
    pub user_id: Option<String>,
    /// The invitee's email.
    pub email: String,
    /// `viewer` or `editor`.
    pub role: CollaboratorRole,
    /// `pending`, `accepted` or `rejected`.
    pub status: CollaboratorStatus,
    /// Invitation time (ISO-8601 UTC).
    pub invited_at: Option<String>,
    /// Acceptance time (ISO-8601 UTC).
    pub accepted_at: Option<String>,
}

impl From<CollaboratorDoc> for CollaboratorOut {
    fn from(c: CollaboratorDoc) -> Self {
        Self {
            id: c.id.to_hex(),
            tree_owner_id: c.tree_owner_id,
            user_id: c.user_id,
            email: c.email,
            role: c.role,
            status: c.status,
            invited_at: c.invited_at.map(iso),
            accepted_at: c.accepted_at.map(iso),
        }
    }
}

/// A tree shared with the caller.
#[derive(Debug, Clone, Object)]
pub struct SharedTreeInfo {
    /// The collaboration's id.
    pub id: String,
    /// The tree owner's user id (read the tree at `/api/tree/shared/{owner_id}`).
    pub owner_id: String,
    /// The owner's name.
    pub owner_name: String,
    /// The owner's email.
    pub owner_email: String,
    /// The caller's role on that tree.
    pub role: CollaboratorRole,
    /// How many persons the tree holds.
    pub persons_count: u64,
    /// Acceptance time (ISO-8601 UTC).
    pub accepted_at: Option<String>,
}

/// The collaborator routes.
pub struct CollaboratorsApi {
    /// Shared state.
    pub ctx: AppContext,
    /// Per-(owner, email) locks: one invitation of an email to a tree at a time.
    pub locks: KeyedLocks,
}

impl CollaboratorsApi {
    /// The collaborator routes over `ctx`.
    pub fn new(ctx: AppContext) -> Self {
        Self {
            ctx,
            locks: KeyedLocks::default(),
        }
    }
}

#[OpenApi(prefix_path = "/api", tag = "CollaboratorsTag::Collaborators")]
impl CollaboratorsApi {
    /// Invite a collaborator
    ///
    /// When the email belongs to a user whose address is verified, the invitation is
    /// accepted at once and that user gets a `collaboration_invite` notification and a
    /// mail; otherwise it stays `pending` until that address is verified: an account not
    /// yet verified is mailed a verification link that accepts it, an address with no
    /// account a link to the app to register. The answer is the same in every case (`status: pending`,
    /// `user_id` and `accepted_at` null), so it does not tell whether the email has an
    /// account; the list of collaborators shows the real status. 400 when the email was
    /// invited already, or is the caller's own. 429 with `Retry-After` after too many
    /// invitations from one address or one account.
    #[oai(path = "/collaborators/invite", method = "post")]
    async fn invite(
        &self,
        /// Optional `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header): a
        /// unique key per intended operation (e.g. a UUID). A repeat with the same key and
        /// body gets the first answer again, with `Idempotent-Replayed: true`, and changes
        /// nothing; 409 with `Retry-After` while the first is still processed; 422 for the
        /// same key with another body; 400 for a malformed key.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        req: &poem::Request,
        auth: BearerAuth,
        body: JsonBody<InviteInput>,
    ) -> LimitedResult<Json<CollaboratorOut>> {
        let gw = &self.ctx.gateway;
        let owner = &auth.0.user;
        let limits = &self.ctx.rate_limits;
        limits.check(Scope::Invite, Per::Address, &self.ctx.client_key(req))?;
        limits.check(Scope::Invite, Per::Account, &owner.id.to_hex())?;
        let email = parse_email(&body.email).map_err(ApiError::unprocessable)?;
        if owner.email.trim().to_lowercase() == email {
            return Err(ApiError::bad_request("You cannot invite yourself").into());
        }
        let owner_id = owner.id.to_hex();
        // No unique index covers (owner, email): two identical invitations racing would both
        // pass the check below. Serialize them in this process (see `locks`).
        let _guard = self.locks.lock(&format!("{owner_id} {email}")).await;
        // With an Idempotency-Key the ids are the key's: a retry of an invitation that
        // happened (its answer lost) recognises it and finishes (the notification).
        let id = IdempotencyScope::id_for(req, "collaborator");
        let existing = collaborators::find_by_owner_and_email(gw, &owner_id, &email).await?;
        let retried = existing.as_ref().is_some_and(|c| c.id == id);
        if existing.is_some() && !retried {
            return Err(
                ApiError::bad_request("This email has already been invited to your tree").into(),
            );
        }
        let found = users::find_by_email(gw, &email).await?;
        if found.as_ref().is_some_and(|u| u.id == owner.id) {
            return Err(ApiError::bad_request("You cannot invite yourself").into());
        }
        // Only an account whose owner proved they receive this email's mail gets the
        // invitation at once; any other waits, pending, for the address to be verified.
        let invitee = found.as_ref().filter(|u| u.email_verified);
        let now = bson::DateTime::now();
        let collaborator = CollaboratorDoc {
            id,
            tree_owner_id: owner_id.clone(),
            user_id: invitee.map(|u| u.id.to_hex()),
            email,
            role: body.role,
            status: if invitee.is_some() {
                CollaboratorStatus::Accepted
            } else {
                CollaboratorStatus::Pending
            },
            invite_token: Some(uuid::Uuid::new_v4().to_string()),
            invited_at: Some(now),
            accepted_at: invitee.is_some().then_some(now),
        };
        let collaborator = match existing {
            Some(done) if retried => done,
            _ => {
                collaborators::insert(gw, &collaborator).await?;
                collaborator
            }
        };
        // A retried invitation mails again: its first attempt may have failed before
        // mailing, and a second mail does less harm than none.
        let owner_name = full_name(&owner.first_name, &owner.last_name);
        let role = collaborator.role.as_str();
        let ctx = &self.ctx;
        // The invitee's mail (when mail is configured): best effort, the invitation stands.
        let mailed = match (&found, invitee) {
            (None, _) => ctx
                .mailer
                .send(templates::invite_register(
                    &collaborator.email,
                    &owner_name,
                    role,
                    &account::app_link(ctx),
                ))
                .map_err(|e| e.to_string()),
            (Some(unverified), None) => {
                account::queue_verification(ctx, unverified, Some((&owner_name, role)))
                    .await
                    .map_err(|e| e.to_string())
            }
            (Some(_), Some(verified)) => ctx
                .mailer
                .send(templates::invite_notice(
                    &verified.email,
                    &owner_name,
                    role,
                    &account::app_link(ctx),
                ))
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = mailed {
            if ctx.mailer.enabled() {
                tracing::warn!(collaborator.id = %collaborator.id, "invitation mail not queued: {e}");
            }
        }
        if let Some(invitee) = invitee {
            let mut notification = NotificationDoc::new(
                &invitee.id.to_hex(),
                notifications::COLLABORATION_INVITE,
                "New collaboration",
                format!(
                    "{owner_name} shared their family tree with you as {}",
                    collaborator.role
                ),
                doc! {
                    "tree_owner_id": &owner_id,
                    "collaborator_id": collaborator.id.to_hex(),
                    "role": collaborator.role.as_str(),
                },
            );
            notification.id = IdempotencyScope::id_for(req, "notification");
            notifications::insert_once(gw, &notification).await?;
        }
        // The answer is the same whether the email has an account or not (`pending`, no
        // user id): inviting must not tell who is registered.
        let mut answer = CollaboratorOut::from(collaborator);
        answer.user_id = None;
        answer.status = CollaboratorStatus::Pending;
        answer.accepted_at = None;
        Ok(Json(answer))
    }

    /// List the collaborators of your tree
    ///
    /// Oldest invitation first, at most 500.
    #[oai(path = "/collaborators", method = "get")]
    async fn list(&self, auth: BearerAuth) -> ApiResult<Json<Vec<CollaboratorOut>>> {
        let list = collaborators::list_for_owner(
            &self.ctx.gateway,
            &auth.0.id_hex(),
            self.ctx.limits.items,
        )
        .await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// List the trees shared with you
    ///
    /// The accepted collaborations of the caller, with each owner's name and the size of
    /// their tree, at most 500.
    #[oai(path = "/collaborators/shared-with-me", method = "get")]
    async fn shared_with_me(&self, auth: BearerAuth) -> ApiResult<Json<Vec<SharedTreeInfo>>> {
        let gw = &self.ctx.gateway;
        let list =
            collaborators::list_shared_with(gw, &auth.0.id_hex(), self.ctx.limits.items).await?;
        let mut owners = HashMap::new();
        let mut out = Vec::with_capacity(list.len());
        for c in list {
            let Some(owner_oid) = parse_object_id(&c.tree_owner_id) else {
                continue;
            };
            if let Entry::Vacant(slot) = owners.entry(owner_oid) {
                let owner = users::find_by_id(gw, owner_oid).await?;
                let count = match owner {
                    Some(_) => persons::count_for_owner(gw, &c.tree_owner_id).await?,
                    None => 0,
                };
                slot.insert(owner.map(|o| (o, count)));
            }
            // An owner who deleted their account leaves no tree to show.
            let Some(Some((owner, count))) = owners.get(&owner_oid) else {
                continue;
            };
            out.push(SharedTreeInfo {
                id: c.id.to_hex(),
                owner_id: c.tree_owner_id,
                owner_name: full_name(&owner.first_name, &owner.last_name),
                owner_email: owner.email.clone(),
                role: c.role,
                persons_count: *count,
                accepted_at: c.accepted_at.map(iso),
            });
        }
        Ok(Json(out))
    }

    /// Remove a collaborator
    ///
    /// Only the tree owner can; 404 otherwise, or when there is no such collaborator.
    #[oai(path = "/collaborators/:id", method = "delete")]
    async fn remove(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<Message>> {
        let not_found = || ApiError::not_found("Collaborator not found");
        let id = parse_object_id(&id).ok_or_else(not_found)?;
        if !collaborators::delete_owned(&self.ctx.gateway, id, &auth.0.id_hex()).await? {
            return Err(not_found());
        }
        Ok(Message::json("Collaborator removed"))
    }
}

/// "First Last", trimmed.
pub fn full_name(first: &str, last: &str) -> String {
    format!("{first} {last}").trim().to_string()
}
