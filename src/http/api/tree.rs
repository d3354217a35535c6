//! `GET /api/tree`: the caller's whole tree in one answer, and the tree object the shared
//! tree route answers too ([`TreeOut`]).

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::links::LinkOut;
use super::persons::PersonOut;
use crate::db::{DbError, Gateway};
use crate::http::context::AppContext;
use crate::http::error::ApiResult;
use crate::http::security::BearerAuth;
use crate::repo::{links, persons};

/// API description tags.
#[derive(Tags)]
enum TreeTag {
    /// The caller's tree.
    Tree,
}

/// A tree: its persons and its links.
#[derive(Debug, Clone, Object)]
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
        persons: persons.iter().map(PersonOut::from).collect(),
        links: links.iter().map(LinkOut::from).collect(),
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
    async fn tree(&self, auth: BearerAuth) -> ApiResult<Json<TreeOut>> {
        let tree = load_tree(&self.ctx.gateway, &auth.0.id_hex(), self.ctx.limits.items).await?;
        Ok(Json(tree))
    }
}
