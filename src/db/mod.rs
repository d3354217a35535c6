//! Everything that touches MongoDB.
//!
//! - [`gateway`]: the only owner of the client; every operation goes through it.
//! - [`classify`]: which driver errors are database failures.
//! - [`client`]: building the client from the settings, forwarding driver events.
//! - [`supervisor`]: the reconnect loop and health pings.
//! - [`indexes`]: the contract's indexes and their creation.
//! - [`state`]: the published database state.
//! - [`topology`]: the members as the driver's monitor sees them; can some member serve?

pub mod classify;
pub mod client;
pub mod gateway;
pub mod indexes;
pub mod state;
pub mod supervisor;
pub mod topology;

pub use gateway::{DbError, Gateway};
pub use state::{DbState, DbStatus};
