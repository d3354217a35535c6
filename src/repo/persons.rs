//! The `persons` collection: the people of each user's tree (`user_id` is the owner's hex id).
//!
//! Only fields of [`PersonInput`] / [`PersonUpdate`] are ever written, so nothing else can
//! get into a tree. Deleting a person deletes its links first ([`delete_with_links`]): a
//! failure in between leaves the person without some links, never a link to nobody, and a
//! retry finishes the job. Every write raises the owner's tree version after it
//! ([`super::tree_version`]).

use bson::oid::ObjectId;
use bson::{Document, RawDocument, doc};
use mongodb::Collection;
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use super::dates::{self, opt_date};
use super::links;
use super::raw::{self, FromRaw, Seen};
use super::text::{self, flag, opt_text, text};
use super::tree_version;
use crate::db::{DbError, Gateway};
use crate::domain::enums::Gender;
use crate::domain::person::{PersonInput, PersonUpdate};

/// Collection name.
pub const PERSONS: &str = "persons";

/// A person document, as the old service wrote it (every optional field may be missing or
/// null).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersonDoc {
    /// Id.
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// The owner's user id (hex).
    #[serde(default, deserialize_with = "text")]
    pub user_id: String,
    /// First name.
    #[serde(default, deserialize_with = "text")]
    pub first_name: String,
    /// Last name.
    #[serde(default, deserialize_with = "text")]
    pub last_name: String,
    /// `male`, `female` or `unknown` (old documents may hold anything: read as unknown).
    #[serde(default, deserialize_with = "opt_text")]
    pub gender: Option<String>,
    /// Birth date as typed.
    #[serde(default, deserialize_with = "opt_text")]
    pub birth_date: Option<String>,
    /// Birth place.
    #[serde(default, deserialize_with = "opt_text")]
    pub birth_place: Option<String>,
    /// Death date as typed.
    #[serde(default, deserialize_with = "opt_text")]
    pub death_date: Option<String>,
    /// Death place.
    #[serde(default, deserialize_with = "opt_text")]
    pub death_place: Option<String>,
    /// Photo, base64.
    #[serde(default, deserialize_with = "opt_text")]
    pub photo: Option<String>,
    /// Notes.
    #[serde(default, deserialize_with = "opt_text")]
    pub notes: Option<String>,
    /// Geographic branch.
    #[serde(default, deserialize_with = "opt_text")]
    pub geographic_branch: Option<String>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_date")]
    pub created_at: Option<bson::DateTime>,
    /// True for persons made in preview mode (always false for persons of a tree).
    #[serde(default, deserialize_with = "flag")]
    pub is_preview: bool,
}

impl PersonDoc {
    /// A new person of `owner`'s tree with id `id`, from a creation body.
    pub fn new(id: ObjectId, owner: &str, input: PersonInput, is_preview: bool) -> PersonDoc {
        PersonDoc {
            id,
            user_id: owner.to_string(),
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
            created_at: Some(crate::domain::time::now()),
            is_preview,
        }
    }

    /// The gender; missing or unknown values read as [`Gender::Unknown`].
    pub fn gender(&self) -> Gender {
        self.gender
            .as_deref()
            .and_then(Gender::parse)
            .unwrap_or(Gender::Unknown)
    }
}

impl FromRaw for PersonDoc {
    /// What `Deserialize` reads, in place (the tree's and the list's hot path).
    fn from_raw(doc: &RawDocument) -> Result<Self, String> {
        let mut seen = Seen::default();
        let mut id = None;
        let mut p = PersonDoc {
            id: ObjectId::from_bytes([0; 12]),
            user_id: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            gender: None,
            birth_date: None,
            birth_place: None,
            death_date: None,
            death_place: None,
            photo: None,
            notes: None,
            geographic_branch: None,
            created_at: None,
            is_preview: false,
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
                    p.created_at = dates::from_raw_ref(value);
                    continue;
                }
                "is_preview" => {
                    seen.first(2, key)?;
                    p.is_preview = text::flag_ref(value);
                    continue;
                }
                "user_id" => {
                    seen.first(3, key)?;
                    p.user_id = text::from_raw_ref(value).unwrap_or_default();
                    continue;
                }
                "first_name" => {
                    seen.first(4, key)?;
                    p.first_name = text::from_raw_ref(value).unwrap_or_default();
                    continue;
                }
                "last_name" => {
                    seen.first(5, key)?;
                    p.last_name = text::from_raw_ref(value).unwrap_or_default();
                    continue;
                }
                "gender" => (6, &mut p.gender),
                "birth_date" => (7, &mut p.birth_date),
                "birth_place" => (8, &mut p.birth_place),
                "death_date" => (9, &mut p.death_date),
                "death_place" => (10, &mut p.death_place),
                "photo" => (11, &mut p.photo),
                "notes" => (12, &mut p.notes),
                "geographic_branch" => (13, &mut p.geographic_branch),
                _ => continue,
            };
            seen.first(i, key)?;
            *slot = text::from_raw_ref(value);
        }
        p.id = id.ok_or("missing field `_id`")?;
        Ok(p)
    }
}

/// The `$set` document of a partial update: only the fields present.
pub fn update_document(update: &PersonUpdate) -> Document {
    let mut set = Document::new();
    let mut put = |key: &str, value: &Option<String>| {
        if let Some(v) = value {
            set.insert(key, v.clone());
        }
    };
    put("first_name", &update.first_name);
    put("last_name", &update.last_name);
    put("birth_date", &update.birth_date);
    put("birth_place", &update.birth_place);
    put("death_date", &update.death_date);
    put("death_place", &update.death_place);
    put("photo", &update.photo);
    put("notes", &update.notes);
    put("geographic_branch", &update.geographic_branch);
    if let Some(g) = update.gender {
        set.insert("gender", g.as_str());
    }
    set
}

/// Inserts a new person into `owner`'s tree (a fresh ObjectId) and returns it.
pub async fn insert(
    gw: &Gateway,
    owner: &str,
    input: PersonInput,
    is_preview: bool,
) -> Result<PersonDoc, DbError> {
    insert_with_id(gw, ObjectId::new(), owner, input, is_preview).await
}

/// Inserts a person with a chosen id, idempotently: when a person with this id exists
/// already in `owner`'s tree (a retried write), that one is returned. For callers that
/// derive ids deterministically so a retried sequence of writes converges without
/// duplicates. A person with this id in another tree is a [`DbError::DuplicateKey`].
pub async fn insert_with_id(
    gw: &Gateway,
    id: ObjectId,
    owner: &str,
    input: PersonInput,
    is_preview: bool,
) -> Result<PersonDoc, DbError> {
    let person = PersonDoc::new(id, owner, input, is_preview);
    let doc = person.clone();
    let inserted = gw
        .run(
            "insert_one",
            PERSONS,
            |c: Collection<PersonDoc>| async move { c.insert_one(doc).await.map(|_| ()) },
        )
        .await;
    let person = match inserted {
        Ok(()) => person,
        Err(DbError::DuplicateKey(key)) => match find_owned(gw, id, owner).await? {
            // A retried write: its first attempt may have failed before raising the version.
            Some(existing) => existing,
            None => return Err(DbError::DuplicateKey(key)),
        },
        Err(e) => return Err(e),
    };
    tree_version::bump(gw, owner).await?;
    Ok(person)
}

/// Person `id`, whoever owns it.
pub async fn find_by_id(gw: &Gateway, id: ObjectId) -> Result<Option<PersonDoc>, DbError> {
    gw.run("find_one", PERSONS, |c: Collection<PersonDoc>| async move {
        c.find_one(doc! { "_id": id }).await
    })
    .await
}

/// Person `id` if it belongs to `owner`'s tree.
pub async fn find_owned(
    gw: &Gateway,
    id: ObjectId,
    owner: &str,
) -> Result<Option<PersonDoc>, DbError> {
    let filter = doc! { "_id": id, "user_id": owner };
    gw.run("find_one", PERSONS, |c: Collection<PersonDoc>| async move {
        c.find_one(filter).await
    })
    .await
}

/// The persons of `owner`'s tree, oldest first (by id), at most `limit`.
pub async fn list_for_owner(
    gw: &Gateway,
    owner: &str,
    limit: i64,
) -> Result<Vec<PersonDoc>, DbError> {
    let filter = doc! { "user_id": owner };
    raw::find_sorted_raw(gw, PERSONS, filter, doc! { "_id": 1 }, limit).await
}

/// How many persons `owner`'s tree holds.
pub async fn count_for_owner(gw: &Gateway, owner: &str) -> Result<u64, DbError> {
    let filter = doc! { "user_id": owner };
    gw.run(
        "count_documents",
        PERSONS,
        |c: Collection<PersonDoc>| async move { c.count_documents(filter).await },
    )
    .await
}

/// How many of `ids` belong to `owner`'s tree (duplicates in `ids` count once).
pub async fn count_owned(gw: &Gateway, owner: &str, ids: &[ObjectId]) -> Result<u64, DbError> {
    let filter = doc! { "_id": { "$in": ids.to_vec() }, "user_id": owner };
    gw.run(
        "count_documents",
        PERSONS,
        |c: Collection<PersonDoc>| async move { c.count_documents(filter).await },
    )
    .await
}

/// Applies a partial update to person `id` and returns the updated person (`None` when it
/// does not exist). Only the fields of [`PersonUpdate`] that are present are written; an
/// empty update reads the person unchanged.
pub async fn update(
    gw: &Gateway,
    id: ObjectId,
    update: &PersonUpdate,
) -> Result<Option<PersonDoc>, DbError> {
    let set = update_document(update);
    if set.is_empty() {
        return find_by_id(gw, id).await;
    }
    let updated = gw
        .run(
            "find_one_and_update",
            PERSONS,
            |c: Collection<PersonDoc>| async move {
                c.find_one_and_update(doc! { "_id": id }, doc! { "$set": set })
                    .return_document(ReturnDocument::After)
                    .await
            },
        )
        .await?;
    if let Some(person) = &updated {
        tree_version::bump(gw, &person.user_id).await?;
    }
    Ok(updated)
}

/// Deletes person `id` of `owner`'s tree and every link that names it, links first. True
/// when the person existed. Safe to retry after a failure halfway.
pub async fn delete_with_links(gw: &Gateway, id: ObjectId, owner: &str) -> Result<bool, DbError> {
    links::delete_naming(gw, &[id.to_hex()], owner).await?;
    tree_version::delete_then_raise(gw, PERSONS, id, owner).await
}

/// The ids (hex) of every person of `owner`'s tree.
async fn ids_of_owner(gw: &Gateway, owner: &str) -> Result<Vec<String>, DbError> {
    let filter = doc! { "user_id": owner };
    gw.run("distinct", PERSONS, |c: Collection<PersonDoc>| async move {
        c.distinct("_id", filter).await.map(|ids| {
            ids.into_iter()
                .filter_map(|id| id.as_object_id().map(|oid| oid.to_hex()))
                .collect()
        })
    })
    .await
}

/// Deletes every person of `owner`'s tree, and every link naming one of them in another
/// tree (old data; those trees' versions are raised). `owner`'s own links are the caller's
/// to delete first: see [`links::delete_for_owner`]. Returns how many persons.
pub async fn delete_for_owner(gw: &Gateway, owner: &str) -> Result<u64, DbError> {
    let ids = ids_of_owner(gw, owner).await?;
    links::delete_naming(gw, &ids, owner).await?;
    let filter = doc! { "user_id": owner };
    let write =
        gw.run(
            "delete_many",
            PERSONS,
            |c: Collection<PersonDoc>| async move {
                c.delete_many(filter).await.map(|r| r.deleted_count)
            },
        );
    tree_version::after(gw, owner, write).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_document_holds_only_present_fields() {
        let u = PersonUpdate {
            notes: Some(String::new()),
            gender: Some(Gender::Female),
            ..Default::default()
        };
        assert_eq!(
            update_document(&u),
            doc! { "notes": "", "gender": "female" }
        );
        assert!(update_document(&PersonUpdate::default()).is_empty());
    }

    #[test]
    fn an_old_document_reads_with_defaults() {
        let d = doc! {
            "_id": ObjectId::new(),
            "user_id": "6574a5b2c3d4e5f60718293a",
            "first_name": "Ada",
            "last_name": "L",
            "gender": "M",
            "photo": bson::Bson::Null,
            "created_at": "2024-01-02T03:04:05",
            "algerian_branch": "x",
        };
        let p: PersonDoc = bson::from_document(d).unwrap();
        assert_eq!(p.gender(), Gender::Unknown);
        assert_eq!(p.photo, None);
        assert!(!p.is_preview);
        assert!(p.created_at.is_some());
    }
}
