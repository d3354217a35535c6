//! Repositories: one module per collection, each function one or a few gateway calls.
//! Documents are typed with serde; ids are ObjectIds in `_id`; dates are BSON dates.
//! Nothing here touches a collection except through [`crate::db::Gateway::run`].

pub mod collaborators;
pub mod contributions;
pub mod dates;
pub mod links;
pub mod notifications;
pub mod persons;
pub mod preview;
pub mod text;
pub mod tree_import;
pub mod users;
