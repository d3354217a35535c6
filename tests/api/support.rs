//! Helpers shared by the sharing-related tests (preview, collaborators, contributions,
//! notifications, shared tree, GDPR): invitations, direct reads and writes through the
//! service's own gateway, and the outage assertion.

use std::time::{Duration, Instant};

use aila_api::db::Gateway;
use bson::{Document, doc};
use futures::TryStreamExt;
use mongodb::Collection;
use serde_json::{Value, json};

use crate::common::TestApp;

/// The service's gateway (tests reach the database only through it).
pub fn gateway(app: &TestApp) -> Gateway {
    app.app().context().gateway.clone()
}

/// How many documents of `collection` match `filter`.
pub async fn count(app: &TestApp, collection: &'static str, filter: Document) -> u64 {
    gateway(app)
        .run(
            "count_documents",
            collection,
            |c: Collection<Document>| async move { c.count_documents(filter).await },
        )
        .await
        .expect("count through the gateway")
}

/// The documents of `collection` matching `filter`, in id order.
pub async fn find(app: &TestApp, collection: &'static str, filter: Document) -> Vec<Document> {
    gateway(app)
        .run("find", collection, |c: Collection<Document>| async move {
            c.find(filter)
                .sort(doc! { "_id": 1 })
                .await?
                .try_collect()
                .await
        })
        .await
        .expect("find through the gateway")
}

/// Inserts a raw document into `collection` (documents as the old service wrote them).
pub async fn insert_raw(app: &TestApp, collection: &'static str, d: Document) {
    insert_all(app, collection, vec![d]).await;
}

/// Inserts raw documents into `collection` in one call.
pub async fn insert_all(app: &TestApp, collection: &'static str, docs: Vec<Document>) {
    gateway(app)
        .run(
            "insert_many",
            collection,
            |c: Collection<Document>| async move { c.insert_many(docs).await.map(|_| ()) },
        )
        .await
        .expect("insert through the gateway");
}

/// Stores a spouse link of `owner`'s tree (hex user id) between `own` and `other`, a
/// person of another tree, as the old service could (the API links one tree's persons
/// only). Returns the link's id.
pub async fn insert_cross_tree_link(
    app: &TestApp,
    owner: &str,
    own: &str,
    other: &str,
) -> bson::oid::ObjectId {
    let link = bson::oid::ObjectId::new();
    let old_link = doc! {
        "_id": link, "user_id": owner, "person_id_1": own, "person_id_2": other,
        "link_type": "spouse", "created_at": bson::DateTime::now(),
    };
    insert_raw(app, "family_links", old_link).await;
    link
}

/// `$set`s `update` on the documents of `collection` matching `filter`.
pub async fn set(app: &TestApp, collection: &'static str, filter: Document, update: Document) {
    gateway(app)
        .run(
            "update_many",
            collection,
            |c: Collection<Document>| async move {
                c.update_many(filter, doc! { "$set": update })
                    .await
                    .map(|_| ())
            },
        )
        .await
        .expect("update through the gateway");
}

/// `owner` invites `email` as `role`; asserts 200 and returns the collaborator JSON.
pub async fn invite(app: &TestApp, owner: &str, email: &str, role: &str) -> Value {
    let r = app
        .post(
            "/api/collaborators/invite",
            json!({ "email": email, "role": role }),
            Some(owner),
        )
        .await;
    assert_eq!(r.status, 200, "invite {email}: {}", r.body);
    r.body
}

/// Asserts the route answers 503 with `Retry-After` and `Retry-After-Ms`, within a second.
pub async fn assert_unavailable(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) {
    let started = Instant::now();
    let r = app.request(method, path, body, token).await;
    let took = started.elapsed();
    assert_eq!(r.status, 503, "{method} {path}: {}", r.body);
    assert_eq!(
        r.detail(),
        "Database temporarily unavailable",
        "{method} {path}"
    );
    let secs: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(secs >= 1, "{method} {path}: Retry-After {secs}");
    let ms: u64 = r.headers["retry-after-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms >= 1, "{method} {path}: Retry-After-Ms {ms}");
    assert!(
        took < Duration::from_secs(1),
        "{method} {path} took {took:?}"
    );
}

/// Marks the address of the account `email` verified, as following its mailed link would
/// (these tests run without a mail server; the link itself is tested in `mail.rs`, against
/// Mailpit). Invitations addressed to it are then accepted at the next login, or at once
/// by an invitation made afterwards.
pub async fn mark_verified(app: &TestApp, email: &str) {
    set(
        app,
        "users",
        doc! { "email": email.to_lowercase() },
        doc! { "email_verified": true },
    )
    .await;
}

/// Registers `email` and verifies its address (see [`mark_verified`]): the account an
/// invitation is given to at once. Returns (token, user JSON).
pub async fn register_verified(app: &TestApp, email: &str) -> (String, Value) {
    let (token, mut user) = app.register(email).await;
    mark_verified(app, email).await;
    user["email_verified"] = json!(true);
    (token, user)
}

/// Verifies the address of `email` (see [`mark_verified`]) and logs in, which accepts the
/// invitations waiting for it. Returns the new token.
pub async fn verify_and_login(app: &TestApp, email: &str) -> String {
    mark_verified(app, email).await;
    let r = app
        .post(
            "/api/auth/login",
            json!({ "email": email, "password": "Password123!" }),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "login {email}: {}", r.body);
    r.str("access_token").to_string()
}
