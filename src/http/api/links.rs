//! `/api/links`: the family links of the caller's tree, and the link object other routes
//! answer ([`LinkOut`]).
//!
//! A link joins two persons of the caller's own tree. The link type is taken as a string and
//! parsed here, so a type outside the 16 is the contract's 400 naming `link_type` (a
//! malformed person id is 422 naming the field; persons not in the caller's tree are 404).

use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use serde::Serialize;

use super::body::JsonBody;
use super::json_out::JsonOut;
use super::message::Message;
use crate::domain::enums::LinkType;
use crate::domain::ids::parse_object_id;
use crate::domain::time::iso;
use crate::http::context::AppContext;
use crate::http::error::{ApiError, ApiResult};
use crate::http::idempotency::IdempotencyScope;
use crate::http::security::BearerAuth;
use crate::repo::links::{self, LinkDoc};

/// API description tags.
#[derive(Tags)]
enum LinksTag {
    /// The family links of the caller's tree.
    Links,
}

/// A link as the API shows it.
// Answered with `JsonOut`: serde writes it, so no serde renames (see json_out.rs).
#[derive(Debug, Clone, Object, Serialize)]
pub struct LinkOut {
    /// Id (24 hex digits).
    pub id: String,
    /// The tree owner's user id.
    pub user_id: String,
    /// First person's id.
    pub person_id_1: String,
    /// Second person's id.
    pub person_id_2: String,
    /// One of the 16 link types (`parent`, `child`, `spouse`, ...).
    pub link_type: String,
    /// Creation time (ISO-8601, UTC); null for old documents without one.
    pub created_at: Option<String>,
}

impl From<LinkDoc> for LinkOut {
    fn from(l: LinkDoc) -> Self {
        LinkOut {
            id: l.id.to_hex(),
            user_id: l.user_id,
            person_id_1: l.person_id_1,
            person_id_2: l.person_id_2,
            link_type: l.link_type,
            created_at: l.created_at.map(iso),
        }
    }
}

/// `POST /api/links` body.
#[derive(Debug, Object)]
pub struct NewLinkBody {
    /// First person's id (24 hex digits), in the caller's tree.
    #[oai(validator(max_length = 64))]
    pub person_id_1: String,
    /// Second person's id (24 hex digits), in the caller's tree, not the first.
    #[oai(validator(max_length = 64))]
    pub person_id_2: String,
    /// One of the 16 link types: `parent`, `child`, `spouse`, `sibling`, `grandparent`,
    /// `grandchild`, `uncle_aunt`, `nephew_niece`, `cousin`, `step_parent`, `step_child`,
    /// `parent_in_law`, `child_in_law`, `sibling_in_law`, `godparent`, `godchild`
    /// (anything else: 400).
    #[oai(validator(max_length = 64))]
    pub link_type: String,
}

/// The contract's 400 for a link type outside the 16, listing the valid ones.
pub fn invalid_link_type(given: &str) -> ApiError {
    let valid: Vec<&str> = LinkType::ALL.iter().map(|t| t.as_str()).collect();
    ApiError::bad_request(format!(
        "Invalid link_type `{given}`: use one of {}",
        valid.join(", ")
    ))
}

fn link_not_found() -> ApiError {
    ApiError::not_found("Link not found")
}

/// The link routes.
pub struct LinksApi {
    /// Shared state.
    pub ctx: AppContext,
}

#[OpenApi(prefix_path = "/api", tag = "LinksTag::Links")]
impl LinksApi {
    /// Link two persons of the caller's tree.
    ///
    /// 422 for a malformed person id (the field is named) or the same person twice; 400 for
    /// a link type outside the 16; 404 `One or both persons not found` unless both persons
    /// belong to the caller's tree.
    #[oai(path = "/links", method = "post")]
    async fn create(
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
        body: JsonBody<NewLinkBody>,
    ) -> ApiResult<JsonOut<LinkOut>> {
        let body = body.0;
        let p1 = parse_object_id(&body.person_id_1).ok_or_else(|| {
            ApiError::unprocessable("person_id_1: not a person id (24 hex digits)")
        })?;
        let p2 = parse_object_id(&body.person_id_2).ok_or_else(|| {
            ApiError::unprocessable("person_id_2: not a person id (24 hex digits)")
        })?;
        if p1 == p2 {
            return Err(ApiError::unprocessable(
                "person_id_2: a person cannot be linked to themselves",
            ));
        }
        let link_type = LinkType::parse(body.link_type.trim())
            .ok_or_else(|| invalid_link_type(&body.link_type))?;
        let owner = auth.0.id_hex();
        let gw = &self.ctx.gateway;
        if !links::both_persons_owned(gw, &owner, p1, p2).await? {
            return Err(ApiError::not_found("One or both persons not found"));
        }
        // With an Idempotency-Key the id is the key's: a retry of a creation that happened
        // finds that link instead of adding a second one.
        let id = IdempotencyScope::id_for(req, "link");
        let link = links::insert_with_id(gw, id, &owner, p1, p2, link_type).await?;
        Ok(JsonOut(LinkOut::from(link)))
    }

    /// The caller's links.
    ///
    /// Oldest first, at most 500.
    #[oai(path = "/links", method = "get")]
    async fn list(&self, auth: BearerAuth) -> ApiResult<JsonOut<Vec<LinkOut>>> {
        let all = links::list_for_owner(&self.ctx.gateway, &auth.0.id_hex(), self.ctx.limits.items)
            .await?;
        Ok(JsonOut(all.into_iter().map(LinkOut::from).collect()))
    }

    /// Delete a link.
    ///
    /// 403 unless the caller owns the link or is an admin; 404 `Link not found`.
    #[oai(path = "/links/:id", method = "delete")]
    async fn delete(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<Message>> {
        let id = parse_object_id(&id.0).ok_or_else(link_not_found)?;
        let gw = &self.ctx.gateway;
        let link = links::find_by_id(gw, id)
            .await?
            .ok_or_else(link_not_found)?;
        if link.user_id != auth.0.id_hex() && !auth.0.is_admin() {
            return Err(ApiError::forbidden(
                "Not allowed: only the tree's owner or an admin may delete this link",
            ));
        }
        links::delete(gw, id, &link.user_id).await?;
        Ok(Message::json("Link deleted"))
    }
}
