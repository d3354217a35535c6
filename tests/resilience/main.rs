//! The service against a real database process that dies, freezes and comes back.
//!
//! Every test starts its own FerretDB (or `mongod` from `MONGOD_BIN`) and its own service
//! on port 0, and waits on conditions with deadlines, never on fixed sleeps.

#[path = "../common/mod.rs"]
mod common;

mod body_stream;
mod capture;
mod door;
mod exposure;
mod outage;
mod process;
mod replica_set;
mod startup;
