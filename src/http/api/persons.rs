//! `/api/persons`: the persons of the caller's tree, and the person object other routes
//! answer ([`PersonOut`]).
//!
//! Reading is for the owner only (someone else's person is 404, as if it did not exist);
//! changing and deleting are for the owner or an admin (403 otherwise). Deleting a person
//! deletes its links first.

use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use serde::Serialize;

use super::body::JsonBody;
use super::json_out::JsonOut;
use super::message::Message;
use crate::domain::enums::Gender;
use crate::domain::ids::parse_object_id;
use crate::domain::person::{PersonInput, PersonUpdate};
use crate::domain::time::iso;
use crate::http::context::AppContext;
use crate::http::error::{ApiError, ApiResult};
use crate::http::idempotency::IdempotencyScope;
use crate::http::security::{AuthUser, BearerAuth};
use crate::repo::persons::{self, PersonDoc};

/// API description tags.
#[derive(Tags)]
enum PersonsTag {
    /// The persons of the caller's tree.
    Persons,
}

/// A person as the API shows it.
// Answered with `JsonOut`: serde writes it, so no serde renames (see json_out.rs).
#[derive(Debug, Clone, Object, Serialize)]
pub struct PersonOut {
    /// Id (24 hex digits).
    pub id: String,
    /// The tree owner's user id.
    pub user_id: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// `male`, `female` or `unknown`.
    pub gender: Gender,
    /// Birth date as typed.
    pub birth_date: Option<String>,
    /// Birth place.
    pub birth_place: Option<String>,
    /// Death date as typed.
    pub death_date: Option<String>,
    /// Death place.
    pub death_place: Option<String>,
    /// Photo, base64.
    pub photo: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// Geographic branch.
    pub geographic_branch: Option<String>,
    /// Creation time (ISO-8601, UTC); null for old documents without one.
    pub created_at: Option<String>,
    /// Always false for persons of a tree.
    pub is_preview: bool,
}

impl From<PersonDoc> for PersonOut {
    fn from(p: PersonDoc) -> Self {
        let gender = p.gender();
        PersonOut {
            id: p.id.to_hex(),
            user_id: p.user_id,
            first_name: p.first_name,
            last_name: p.last_name,
            gender,
            birth_date: p.birth_date,
            birth_place: p.birth_place,
            death_date: p.death_date,
            death_place: p.death_place,
            photo: p.photo,
            notes: p.notes,
            geographic_branch: p.geographic_branch,
            created_at: p.created_at.map(iso),
            is_preview: p.is_preview,
        }
    }
}

fn person_not_found() -> ApiError {
    ApiError::not_found("Person not found")
}

/// Names of an update trimmed; a blank name is refused with the field's name.
fn normalized_update(mut update: PersonUpdate) -> Result<PersonUpdate, String> {
    for (field, value) in [
        ("first_name", &mut update.first_name),
        ("last_name", &mut update.last_name),
    ] {
        if let Some(v) = value {
            *v = v.trim().to_string();
            if v.is_empty() {
                return Err(format!("{field} must not be blank"));
            }
        }
    }
    Ok(update)
}

/// The person the path names, if the caller may change it: 404 when it does not exist
/// (or the id is malformed), 403 unless the caller owns it or is an admin.
async fn changeable(ctx: &AppContext, user: &AuthUser, id: &str) -> ApiResult<PersonDoc> {
    let id = parse_object_id(id).ok_or_else(person_not_found)?;
    let person = persons::find_by_id(&ctx.gateway, id)
        .await?
        .ok_or_else(person_not_found)?;
    if person.user_id != user.id_hex() && !user.is_admin() {
        return Err(ApiError::forbidden(
            "Not allowed: only the tree's owner or an admin may change this person",
        ));
    }
    Ok(person)
}

/// The person routes.
pub struct PersonsApi {
    /// Shared state.
    pub ctx: AppContext,
}

#[OpenApi(prefix_path = "/api", tag = "PersonsTag::Persons")]
impl PersonsApi {
    /// Add a person to the caller's tree.
    ///
    /// Unknown fields are ignored. 422 for a blank name, an invalid gender or an over-long
    /// field (the photo, base64, may be up to `PHOTO_MAX_BYTES`, 4 MiB by default; bodies
    /// over the request limit get 413); 400 when the tree already holds
    /// `MAX_PERSONS_PER_OWNER` persons (1000 by default).
    #[oai(path = "/persons", method = "post")]
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
        body: JsonBody<PersonInput>,
    ) -> ApiResult<JsonOut<PersonOut>> {
        let input = body.0.normalized().map_err(ApiError::unprocessable)?;
        self.ctx.check_photo(input.photo.as_deref())?;
        let owner = auth.0.id_hex();
        // With an Idempotency-Key the id is the key's: a retry of a creation that happened
        // (its answer lost) finds that person instead of adding a second one.
        let id = IdempotencyScope::id_for(req, "person");
        // Counted before the insert: simultaneous creations may pass the cap by as many.
        let max = self.ctx.caps.persons_per_owner;
        if persons::count_for_owner(&self.ctx.gateway, &owner).await? >= max {
            if let Some(done) = persons::find_owned(&self.ctx.gateway, id, &owner).await? {
                return Ok(JsonOut(PersonOut::from(done)));
            }
            return Err(ApiError::bad_request(format!(
                "Your tree holds at most {max} persons: delete some before adding more"
            )));
        }
        let person = persons::insert_with_id(&self.ctx.gateway, id, &owner, input, false).await?;
        Ok(JsonOut(PersonOut::from(person)))
    }

    /// The caller's persons.
    ///
    /// Oldest first, at most 500.
    #[oai(path = "/persons", method = "get")]
    async fn list(&self, auth: BearerAuth) -> ApiResult<JsonOut<Vec<PersonOut>>> {
        let all =
            persons::list_for_owner(&self.ctx.gateway, &auth.0.id_hex(), self.ctx.limits.items)
                .await?;
        Ok(JsonOut(all.into_iter().map(PersonOut::from).collect()))
    }

    /// One of the caller's persons.
    ///
    /// 404 `Person not found` when it does not exist or belongs to another tree.
    #[oai(path = "/persons/:id", method = "get")]
    async fn get(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<JsonOut<PersonOut>> {
        let id = parse_object_id(&id.0).ok_or_else(person_not_found)?;
        let person = persons::find_owned(&self.ctx.gateway, id, &auth.0.id_hex())
            .await?
            .ok_or_else(person_not_found)?;
        Ok(JsonOut(PersonOut::from(person)))
    }

    /// Change some fields of a person.
    ///
    /// Only the fields present change. 400 `No data to update` for an empty update; 403
    /// unless the caller owns the person or is an admin; 404 `Person not found`.
    #[oai(path = "/persons/:id", method = "put")]
    async fn update(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        body: JsonBody<PersonUpdate>,
    ) -> ApiResult<JsonOut<PersonOut>> {
        let person = changeable(&self.ctx, &auth.0, &id.0).await?;
        let update = normalized_update(body.0).map_err(ApiError::unprocessable)?;
        self.ctx.check_photo(update.photo.as_deref())?;
        if update.is_empty() {
            return Err(ApiError::bad_request("No data to update"));
        }
        let updated = persons::update(&self.ctx.gateway, person.id, &update)
            .await?
            .ok_or_else(person_not_found)?;
        Ok(JsonOut(PersonOut::from(updated)))
    }

    /// Delete a person and every link that names it.
    ///
    /// 403 unless the caller owns the person or is an admin; 404 `Person not found`.
    #[oai(path = "/persons/:id", method = "delete")]
    async fn delete(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<Message>> {
        let person = changeable(&self.ctx, &auth.0, &id.0).await?;
        persons::delete_with_links(&self.ctx.gateway, person.id, &person.user_id).await?;
        Ok(Message::json("Person deleted"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_names_are_trimmed_and_not_blank() {
        let u = normalized_update(PersonUpdate {
            first_name: Some(" Ada ".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(u.first_name.as_deref(), Some("Ada"));
        let err = normalized_update(PersonUpdate {
            last_name: Some("  ".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err, "last_name must not be blank");
    }
}
