//! Bounded work per request: a preview session stays under the 16 MiB document limit (400,
//! never 500), photos, persons per owner and pending contributions per contributor are
//! capped (4xx with a `detail`), and a burst of logins waits for bcrypt a bounded time
//! (503 + `Retry-After`) instead of queueing without end.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Database, TestApp, spawn_app_with};
use crate::create_person;
use crate::support::{invite, register_verified};

async fn start_with(overrides: &[(&str, &str)]) -> (Database, TestApp) {
    let db = Database::start().await;
    let app = spawn_app_with(&db.url(), overrides).await;
    app.wait_ready().await;
    (db, app)
}

/// A base64 photo of `len` characters.
fn photo(len: usize) -> String {
    let prefix = "data:image/jpeg;base64,";
    format!("{prefix}{}", "A".repeat(len - prefix.len()))
}

#[tokio::test]
async fn a_preview_session_that_would_outgrow_a_document_is_refused_with_400() {
    // Photos as large as the old service took (7 MiB), so the session cap is what stops them.
    let (_db, app) = start_with(&[("PHOTO_MAX_BYTES", "7340032")]).await;
    let s = app.post("/api/preview/session", json!({}), None).await;
    let token = s.str("session_token").to_string();
    let path = format!("/api/preview/{token}/person");
    // 7 MiB photos, as the front end may send: the third would pass 16 MiB.
    let big = photo(7 * 1024 * 1024 - 64);
    let mut statuses = Vec::new();
    for i in 0..3 {
        let r = app
            .post(
                &path,
                json!({ "first_name": format!("P{i}"), "last_name": "L", "photo": big }),
                None,
            )
            .await;
        statuses.push(r.status);
        if r.status != 200 {
            assert_eq!(r.status, 400, "{}", r.body);
            assert!(
                r.detail().contains("Preview session too large"),
                "{}",
                r.body
            );
        }
    }
    assert!(statuses.contains(&400), "{statuses:?}");
    // The session is still readable and usable.
    let r = app.get(&format!("/api/preview/{token}"), None).await;
    assert_eq!(r.status, 200);
    let r = app
        .post(
            &path,
            json!({ "first_name": "Small", "last_name": "L" }),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn photos_over_the_configured_size_are_refused_with_422() {
    let (_db, app) = start_with(&[("PHOTO_MAX_BYTES", "1000")]).await;
    let (token, _) = register_verified(&app, "owner@example.org").await;
    let body = json!({ "first_name": "A", "last_name": "B", "photo": photo(1001) });
    let r = app.post("/api/persons", body.clone(), Some(&token)).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.detail().contains("photo") && r.detail().contains("1000"),
        "{}",
        r.body
    );
    let s = app.post("/api/preview/session", json!({}), None).await;
    let path = format!("/api/preview/{}/person", s.str("session_token"));
    let r = app.post(&path, body, None).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let ok = json!({ "first_name": "A", "last_name": "B", "photo": photo(1000) });
    assert_eq!(app.post("/api/persons", ok, Some(&token)).await.status, 200);
    let p = create_person(&app, &token, "C").await;
    let r = app
        .put(
            &format!("/api/persons/{}", p["id"].as_str().unwrap()),
            Some(json!({ "photo": photo(1001) })),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
}

#[tokio::test]
async fn persons_per_owner_and_pending_contributions_are_capped() {
    let (_db, app) = start_with(&[
        ("MAX_PERSONS_PER_OWNER", "2"),
        ("MAX_PENDING_CONTRIBUTIONS", "1"),
    ])
    .await;
    let (owner, owner_user) = register_verified(&app, "owner@example.org").await;
    create_person(&app, &owner, "A").await;
    create_person(&app, &owner, "B").await;
    let r = app
        .post(
            "/api/persons",
            json!({ "first_name": "C", "last_name": "T" }),
            Some(&owner),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.detail().contains("at most 2 persons"), "{}", r.body);

    let (editor, _) = register_verified(&app, "editor@example.org").await;
    invite(&app, &owner, "editor@example.org", "editor").await;
    let path = format!(
        "/api/contributions?owner_id={}",
        owner_user["id"].as_str().unwrap()
    );
    let c = json!({ "action": "add", "entity_type": "person", "entity_data": { "first_name": "N", "last_name": "P" } });
    let proposed = app.post(&path, c.clone(), Some(&editor)).await;
    assert_eq!(proposed.status, 200, "{}", proposed.body);
    let r = app.post(&path, c, Some(&editor)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.detail().contains("pending contributions"), "{}", r.body);

    // The other ways into a full tree are capped too: approving an addition...
    let review = format!(
        "/api/contributions/{}/review",
        proposed.body["id"].as_str().unwrap()
    );
    let approve = json!({ "status": "approved" });
    let r = app.post(&review, approve.clone(), Some(&owner)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.detail().contains("at most 2 persons"), "{}", r.body);
    // ...and converting a preview.
    let r = app.post("/api/preview/session", json!({}), None).await;
    let token = r.str("session_token").to_string();
    let r = app
        .post(
            &format!("/api/preview/{token}/person"),
            json!({ "first_name": "Pre", "last_name": "View" }),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let convert = format!("/api/preview/{token}/convert");
    let r = app.post(&convert, json!({}), Some(&owner)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.detail().contains("at most 2 persons"), "{}", r.body);
    let tree = app.get("/api/persons", Some(&owner)).await.body;
    assert_eq!(tree.as_array().unwrap().len(), 2, "nothing added: {tree}");

    // With room again, both go through.
    let first = tree[0]["id"].as_str().unwrap();
    let r = app
        .delete(&format!("/api/persons/{first}"), Some(&owner))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.post(&review, approve, Some(&owner)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.post(&convert, json!({}), Some(&owner)).await;
    assert_eq!(r.status, 400, "full again after the approval: {}", r.body);
}

#[tokio::test]
async fn a_burst_of_logins_waits_for_bcrypt_a_bounded_time() {
    let (_db, app) = start_with(&[("HASH_QUEUE_TIMEOUT_MS", "300")]).await;
    register_verified(&app, "user@example.org").await;
    let started = Instant::now();
    let logins = (0..20).map(|_| {
        app.post(
            "/api/auth/login",
            json!({ "email": "user@example.org", "password": "wrong-password" }),
            None,
        )
    });
    let replies = futures::future::join_all(logins).await;
    let took = started.elapsed();
    for r in &replies {
        assert!(matches!(r.status, 401 | 503), "{} {}", r.status, r.body);
    }
    // Some may be shed earlier by admission control ("Server busy"), at their database
    // call; the ones that reached bcrypt and found no slot in time say so.
    let busy: Vec<_> = replies
        .iter()
        .filter(|r| r.status == 503 && r.detail().contains("Too many logins"))
        .collect();
    assert!(
        !busy.is_empty(),
        "20 logins at once, none told to retry ({took:?})"
    );
    for r in busy {
        let secs: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(secs >= 1);
    }
    assert!(took < Duration::from_secs(15), "{took:?}");
}
