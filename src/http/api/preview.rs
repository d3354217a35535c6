//! Preview sessions (`/api/preview/...`): build a small tree without an account, then convert
//! it into the caller's tree once registered. No authentication except for `convert`.
//!
//! Changes to one session are serialized in this process ([`KeyedLocks`]) as well as
//! guarded by a compare-and-set on the array sizes: MongoDB applies a single-document update
//! atomically, so the compare-and-set alone keeps the cap across replicas there, but
//! FerretDB 1.x runs an update as read, modify, write back without isolation, so two
//! concurrent `$push`es to one session can lose one (and both pass the size check). The
//! in-process lock makes the cap hold on FerretDB for a single instance.
//!
//! Conversion writes persons, then links, then deletes the session. The new ObjectIds are
//! derived deterministically from (caller, session, item) ([`derived_id`]), and each step
//! inserts only the documents not there yet, so a conversion interrupted halfway (persons
//! in, links not) shows no dangling link, and a retry completes it without duplicates.

use std::collections::{HashMap, HashSet};

use bson::oid::ObjectId;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::body::JsonBody;
use super::links::invalid_link_type;
use super::locks::KeyedLocks;
use crate::domain::enums::{Gender, LinkType};
use crate::domain::person::PersonInput;
use crate::domain::time::iso;
use crate::http::context::AppContext;
use crate::http::error::{ApiError, ApiResult};
use crate::http::idempotency::IdempotencyScope;
use crate::http::rate_limit::{LimitedResult, Per, Scope, TooManyRequests};
use crate::http::security::BearerAuth;
use crate::repo::links::LinkDoc;
use crate::repo::persons::{self, PersonDoc};
use crate::repo::preview::{self, PreviewLink, PreviewPerson, PreviewSessionDoc};
use crate::repo::tree_import;

/// At most this many persons in a session.
pub const MAX_PERSONS: usize = 10;
/// At most this many links in a session (10 persons, a few links each).
pub const MAX_LINKS: usize = 100;
/// Compare-and-set attempts before giving up under contention.
const CAS_ATTEMPTS: usize = 20;

/// API description tag.
#[derive(Tags)]
pub enum PreviewTag {
    /// Try the tree without an account (sessions of at most 10 persons, kept 24 hours).
    Preview,
}

/// A person inside a preview session.
#[derive(Debug, Clone, Object)]
pub struct PreviewPersonOut {
    /// UUID v4.
    pub id: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// `male`, `female` or `unknown`.
    pub gender: Option<String>,
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
    /// When it was added (ISO-8601 UTC).
    pub created_at: Option<String>,
}

/// A link inside a preview session.
#[derive(Debug, Clone, Object)]
pub struct PreviewLinkOut {
    /// UUID v4.
    pub id: String,
    /// First person's UUID.
    pub person_id_1: String,
    /// Second person's UUID.
    pub person_id_2: String,
    /// One of the 16 link types.
    pub link_type: String,
    /// When it was added (ISO-8601 UTC).
    pub created_at: Option<String>,
}

/// A preview session.
#[derive(Debug, Clone, Object)]
pub struct PreviewSessionOut {
    /// The session's token (UUID v4): keep it to come back.
    pub session_token: String,
    /// Persons, in insertion order (at most 10).
    pub persons: Vec<PreviewPersonOut>,
    /// Links, in insertion order.
    pub links: Vec<PreviewLinkOut>,
    /// Creation time (ISO-8601 UTC).
    pub created_at: Option<String>,
    /// Expiry time, 24 hours after creation (ISO-8601 UTC).
    pub expires_at: String,
}

/// `POST /api/preview/{token}/link` body.
#[derive(Debug, Clone, Object)]
pub struct PreviewLinkBody {
    /// First person's UUID, in the session.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub person_id_1: String,
    /// Second person's UUID, in the session, not the first.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub person_id_2: String,
    /// One of the 16 link types (anything else: 400, as for `/api/links`).
    #[oai(validator(max_length = 64))]
    pub link_type: String,
}

/// `POST /api/preview/{token}/convert` answer.
#[derive(Debug, Clone, Object)]
pub struct ConvertOut {
    /// What happened.
    pub message: String,
    /// How many persons were copied into the caller's tree.
    pub persons_converted: u64,
}

impl From<&PreviewPerson> for PreviewPersonOut {
    fn from(p: &PreviewPerson) -> Self {
        Self {
            id: p.id.clone(),
            first_name: p.first_name.clone(),
            last_name: p.last_name.clone(),
            gender: p.gender.clone(),
            birth_date: p.birth_date.clone(),
            birth_place: p.birth_place.clone(),
            death_date: p.death_date.clone(),
            death_place: p.death_place.clone(),
            photo: p.photo.clone(),
            notes: p.notes.clone(),
            geographic_branch: p.geographic_branch.clone(),
            created_at: p.created_at.map(iso),
        }
    }
}

impl From<&PreviewSessionDoc> for PreviewSessionOut {
    fn from(s: &PreviewSessionDoc) -> Self {
        Self {
            session_token: s.session_token.clone(),
            persons: s.persons.iter().map(Into::into).collect(),
            links: s
                .links
                .iter()
                .map(|l| PreviewLinkOut {
                    id: l.id.clone(),
                    person_id_1: l.person_id_1.clone(),
                    person_id_2: l.person_id_2.clone(),
                    link_type: l.link_type.clone(),
                    created_at: l.created_at.map(iso),
                })
                .collect(),
            created_at: s.created_at.map(iso),
            expires_at: iso(s.effective_expiry()),
        }
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("Preview session not found")
}

/// The ObjectId a preview item gets in `user`'s tree: the session's creation second, then
/// 8 bytes of FNV-1a over (kind, user, session token, item UUID). The same conversion
/// always yields the same ids (a retry finds what it already wrote); two users converting
/// the same session get different ids.
pub fn derived_id(session: &PreviewSessionDoc, user: &str, kind: &str, item: &str) -> ObjectId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        "aila-preview-convert",
        kind,
        user,
        &session.session_token,
        item,
    ] {
        for b in part.bytes().chain(std::iter::once(0u8)) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(
        &session
            .id
            .timestamp()
            .timestamp_millis()
            .div_euclid(1000)
            .to_be_bytes()[4..],
    );
    bytes[4..].copy_from_slice(&hash.to_be_bytes());
    ObjectId::from_bytes(bytes)
}

/// The preview routes.
pub struct PreviewApi {
    /// Shared state.
    pub ctx: AppContext,
    /// Per-session locks.
    pub locks: KeyedLocks,
}

impl PreviewApi {
    /// The preview routes over `ctx`.
    pub fn new(ctx: AppContext) -> Self {
        Self {
            ctx,
            locks: KeyedLocks::default(),
        }
    }

    /// The live session named `token`: 404 when unknown (or not a UUID), 410 when expired
    /// (the expired session is deleted first).
    async fn live_session(&self, token: &str) -> ApiResult<PreviewSessionDoc> {
        if uuid::Uuid::parse_str(token).is_err() {
            return Err(not_found());
        }
        let session = preview::find_by_token(&self.ctx.gateway, token)
            .await?
            .ok_or_else(not_found)?;
        if session.is_expired() {
            preview::delete(&self.ctx.gateway, session.id).await?;
            return Err(ApiError::gone(
                "Preview session expired: start a new one with POST /api/preview/session",
            ));
        }
        Ok(session)
    }

    /// The write rate limits: per client address and per session.
    fn check_write(&self, req: &poem::Request, token: &str) -> Result<(), TooManyRequests> {
        let limits = &self.ctx.rate_limits;
        limits.check(Scope::PreviewWrite, Per::Address, &self.ctx.client_key(req))?;
        limits.check(Scope::PreviewWrite, Per::Account, token)
    }

    /// 400 when adding `added` bytes would make the session larger than
    /// `PREVIEW_SESSION_MAX_BYTES` (MongoDB refuses documents over 16 MiB).
    fn check_size(&self, session: &PreviewSessionDoc, added: usize) -> ApiResult<()> {
        let max = self.ctx.caps.preview_session_max_bytes;
        // A few bytes of array-index overhead per element on top of the element itself.
        let after = preview::bson_size(session) + added + 16;
        if after > max {
            return Err(ApiError::bad_request(format!(
                "Preview session too large: at most {max} bytes in all (this addition would make {after}); use smaller photos or create an account"
            )));
        }
        Ok(())
    }

    fn contention() -> ApiError {
        ApiError::conflict("The preview session changed meanwhile: try again")
    }
}

#[OpenApi(prefix_path = "/api", tag = "PreviewTag::Preview")]
impl PreviewApi {
    /// Start a preview session
    ///
    /// An empty session that lives 24 hours. No account needed. 429 with `Retry-After`
    /// after too many sessions from one address.
    #[oai(path = "/preview/session", method = "post")]
    async fn create(
        &self,
        req: &poem::Request,
        /// Optional `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header): a
        /// unique key per intended operation (e.g. a UUID). A repeat with the same key and
        /// body gets the first answer again, with `Idempotent-Replayed: true`, and changes
        /// nothing; 409 with `Retry-After` while the first is still processed; 422 for the
        /// same key with another body; 400 for a malformed key.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
    ) -> LimitedResult<Json<PreviewSessionOut>> {
        let client = self.ctx.client_key(req);
        (self.ctx.rate_limits).check(Scope::PreviewSession, Per::Address, &client)?;
        let mut session = PreviewSessionDoc::new();
        // With an Idempotency-Key the id (not the token: it stays random) is the key's, so
        // a retry of a creation that happened answers that session.
        session.id = IdempotencyScope::id_for(req, "preview-session");
        let session = preview::insert_or_existing(&self.ctx.gateway, session).await?;
        Ok(Json((&session).into()))
    }

    /// Read a preview session
    ///
    /// 404 when unknown; 410 when expired (the session is then removed).
    #[oai(path = "/preview/:token", method = "get")]
    async fn get(&self, token: Path<String>) -> ApiResult<Json<PreviewSessionOut>> {
        let session = self.live_session(&token).await?;
        Ok(Json((&session).into()))
    }

    /// Add a person to a preview session
    ///
    /// At most 10 persons per session (400 `Preview mode limited to 10 members`), at most
    /// `PREVIEW_SESSION_MAX_BYTES` (12 MiB) in all (400 `Preview session too large`), a
    /// photo of at most `PHOTO_MAX_BYTES` (422). 429 with
    /// `Retry-After` after too many writes from one address or to one session.
    #[oai(path = "/preview/:token/person", method = "post")]
    async fn add_person(
        &self,
        /// Optional `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header): a
        /// unique key per intended operation (e.g. a UUID). A repeat with the same key and
        /// body gets the first answer again, with `Idempotent-Replayed: true`, and changes
        /// nothing; 409 with `Retry-After` while the first is still processed; 422 for the
        /// same key with another body; 400 for a malformed key.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        req: &poem::Request,
        token: Path<String>,
        body: JsonBody<PersonInput>,
    ) -> LimitedResult<Json<PreviewSessionOut>> {
        self.check_write(req, &token)?;
        let input = body.0.normalized().map_err(ApiError::unprocessable)?;
        self.ctx.check_photo(input.photo.as_deref())?;
        let person = PreviewPerson {
            // With an Idempotency-Key the id is the key's (a retry finds its person).
            id: IdempotencyScope::uuid_for(req, "preview-person").to_string(),
            first_name: input.first_name,
            last_name: input.last_name,
            gender: Some(input.gender.unwrap_or(Gender::Unknown).as_str().to_string()),
            birth_date: input.birth_date,
            birth_place: input.birth_place,
            death_date: input.death_date,
            death_place: input.death_place,
            photo: input.photo,
            notes: input.notes,
            geographic_branch: input.geographic_branch,
            created_at: Some(bson::DateTime::now()),
        };
        let _guard = self.locks.lock(&token).await;
        for _ in 0..CAS_ATTEMPTS {
            let mut session = self.live_session(&token).await?;
            if session.persons.iter().any(|p| p.id == person.id) {
                // A retry of an addition that happened.
                return Ok(Json((&session).into()));
            }
            if session.persons.len() >= MAX_PERSONS {
                return Err(ApiError::bad_request("Preview mode limited to 10 members").into());
            }
            self.check_size(&session, preview::bson_size(&person))?;
            let expected = session.persons.len();
            if preview::push_person(&self.ctx.gateway, session.id, expected, &person).await? {
                session.persons.push(person);
                return Ok(Json((&session).into()));
            }
        }
        Err(Self::contention().into())
    }

    /// Add a link to a preview session
    ///
    /// Both persons must be in the session (404 `One or both persons not found`) and
    /// distinct (422); 400 for a link type outside the 16. 429 with `Retry-After` after too
    /// many writes from one address or to one session.
    #[oai(path = "/preview/:token/link", method = "post")]
    async fn add_link(
        &self,
        /// Optional `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header): a
        /// unique key per intended operation (e.g. a UUID). A repeat with the same key and
        /// body gets the first answer again, with `Idempotent-Replayed: true`, and changes
        /// nothing; 409 with `Retry-After` while the first is still processed; 422 for the
        /// same key with another body; 400 for a malformed key.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        req: &poem::Request,
        token: Path<String>,
        body: JsonBody<PreviewLinkBody>,
    ) -> LimitedResult<Json<PreviewSessionOut>> {
        self.check_write(req, &token)?;
        let input = body.0;
        let link_type = LinkType::parse(input.link_type.trim())
            .ok_or_else(|| invalid_link_type(&input.link_type))?;
        if input.person_id_1 == input.person_id_2 {
            return Err(ApiError::unprocessable(
                "person_id_2: a person cannot be linked to themselves",
            )
            .into());
        }
        let link = PreviewLink {
            id: IdempotencyScope::uuid_for(req, "preview-link").to_string(),
            person_id_1: input.person_id_1,
            person_id_2: input.person_id_2,
            link_type: link_type.as_str().to_string(),
            created_at: Some(bson::DateTime::now()),
        };
        let _guard = self.locks.lock(&token).await;
        for _ in 0..CAS_ATTEMPTS {
            let mut session = self.live_session(&token).await?;
            if session.links.iter().any(|l| l.id == link.id) {
                // A retry of an addition that happened.
                return Ok(Json((&session).into()));
            }
            let known = |id: &str| session.persons.iter().any(|p| p.id == id);
            if !known(&link.person_id_1) || !known(&link.person_id_2) {
                return Err(ApiError::not_found("One or both persons not found").into());
            }
            if session.links.len() >= MAX_LINKS {
                return Err(ApiError::bad_request(format!(
                    "Preview mode limited to {MAX_LINKS} links"
                ))
                .into());
            }
            self.check_size(&session, preview::bson_size(&link))?;
            let expected = session.links.len();
            if preview::push_link(&self.ctx.gateway, session.id, expected, &link).await? {
                session.links.push(link);
                return Ok(Json((&session).into()));
            }
        }
        Err(Self::contention().into())
    }

    /// Convert a preview session into your tree
    ///
    /// Copies the session's persons and links into the caller's tree with new ids (links
    /// re-pointed to the new persons), then deletes the session. Safe to retry after a
    /// failure: nothing is copied twice. 429 with `Retry-After` after too many writes from
    /// one address or to one session.
    #[oai(path = "/preview/:token/convert", method = "post")]
    async fn convert(
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
        token: Path<String>,
    ) -> LimitedResult<Json<ConvertOut>> {
        self.check_write(req, &token)?;
        let _guard = self.locks.lock(&token).await;
        let session = self.live_session(&token).await?;
        let user = auth.0.id_hex();
        let mut new_ids: HashMap<&str, ObjectId> = HashMap::new();
        let mut persons = Vec::with_capacity(session.persons.len());
        let mut seen = HashSet::new();
        for p in &session.persons {
            if !seen.insert(p.id.as_str()) {
                continue;
            }
            let id = derived_id(&session, &user, "person", &p.id);
            new_ids.insert(p.id.as_str(), id);
            let input = PersonInput {
                first_name: p.first_name.clone(),
                last_name: p.last_name.clone(),
                gender: p.gender.as_deref().and_then(Gender::parse),
                birth_date: p.birth_date.clone(),
                birth_place: p.birth_place.clone(),
                death_date: p.death_date.clone(),
                death_place: p.death_place.clone(),
                photo: p.photo.clone(),
                notes: p.notes.clone(),
                geographic_branch: p.geographic_branch.clone(),
            };
            persons.push(PersonDoc::new(id, &user, input, false));
        }
        let links: Vec<LinkDoc> = session
            .links
            .iter()
            .filter_map(|l| {
                Some(LinkDoc::new(
                    derived_id(&session, &user, "link", &l.id),
                    &user,
                    *new_ids.get(l.person_id_1.as_str())?,
                    *new_ids.get(l.person_id_2.as_str())?,
                    LinkType::parse(&l.link_type)?,
                ))
            })
            .collect();
        // The persons cap counts only those not converted yet (a retry after a failure
        // finds some already there).
        let ids: Vec<ObjectId> = persons.iter().map(|p| p.id).collect();
        let present = persons::count_owned(&self.ctx.gateway, &user, &ids).await?;
        let adding = (ids.len() as u64).saturating_sub(present);
        self.ctx.check_room_for_persons(&user, adding).await?;
        // Persons first, then links (which name them), then the session: each step only
        // inserts what is missing, so a retry after a failure converges.
        tree_import::insert_persons_missing(&self.ctx.gateway, &persons).await?;
        tree_import::insert_links_missing(&self.ctx.gateway, &links).await?;
        preview::delete(&self.ctx.gateway, session.id).await?;
        let n = persons.len() as u64;
        Ok(Json(ConvertOut {
            message: format!("Preview converted: {n} person(s) added to your tree"),
            persons_converted: n,
        }))
    }
}
