//! Contributions (`/api/contributions`): an editor of someone's tree proposes a change, the
//! owner approves or rejects it, and approval applies it.
//!
//! `entity_data` is parsed as a person body (add person), a partial person update (edit
//! person) or a link body (add link) when submitted (422 when invalid) and stored as parsed,
//! so only those fields exist in it; it is parsed again when applied (old contributions may
//! hold anything) and only those fields are written. Persons named by a change must belong to
//! the owner's tree, when submitted and again when applied.
//!
//! Reviews of one contribution are serialized in this process ([`KeyedLocks`]). Approval
//! applies the change, then marks the contribution reviewed, then notifies the
//! contributor. An added person or link takes the contribution's id, and edits and deletions
//! are idempotent, so a review interrupted before the contribution is marked can be retried
//! without duplicating anything.

use bson::oid::ObjectId;
use bson::{Bson, doc};
use poem_openapi::error::ParseRequestPayloadError;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::payload::ParsePayload;
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{Object, OpenApi, Tags};

use super::body::JsonBody;
use super::collaborators::full_name;
use super::locks::KeyedLocks;
use crate::db::DbError;
use crate::domain::enums::{
    CollaboratorRole, ContributionAction, ContributionStatus, EntityType, LinkType, ReviewDecision,
};
use crate::domain::ids::parse_object_id;
use crate::domain::link::LinkInput;
use crate::domain::person::{PersonInput, PersonUpdate};
use crate::domain::time::iso;
use crate::http::context::AppContext;
use crate::http::error::{ApiError, ApiResult};
use crate::http::idempotency::IdempotencyScope;
use crate::http::rate_limit::{LimitedResult, Per, Scope};
use crate::http::security::BearerAuth;
use crate::repo::contributions::{self, ContributionDoc};
use crate::repo::notifications::{self, NotificationDoc};
use crate::repo::{collaborators, links, persons};

/// API description tag.
#[derive(Tags)]
pub enum ContributionsTag {
    /// Changes proposed by editors, reviewed by the tree owner.
    Contributions,
}

/// `POST /api/contributions` body.
#[derive(Debug, Clone, Object)]
pub struct ContributionInput {
    /// `add`, `edit` or `delete`.
    pub action: ContributionAction,
    /// `person` or `link`.
    pub entity_type: EntityType,
    /// The person or link concerned (edit person, delete person, delete link).
    #[oai(validator(max_length = 64))]
    pub entity_id: Option<String>,
    /// The proposed fields: a person body (add person), the fields to change (edit person),
    /// or a link body between two persons of the tree (add link). Other fields are dropped.
    pub entity_data: Option<serde_json::Value>,
}

/// `POST /api/contributions/{id}/review` body.
#[derive(Debug, Clone, Object)]
pub struct ReviewInput {
    /// `approved` (the change is applied) or `rejected`.
    pub status: ReviewDecision,
    /// A note for the contributor.
    #[oai(validator(max_length = 2000))]
    pub note: Option<String>,
}

/// A contribution.
#[derive(Debug, Clone, Object)]
pub struct ContributionOut {
    /// Id.
    pub id: String,
    /// The tree owner's user id.
    pub tree_owner_id: String,
    /// The contributor's user id.
    pub contributor_id: String,
    /// The contributor's name.
    pub contributor_name: String,
    /// `add`, `edit` or `delete`.
    pub action: String,
    /// `person` or `link`.
    pub entity_type: String,
    /// The person or link concerned (edit, delete).
    pub entity_id: Option<String>,
    /// The proposed fields (add, edit).
    pub entity_data: serde_json::Value,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    /// Submission time (ISO-8601 UTC).
    pub created_at: Option<String>,
    /// Review time (ISO-8601 UTC).
    pub reviewed_at: Option<String>,
    /// The reviewer's note.
    pub review_note: Option<String>,
}

impl From<ContributionDoc> for ContributionOut {
    fn from(c: ContributionDoc) -> Self {
        Self {
            id: c.id.to_hex(),
            tree_owner_id: c.tree_owner_id,
            contributor_id: c.contributor_id,
            contributor_name: c.contributor_name,
            action: c.action,
            entity_type: c.entity_type,
            entity_id: c.entity_id,
            entity_data: bson_to_json(c.entity_data),
            status: c.status,
            created_at: c.created_at.map(iso),
            reviewed_at: c.reviewed_at.map(iso),
            review_note: c.review_note,
        }
    }
}

/// `POST /api/contributions/{id}/review` answer.
#[derive(Debug, Clone, Object)]
pub struct ReviewOut {
    /// What happened.
    pub message: String,
    /// The reviewed contribution's id.
    pub contribution_id: String,
}

/// A parsed change.
#[derive(Debug, Clone)]
pub enum Change {
    /// Add a person.
    AddPerson(PersonInput),
    /// Change some fields of a person.
    EditPerson(ObjectId, PersonUpdate),
    /// Delete a person and its links.
    DeletePerson(ObjectId),
    /// Add a link between two persons.
    AddLink(ObjectId, ObjectId, LinkType),
    /// Delete a link.
    DeleteLink(ObjectId),
}

fn bson_to_json(b: Bson) -> serde_json::Value {
    match b {
        Bson::Null | Bson::Undefined => serde_json::Value::Null,
        other => other.into_relaxed_extjson(),
    }
}

/// Parses `entity_data` as `T` the way a request body of type `T` is parsed ([`JsonBody`]),
/// so the error names the offending field (`entity_data: field `first_name` is required`).
async fn parse_data<T: ParseFromJSON>(data: Option<serde_json::Value>) -> Result<T, String> {
    let value = match data {
        None | Some(serde_json::Value::Null) => {
            return Err("entity_data is required for this action".into());
        }
        Some(v) => v,
    };
    let request = poem::Request::builder()
        .content_type("application/json")
        .finish();
    let body = poem::Body::from_json(&value).map_err(|e| e.to_string())?;
    let mut body = poem::RequestBody::new(body);
    match <JsonBody<T> as ParsePayload>::from_request(&request, &mut body).await {
        Ok(JsonBody(parsed)) => Ok(parsed),
        Err(e) => Err(format!(
            "entity_data: {}",
            e.downcast_ref::<ParseRequestPayloadError>()
                .map(|p| p.reason.clone())
                .unwrap_or_else(|| e.to_string())
        )),
    }
}

fn parse_entity_id(entity_id: Option<&str>) -> Result<ObjectId, String> {
    let id = entity_id.ok_or("entity_id is required for this action")?;
    parse_object_id(id).ok_or_else(|| "entity_id: not a valid id".to_string())
}

fn non_blank(field: &str, value: &Option<String>) -> Result<(), String> {
    match value {
        Some(v) if v.trim().is_empty() => Err(format!("entity_data.{field} must not be blank")),
        _ => Ok(()),
    }
}

impl Change {
    /// Parses a change; the error names the offending field.
    pub async fn parse(
        action: ContributionAction,
        entity_type: EntityType,
        entity_id: Option<&str>,
        data: Option<serde_json::Value>,
    ) -> Result<Change, String> {
        use ContributionAction as A;
        use EntityType as E;
        Ok(match (action, entity_type) {
            (A::Add, E::Person) => Change::AddPerson(
                parse_data::<PersonInput>(data)
                    .await?
                    .normalized()
                    .map_err(|e| format!("entity_data.{e}"))?,
            ),
            (A::Edit, E::Person) => {
                let id = parse_entity_id(entity_id)?;
                let mut update = parse_data::<PersonUpdate>(data).await?;
                non_blank("first_name", &update.first_name)?;
                non_blank("last_name", &update.last_name)?;
                update.first_name = update.first_name.map(|s| s.trim().to_string());
                update.last_name = update.last_name.map(|s| s.trim().to_string());
                if update.is_empty() {
                    return Err("entity_data: no person field to change".into());
                }
                Change::EditPerson(id, update)
            }
            (A::Delete, E::Person) => Change::DeletePerson(parse_entity_id(entity_id)?),
            (A::Add, E::Link) => {
                let link = parse_data::<LinkInput>(data).await?;
                let p1 = parse_object_id(&link.person_id_1)
                    .ok_or("entity_data.person_id_1: not a valid id")?;
                let p2 = parse_object_id(&link.person_id_2)
                    .ok_or("entity_data.person_id_2: not a valid id")?;
                if p1 == p2 {
                    return Err(
                        "entity_data.person_id_2: a person cannot be linked to themselves".into(),
                    );
                }
                Change::AddLink(p1, p2, link.link_type)
            }
            (A::Delete, E::Link) => Change::DeleteLink(parse_entity_id(entity_id)?),
            (A::Edit, E::Link) => {
                return Err(
                    "action: a link cannot be edited; propose deleting it and adding a new one"
                        .into(),
                );
            }
        })
    }

    /// Parses a stored contribution (old documents may hold anything).
    pub async fn from_doc(c: &ContributionDoc) -> Result<Change, String> {
        let action = ContributionAction::parse(&c.action)
            .ok_or_else(|| format!("action: unknown value `{}`", c.action))?;
        let entity_type = EntityType::parse(&c.entity_type)
            .ok_or_else(|| format!("entity_type: unknown value `{}`", c.entity_type))?;
        let data = match &c.entity_data {
            Bson::Null | Bson::Undefined => None,
            other => Some(other.clone().into_relaxed_extjson()),
        };
        Change::parse(action, entity_type, c.entity_id.as_deref(), data).await
    }

    /// `entity_id` and `entity_data` as stored: only the parsed fields.
    fn stored(&self) -> (Option<String>, Bson) {
        fn strip(value: serde_json::Value) -> Bson {
            let mut d = bson::to_document(&value).unwrap_or_default();
            let nulls: Vec<String> = d
                .iter()
                .filter(|(_, v)| matches!(v, Bson::Null))
                .map(|(k, _)| k.clone())
                .collect();
            for k in nulls {
                d.remove(&k);
            }
            Bson::Document(d)
        }
        match self {
            Change::AddPerson(p) => (None, strip(serde_json::to_value(p).unwrap_or_default())),
            Change::EditPerson(id, u) => (
                Some(id.to_hex()),
                strip(serde_json::to_value(u).unwrap_or_default()),
            ),
            Change::DeletePerson(id) | Change::DeleteLink(id) => (Some(id.to_hex()), Bson::Null),
            Change::AddLink(p1, p2, t) => (
                None,
                Bson::Document(doc! {
                    "person_id_1": p1.to_hex(),
                    "person_id_2": p2.to_hex(),
                    "link_type": t.as_str(),
                }),
            ),
        }
    }
}

/// The contribution routes.
pub struct ContributionsApi {
    /// Shared state.
    pub ctx: AppContext,
    /// Per-contribution locks (one review at a time).
    pub locks: KeyedLocks,
}

impl ContributionsApi {
    /// The contribution routes over `ctx`.
    pub fn new(ctx: AppContext) -> Self {
        Self {
            ctx,
            locks: KeyedLocks::default(),
        }
    }

    /// Checks that the persons and links a change names belong to `owner`'s tree.
    async fn check_targets(&self, owner: &str, change: &Change) -> ApiResult<()> {
        let gw = &self.ctx.gateway;
        match change {
            Change::AddPerson(_) => {}
            Change::EditPerson(id, _) | Change::DeletePerson(id) => {
                if persons::find_owned(gw, *id, owner).await?.is_none() {
                    return Err(ApiError::not_found("Person not found"));
                }
            }
            Change::AddLink(p1, p2, _) => {
                if !links::both_persons_owned(gw, owner, *p1, *p2).await? {
                    return Err(ApiError::not_found("One or both persons not found"));
                }
            }
            Change::DeleteLink(id) => {
                if links::find_by_id(gw, *id)
                    .await?
                    .is_none_or(|l| l.user_id != owner)
                {
                    return Err(ApiError::not_found("Link not found"));
                }
            }
        }
        Ok(())
    }

    /// Applies an approved change to `owner`'s tree; `id` is the contribution's id, given to
    /// what it adds. Idempotent.
    async fn apply(&self, owner: &str, id: ObjectId, change: Change) -> ApiResult<()> {
        let gw = &self.ctx.gateway;
        let gone = |what: &str| {
            ApiError::bad_request(format!(
                "{what} no longer in the tree: this contribution cannot be applied, reject it instead"
            ))
        };
        match change {
            Change::AddPerson(input) => {
                // A retried approval finds its person already added: nothing to count.
                if persons::find_owned(gw, id, owner).await?.is_none() {
                    self.ctx.check_room_for_persons(owner, 1).await?;
                }
                persons::insert_with_id(gw, id, owner, input, false).await?;
            }
            Change::EditPerson(person, update) => {
                if persons::find_owned(gw, person, owner).await?.is_none() {
                    return Err(gone("The person to edit is"));
                }
                persons::update(gw, person, &update).await?;
            }
            Change::DeletePerson(person) => {
                // Already gone (a retried approval, or deleted meanwhile): nothing to do.
                if persons::find_owned(gw, person, owner).await?.is_some() {
                    persons::delete_with_links(gw, person, owner).await?;
                }
            }
            Change::AddLink(p1, p2, link_type) => {
                if links::find_by_id(gw, id).await?.is_none() {
                    if !links::both_persons_owned(gw, owner, p1, p2).await? {
                        return Err(gone("One or both persons are"));
                    }
                    links::insert_with_id(gw, id, owner, p1, p2, link_type).await?;
                }
            }
            Change::DeleteLink(link) => {
                if links::find_by_id(gw, link)
                    .await?
                    .is_some_and(|l| l.user_id == owner)
                {
                    links::delete(gw, link, owner).await?;
                }
            }
        }
        Ok(())
    }
}

#[OpenApi(prefix_path = "/api", tag = "ContributionsTag::Contributions")]
impl ContributionsApi {
    /// Propose a change to someone's tree
    ///
    /// Only accepted `editor` collaborators of `owner_id` may (403 otherwise). The change is
    /// stored `pending` and the owner gets a `new_contribution` notification. 422 when
    /// `entity_data` is not a valid person or link body (or `entity_id` is missing or
    /// malformed); 404 when it names a person or link outside the owner's tree. 429 with
    /// `Retry-After` after too many contributions from one address or one account. 400 when
    /// the caller already has `MAX_PENDING_CONTRIBUTIONS` (50) pending contributions; 422
    /// for a photo over `PHOTO_MAX_BYTES`.
    #[oai(path = "/contributions", method = "post")]
    async fn submit(
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
        /// The tree owner's user id.
        owner_id: Query<String>,
        body: JsonBody<ContributionInput>,
    ) -> LimitedResult<Json<ContributionOut>> {
        let gw = &self.ctx.gateway;
        let me = &auth.0.user;
        let limits = &self.ctx.rate_limits;
        limits.check(Scope::Contribution, Per::Address, &self.ctx.client_key(req))?;
        limits.check(Scope::Contribution, Per::Account, &me.id.to_hex())?;
        let owner = parse_object_id(&owner_id)
            .ok_or_else(|| ApiError::unprocessable("owner_id: not a valid id"))?
            .to_hex();
        if owner == me.id.to_hex() {
            return Err(ApiError::forbidden(
                "This is your own tree: change it directly instead of proposing a contribution",
            )
            .into());
        }
        match collaborators::find_accepted(gw, &owner, &me.id.to_hex()).await? {
            Some(c) if c.role == CollaboratorRole::Editor => {}
            Some(_) => {
                return Err(ApiError::forbidden(
                    "Only editors can propose changes to this tree (you are a viewer)",
                )
                .into());
            }
            None => {
                return Err(ApiError::forbidden(
                    "You are not a collaborator of this tree: ask its owner for an invitation",
                )
                .into());
            }
        }
        let body = body.0;
        let change = Change::parse(
            body.action,
            body.entity_type,
            body.entity_id.as_deref(),
            body.entity_data,
        )
        .await
        .map_err(ApiError::unprocessable)?;
        match &change {
            Change::AddPerson(p) => self.ctx.check_photo(p.photo.as_deref())?,
            Change::EditPerson(_, u) => self.ctx.check_photo(u.photo.as_deref())?,
            _ => {}
        }
        // With an Idempotency-Key the ids are the key's: a retry of a submission that
        // happened (its answer lost) finds that contribution instead of adding a second one.
        let id = IdempotencyScope::id_for(req, "contribution");
        // Counted before the insert: simultaneous submissions may pass the cap by as many.
        let max = self.ctx.caps.pending_contributions_per_contributor;
        if contributions::count_pending_by_contributor(gw, &me.id.to_hex()).await? >= max {
            if let Some(done) = contributions::find_by_id(gw, id)
                .await?
                .filter(|c| c.contributor_id == me.id.to_hex())
            {
                return Ok(Json(done.into()));
            }
            return Err(ApiError::bad_request(format!(
                "You have {max} pending contributions, the most allowed: wait until the tree owners review them"
            ))
            .into());
        }
        self.check_targets(&owner, &change).await?;
        let (entity_id, entity_data) = change.stored();
        let contributor_name = full_name(&me.first_name, &me.last_name);
        let contribution = ContributionDoc {
            id,
            tree_owner_id: owner.clone(),
            contributor_id: me.id.to_hex(),
            contributor_name: contributor_name.clone(),
            action: body.action.as_str().to_string(),
            entity_type: body.entity_type.as_str().to_string(),
            entity_id,
            entity_data,
            status: ContributionStatus::Pending.as_str().to_string(),
            created_at: Some(bson::DateTime::now()),
            reviewed_at: None,
            review_note: None,
        };
        let contribution = match contributions::insert(gw, &contribution).await {
            Ok(()) => contribution,
            Err(DbError::DuplicateKey(key)) => match contributions::find_by_id(gw, id).await? {
                Some(existing) if existing.contributor_id == contribution.contributor_id => {
                    existing
                }
                _ => return Err(ApiError::from(DbError::DuplicateKey(key)).into()),
            },
            Err(e) => return Err(ApiError::from(e).into()),
        };
        let mut notification = NotificationDoc::new(
            &owner,
            notifications::NEW_CONTRIBUTION,
            "New contribution",
            format!(
                "{contributor_name} proposes to {} a {} in your family tree",
                body.action, body.entity_type
            ),
            doc! {
                "contribution_id": contribution.id.to_hex(),
                "contributor_id": me.id.to_hex(),
            },
        );
        notification.id = IdempotencyScope::id_for(req, "notification");
        notifications::insert_once(gw, &notification).await?;
        Ok(Json(contribution.into()))
    }

    /// List the pending contributions to your tree
    ///
    /// Newest first, at most 500.
    #[oai(path = "/contributions/pending", method = "get")]
    async fn pending(&self, auth: BearerAuth) -> ApiResult<Json<Vec<ContributionOut>>> {
        let list = contributions::list_pending_for_owner(
            &self.ctx.gateway,
            &auth.0.id_hex(),
            self.ctx.limits.items,
        )
        .await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// List your own contributions
    ///
    /// Every status, newest first, at most 500.
    #[oai(path = "/contributions/my", method = "get")]
    async fn mine(&self, auth: BearerAuth) -> ApiResult<Json<Vec<ContributionOut>>> {
        let list = contributions::list_by_contributor(
            &self.ctx.gateway,
            &auth.0.id_hex(),
            self.ctx.limits.items,
        )
        .await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Approve or reject a contribution to your tree
    ///
    /// Approval applies the change (add person, edit person, delete person and its links,
    /// add link, delete link); the contributor gets a `contribution_reviewed` notification.
    /// 404 unless the contribution is pending and addressed to the caller; 400 when an
    /// approved change no longer fits the tree (its person was deleted meanwhile).
    #[oai(path = "/contributions/:id/review", method = "post")]
    async fn review(
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
        id: Path<String>,
        body: JsonBody<ReviewInput>,
    ) -> ApiResult<Json<ReviewOut>> {
        let gw = &self.ctx.gateway;
        let owner = auth.0.id_hex();
        let not_found = || ApiError::not_found("Contribution not found");
        let id = parse_object_id(&id).ok_or_else(not_found)?;
        // One review of a contribution at a time in this process (see `locks`): an approval
        // and a rejection racing could otherwise apply a change and record it rejected.
        let _guard = self.locks.lock(&id.to_hex()).await;
        let status = match body.status {
            ReviewDecision::Approved => ContributionStatus::Approved,
            ReviewDecision::Rejected => ContributionStatus::Rejected,
        };
        let (contribution, reviewed_before) =
            match contributions::find_pending_for_owner(gw, id, &owner).await? {
                Some(c) => (c, false),
                // With an Idempotency-Key: a retry of this review that happened (its answer
                // lost) finds the contribution reviewed as asked, and finishes.
                None if IdempotencyScope::present(req) => {
                    let done = contributions::find_by_id(gw, id)
                        .await?
                        .filter(|c| c.tree_owner_id == owner && c.status == status.as_str())
                        .ok_or_else(not_found)?;
                    (done, true)
                }
                None => return Err(not_found()),
            };
        if status == ContributionStatus::Approved && !reviewed_before {
            let change = Change::from_doc(&contribution).await.map_err(|e| {
                ApiError::unprocessable(format!(
                    "This contribution cannot be applied ({e}): reject it instead"
                ))
            })?;
            self.apply(&owner, contribution.id, change).await?;
        }
        let note = body.0.note.filter(|n| !n.trim().is_empty());
        if !reviewed_before
            && !contributions::mark_reviewed(gw, id, &owner, status, note.clone()).await?
        {
            return Err(not_found());
        }
        let verdict = status.as_str();
        let mut message = format!(
            "Your contribution ({} {}) was {verdict}",
            contribution.action, contribution.entity_type
        );
        if let Some(note) = &note {
            message.push_str(&format!(": {note}"));
        }
        let mut notification = NotificationDoc::new(
            &contribution.contributor_id,
            notifications::CONTRIBUTION_REVIEWED,
            &format!("Contribution {verdict}"),
            message,
            doc! {
                "contribution_id": id.to_hex(),
                "tree_owner_id": &owner,
                "status": verdict,
            },
        );
        notification.id = IdempotencyScope::id_for(req, "notification");
        notifications::insert_once(gw, &notification).await?;
        Ok(Json(ReviewOut {
            message: format!("Contribution {verdict}"),
            contribution_id: id.to_hex(),
        }))
    }
}
