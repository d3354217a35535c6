//! Link bodies: two person ids and one of the 16 link types.

use poem_openapi::Object;

use super::enums::LinkType;

/// `POST /api/links` body (and preview and contribution link data). Person ids are
/// ObjectId hex strings in the tree, UUID strings inside a preview session.
#[derive(Debug, Clone, Object, serde::Deserialize, serde::Serialize)]
pub struct LinkInput {
    /// First person's id.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub person_id_1: String,
    /// Second person's id.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub person_id_2: String,
    /// One of the 16 link types.
    pub link_type: LinkType,
}
