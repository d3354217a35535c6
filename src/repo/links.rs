//! The `family_links` collection: typed links between two persons of the same tree
//! (`user_id` is the owner's hex id; person ids are hex strings).
//!
//! Callers check that both persons belong to the tree before inserting
//! ([`both_persons_owned`]); deleting a person deletes its links first
//! ([`delete_for_person`], called by [`super::persons::delete_with_links`]). Every write
//! raises the owner's tree version after it ([`super::tree_version`]).

use bson::oid::ObjectId;
use bson::{Bson, Document, RawDocument, doc};
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use super::dates::{self, opt_date};
use super::persons;
use super::raw::{self, FromRaw, Seen};
use super::text::{self, text};
use super::tree_version;
use crate::db::{DbError, Gateway};
use crate::domain::enums::LinkType;

/// Collection name.
pub const FAMILY_LINKS: &str = "family_links";

/// A link document, as the old service wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkDoc {
    /// Id.
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// The owner's user id (hex).
    #[serde(default, deserialize_with = "text")]
    pub user_id: String,
    /// First person's id (hex).
    #[serde(default, deserialize_with = "text")]
    pub person_id_1: String,
    /// Second person's id (hex).
    #[serde(default, deserialize_with = "text")]
    pub person_id_2: String,
    /// One of the 16 link types (old documents may hold others: shown as stored).
    #[serde(default, deserialize_with = "text")]
    pub link_type: String,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_date")]
    pub created_at: Option<bson::DateTime>,
}

impl LinkDoc {
    /// A new link of `owner`'s tree with id `id`.
    pub fn new(
        id: ObjectId,
        owner: &str,
        person_id_1: ObjectId,
        person_id_2: ObjectId,
        link_type: LinkType,
    ) -> LinkDoc {
        LinkDoc {
            id,
            user_id: owner.to_string(),
            person_id_1: person_id_1.to_hex(),
            person_id_2: person_id_2.to_hex(),
            link_type: link_type.as_str().to_string(),
            created_at: Some(crate::domain::time::now()),
        }
    }
}

impl FromRaw for LinkDoc {
    /// What `Deserialize` reads, in place (the tree's and the list's hot path).
    fn from_raw(doc: &RawDocument) -> Result<Self, String> {
        let mut seen = Seen::default();
        let mut id = None;
        let mut l = LinkDoc {
            id: ObjectId::from_bytes([0; 12]),
            user_id: String::new(),
            person_id_1: String::new(),
            person_id_2: String::new(),
            link_type: String::new(),
            created_at: None,
        };
        for field in raw::fields(doc) {
            let (key, value) = field?;
            let (i, slot) = match key {
                "_id" => {
                    seen.first(0, key)?;
                    id = Some(raw::object_id(value)?);
                    continue;
                }
                "created_at" => {
                    seen.first(1, key)?;
                    l.created_at = dates::from_raw_ref(value);
                    continue;
                }
                "user_id" => (2, &mut l.user_id),
                "person_id_1" => (3, &mut l.person_id_1),
                "person_id_2" => (4, &mut l.person_id_2),
                "link_type" => (5, &mut l.link_type),
                _ => continue,
            };
            seen.first(i, key)?;
            *slot = text::from_raw_ref(value).unwrap_or_default();
        }
        l.id = id.ok_or("missing field `_id`")?;
        Ok(l)
    }
}

/// True when both persons exist in `owner`'s tree (the same person twice counts once).
pub async fn both_persons_owned(
    gw: &Gateway,
    owner: &str,
    person_id_1: ObjectId,
    person_id_2: ObjectId,
) -> Result<bool, DbError> {
    let wanted = if person_id_1 == person_id_2 { 1 } else { 2 };
    Ok(persons::count_owned(gw, owner, &[person_id_1, person_id_2]).await? == wanted)
}

/// Inserts a new link into `owner`'s tree (a fresh ObjectId) and returns it. The caller has
/// checked the persons ([`both_persons_owned`]).
pub async fn insert(
    gw: &Gateway,
    owner: &str,
    person_id_1: ObjectId,
    person_id_2: ObjectId,
    link_type: LinkType,
) -> Result<LinkDoc, DbError> {
    insert_with_id(
        gw,
        ObjectId::new(),
        owner,
        person_id_1,
        person_id_2,
        link_type,
    )
    .await
}

/// Inserts a link with a chosen id, idempotently: when a link with this id exists already
/// in `owner`'s tree (a retried write), that one is returned. For callers that derive ids
/// deterministically so a retried sequence of writes converges without duplicates. A link
/// with this id in another tree is a [`DbError::DuplicateKey`].
pub async fn insert_with_id(
    gw: &Gateway,
    id: ObjectId,
    owner: &str,
    person_id_1: ObjectId,
    person_id_2: ObjectId,
    link_type: LinkType,
) -> Result<LinkDoc, DbError> {
    let link = LinkDoc::new(id, owner, person_id_1, person_id_2, link_type);
    let doc = link.clone();
    let inserted = gw
        .run(
            "insert_one",
            FAMILY_LINKS,
            |c: Collection<LinkDoc>| async move { c.insert_one(doc).await.map(|_| ()) },
        )
        .await;
    let link = match inserted {
        Ok(()) => link,
        Err(DbError::DuplicateKey(key)) => match find_by_id(gw, link.id).await? {
            // A retried write: its first attempt may have failed before raising the version.
            Some(existing) if existing.user_id == link.user_id => existing,
            _ => return Err(DbError::DuplicateKey(key)),
        },
        Err(e) => return Err(e),
    };
    tree_version::bump(gw, owner).await?;
    Ok(link)
}

/// Link `id`, whoever owns it.
pub async fn find_by_id(gw: &Gateway, id: ObjectId) -> Result<Option<LinkDoc>, DbError> {
    gw.run(
        "find_one",
        FAMILY_LINKS,
        |c: Collection<LinkDoc>| async move { c.find_one(doc! { "_id": id }).await },
    )
    .await
}

/// The links of `owner`'s tree, oldest first (by id), at most `limit`.
pub async fn list_for_owner(
    gw: &Gateway,
    owner: &str,
    limit: i64,
) -> Result<Vec<LinkDoc>, DbError> {
    let filter = doc! { "user_id": owner };
    raw::find_sorted_raw(gw, FAMILY_LINKS, filter, doc! { "_id": 1 }, limit).await
}

/// Deletes link `id` of `owner`'s tree. False when there was none.
pub async fn delete(gw: &Gateway, id: ObjectId, owner: &str) -> Result<bool, DbError> {
    tree_version::delete_then_raise(gw, FAMILY_LINKS, id, owner).await
}

/// The filter of the links that name any of `person_ids` (hex) on either side.
fn naming(person_ids: &[String]) -> Document {
    // Old documents may hold a person id as an ObjectId rather than its hex string.
    let mut spellings: Vec<Bson> = Vec::with_capacity(person_ids.len() * 2);
    for id in person_ids {
        spellings.push(Bson::String(id.clone()));
        if let Some(oid) = crate::domain::ids::parse_object_id(id) {
            spellings.push(Bson::ObjectId(oid));
        }
    }
    doc! { "$or": [
        { "person_id_1": { "$in": spellings.clone() } },
        { "person_id_2": { "$in": spellings } },
    ] }
}

/// The owners other than `owner` of links naming any of `person_ids` (hex). The API only
/// links persons of one tree, but the old service's data may hold links across trees.
pub async fn other_owners_naming(
    gw: &Gateway,
    person_ids: &[String],
    owner: &str,
) -> Result<Vec<String>, DbError> {
    let filter = doc! { "$and": [naming(person_ids), { "user_id": { "$ne": owner } }] };
    gw.run(
        "distinct",
        FAMILY_LINKS,
        |c: Collection<LinkDoc>| async move {
            c.distinct("user_id", filter).await.map(|owners| {
                owners
                    .into_iter()
                    .filter_map(|o| o.as_str().map(str::to_string))
                    .collect()
            })
        },
    )
    .await
}

/// Deletes every link that names any of `person_ids` (hex) on either side, in any tree,
/// then raises the version of each tree other than `owner`'s that held one (the caller
/// raises `owner`'s own, with the write it belongs to). Returns how many were deleted.
pub async fn delete_naming(
    gw: &Gateway,
    person_ids: &[String],
    owner: &str,
) -> Result<u64, DbError> {
    if person_ids.is_empty() {
        return Ok(0);
    }
    let others = other_owners_naming(gw, person_ids, owner).await?;
    let filter = naming(person_ids);
    let deleted = gw
        .run(
            "delete_many",
            FAMILY_LINKS,
            |c: Collection<LinkDoc>| async move {
                c.delete_many(filter).await.map(|r| r.deleted_count)
            },
        )
        .await?;
    tree_version::bump_each(gw, others).await?;
    Ok(deleted)
}

/// Deletes every link of `owner`'s tree. Returns how many.
pub async fn delete_for_owner(gw: &Gateway, owner: &str) -> Result<u64, DbError> {
    let filter = doc! { "user_id": owner };
    let write = gw.run(
        "delete_many",
        FAMILY_LINKS,
        |c: Collection<LinkDoc>| async move {
            c.delete_many(filter).await.map(|r| r.deleted_count)
        },
    );
    tree_version::after(gw, owner, write).await
}
