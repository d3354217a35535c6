//! Test support shared by the service's test harness and the development tools
//! (`aila-bench`, `aila-chaos`): where the workspace and its built binaries are, and the
//! local database server (FerretDB built by `scripts/build-tools.sh ferretdb`, or a real
//! `mongod` from `MONGOD_BIN`) each of them runs as a child process.
//!
//! Layout:
//! - [`local_db`]: which database server binary to run and its command line.
//! - [`replica_set`]: three members of a replica set, as the drivers see it, in front of
//!   one server (member down, step-down).
//! - [`workspace`]: the workspace root and the binaries cargo built next to the caller.
//! - [`toxiproxy`]: the Toxiproxy server process and its API (network faults between the
//!   service and its database).
//! - [`mailpit`]: the Mailpit process (a real SMTP server) and its HTTP API (the mails
//!   the service sent).

pub mod http10;
pub mod local_db;
pub mod mailpit;
pub mod replica_set;
pub mod toxiproxy;
pub mod workspace;

pub use local_db::ServerBinary;
pub use replica_set::ReplicaSet;
