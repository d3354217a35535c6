//! `GET /api/tree`: the caller's whole tree in one answer, kept by this replica until the
//! tree's version moves ([`super::tree_cache`]), and the tree object the shared tree route
//! answers too ([`TreeOut`]).

use poem_openapi::{Object, OpenApi, Tags};
use serde::Serialize;

use super::json_out::JsonBytes;
use super::links::LinkOut;
use super::persons::PersonOut;
use crate::db::{DbError, Gateway};
use crate::http::context::AppContext;
use crate::http::error::{ApiError, ApiResult};
use crate::http::security::BearerAuth;
use crate::repo::{links, persons};

/// API description tags.
#[derive(Tags)]
enum TreeTag {
    /// The caller's tree.
    Tree,
}

/// A tree: its persons and its links.
// Answered with `JsonOut`: serde writes it, so no serde renames (see json_out.rs).
#[derive(Debug, Clone, Object, Serialize)]
pub struct TreeOut {
    /// The persons, oldest first, at most 500.
    pub persons: Vec<PersonOut>,
    /// The links, oldest first, at most 500.
    pub links: Vec<LinkOut>,
}

/// The tree of `owner` (hex user id), each list capped at `limit`.
pub async fn load_tree(gw: &Gateway, owner: &str, limit: i64) -> Result<TreeOut, DbError> {
    // Both reads at once: the tree costs one round trip of latency, not two.
    let (persons, links) = tokio::try_join!(
        persons::list_for_owner(gw, owner, limit),
        links::list_for_owner(gw, owner, limit)
    )?;
    Ok(TreeOut {
        persons: persons.into_iter().map(PersonOut::from).collect(),
        links: links.into_iter().map(LinkOut::from).collect(),
    })
}

/// The tree route.
pub struct TreeApi {
    /// Shared state.
    pub ctx: AppContext,
}

#[OpenApi(prefix_path = "/api", tag = "TreeTag::Tree")]
impl TreeApi {
    /// The caller's tree: persons and links.
    ///
    /// Each list oldest first, at most 500.
    #[oai(path = "/tree", method = "get")]
    async fn tree(&self, auth: BearerAuth) -> ApiResult<JsonBytes<TreeOut>> {
        // The version came with the caller's user document (authentication read it).
        let (owner, version) = (auth.0.id(), auth.0.user.tree_version);
        if let Some(kept) = self.ctx.tree_cache.get(owner, version) {
            return Ok(JsonBytes::kept(kept));
        }
        let tree = load_tree(&self.ctx.gateway, &auth.0.id_hex(), self.ctx.limits.items).await?;
        let answer = JsonBytes::write(&tree).map_err(|e| {
            ApiError::internal(format!("the tree could not be written as JSON: {e}"))
        })?;
        self.ctx
            .tree_cache
            .put(owner, version, answer.bytes().clone());
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::enums::Gender;
    use crate::http::api::json_out::assert_same_json;

    fn person(n: u32, gender: Gender, full: bool) -> PersonOut {
        let some = |s: &str| full.then(|| s.to_string());
        PersonOut {
            id: format!("6574a5b2c3d4e5f6071829{n:02x}"),
            user_id: "6574a5b2c3d4e5f607182900".into(),
            first_name: format!("Zoé \"{n}\""),
            last_name: "d'Aïla\n\\".into(),
            gender,
            birth_date: some("1901-03-14"),
            birth_place: some("Saint-Étienne"),
            death_date: some("vers 1970"),
            death_place: some("Lyon"),
            photo: some("data:image/png;base64,iVBORw0KGgo="),
            notes: some("<b>notes</b> \u{1F333}"),
            geographic_branch: some("Rhône"),
            created_at: some("2026-11-28T23:31:56.198000Z"),
            is_preview: !full,
        }
    }

    #[test]
    fn serde_writes_a_tree_byte_for_byte_as_poem_openapi_did() {
        let tree = TreeOut {
            persons: vec![
                person(1, Gender::Male, true),
                person(2, Gender::Female, false),
                person(3, Gender::Unknown, true),
            ],
            links: vec![LinkOut {
                id: "6574a5b2c3d4e5f607182999".into(),
                user_id: "6574a5b2c3d4e5f607182900".into(),
                person_id_1: "6574a5b2c3d4e5f607182901".into(),
                person_id_2: "6574a5b2c3d4e5f607182902".into(),
                link_type: "uncle_aunt".into(),
                created_at: None,
            }],
        };
        assert_same_json(&tree);
        assert_same_json(&tree.persons);
        assert_same_json(&tree.links);
        assert_same_json(&TreeOut {
            persons: vec![],
            links: vec![],
        });
    }
}
