//! The AÏLA API routes, black-box: every test starts its own FerretDB (or `mongod` from
//! `MONGOD_BIN`) and its own service on port 0, talks HTTP to it, and waits on conditions
//! with deadlines, never on fixed sleeps. One file per resource.

#[path = "../common/mod.rs"]
mod common;

// Log capture, for the secrets test of the mail (tests/resilience owns it).
#[path = "../resilience/capture.rs"]
#[allow(dead_code)]
mod capture;

// Part A.
mod abuse;
mod auth;
mod bounded;
mod compat;
mod description;
mod links;
mod mail;
mod mail_secrets;
mod outage;
mod persons;
mod tree;
mod users;

// Part B.
mod collaborators;
mod contributions;
mod description_sharing;
mod fuzz;
mod gdpr;
mod gdpr_export;
mod idempotency;
mod keep_alive;
mod notifications;
mod preview;
mod rate_limits;
mod shared_tree;
mod support;

use common::{Database, TestApp, spawn_app};
use serde_json::{Value, json};

/// A fresh database and a service on it, ready (database connected, indexes created).
pub async fn start() -> (Database, TestApp) {
    let db = Database::start().await;
    let app = spawn_app(&db.url()).await;
    app.wait_ready().await;
    (db, app)
}

/// Creates a person named `first_name` in the caller's tree and returns its JSON.
pub async fn create_person(app: &TestApp, token: &str, first_name: &str) -> Value {
    let r = app
        .post(
            "/api/persons",
            json!({ "first_name": first_name, "last_name": "Test" }),
            Some(token),
        )
        .await;
    assert_eq!(r.status, 200, "create person: {}", r.body);
    r.body
}

/// Links two persons of the caller's tree and returns the link's JSON.
pub async fn create_link(app: &TestApp, token: &str, p1: &str, p2: &str, link_type: &str) -> Value {
    let r = app
        .post(
            "/api/links",
            json!({ "person_id_1": p1, "person_id_2": p2, "link_type": link_type }),
            Some(token),
        )
        .await;
    assert_eq!(r.status, 200, "create link: {}", r.body);
    r.body
}

/// `value["id"]` as a string.
pub fn id(value: &Value) -> String {
    value["id"].as_str().expect("an `id` string").to_string()
}
