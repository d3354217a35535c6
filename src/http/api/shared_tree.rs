//! `GET /api/tree/shared/{owner_id}`: the tree of someone who shared it with the caller.

use poem_openapi::param::Path;
use poem_openapi::{OpenApi, Tags};

use super::json_out::JsonOut;
use super::tree::{TreeOut, load_tree};
use crate::domain::ids::parse_object_id;
use crate::http::context::AppContext;
use crate::http::error::{ApiError, ApiResult};
use crate::http::security::BearerAuth;
use crate::repo::collaborators;

/// API description tag.
#[derive(Tags)]
pub enum SharedTreeTag {
    /// Trees shared with the caller.
    SharedTree,
}

/// The shared-tree route.
pub struct SharedTreeApi {
    /// Shared state.
    pub ctx: AppContext,
}

#[OpenApi(prefix_path = "/api", tag = "SharedTreeTag::SharedTree")]
impl SharedTreeApi {
    /// Read a tree shared with you
    ///
    /// The owner's persons and links (each list oldest first, at most 500). 403 unless the
    /// caller is an accepted collaborator (viewer or editor) of that owner, or the owner.
    #[oai(path = "/tree/shared/:owner_id", method = "get")]
    async fn shared(
        &self,
        auth: BearerAuth,
        owner_id: Path<String>,
    ) -> ApiResult<JsonOut<TreeOut>> {
        let gw = &self.ctx.gateway;
        let owner = parse_object_id(&owner_id)
            .ok_or_else(|| ApiError::not_found("Tree not found"))?
            .to_hex();
        let me = auth.0.id_hex();
        if owner != me
            && collaborators::find_accepted(gw, &owner, &me)
                .await?
                .is_none()
        {
            return Err(ApiError::forbidden(
                "You do not have access to this tree: its owner has not shared it with you",
            ));
        }
        Ok(JsonOut(load_tree(gw, &owner, self.ctx.limits.items).await?))
    }
}
