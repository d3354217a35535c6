//! Parsed domain types ("parse, don't validate"): request bodies are parsed into these by
//! poem-openapi, so an invalid enum value, a missing field or an over-long string is a 422
//! naming the field before any handler runs. Tests beside each type.
//!
//! - [`enums`]: every enumerated field of the contract (gender, link type, roles, ...).
//! - [`ids`]: ObjectId parsing (a malformed id is "not found" in a path, 422 in a body).
//! - [`person`], [`link`]: person and link bodies, shared by the tree, preview and
//!   contribution routes.
//! - [`time`]: dates as the API sends them.

pub mod enums;
pub mod ids;
pub mod link;
pub mod person;
pub mod time;
