//! `Idempotency-Key` on the creating POSTs: sequential and 20-way concurrent repeats create
//! one document and replay the first answer; the key with another body is refused (422) and
//! writes nothing; a malformed key is 400; keys belong to their caller; requests without
//! the header behave as before (two POSTs, two persons).

use serde_json::{Value, json};

use crate::common::{Database, Reply, TestApp, spawn_app_with, wait_until};
use aila_api::db::gateway::InjectedFault;

use crate::support::{count, gateway};
use crate::{id, start};

/// POST `body` to `path` with `Idempotency-Key: key` (raw header values, repeated when
/// several), and a bearer token.
pub async fn post_keyed(
    app: &TestApp,
    path: &str,
    body: &Value,
    token: Option<&str>,
    keys: &[&str],
) -> Reply {
    let mut req = app.http.post(format!("{}{}", app.address, path)).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for k in keys {
        req = req.header("Idempotency-Key", *k);
    }
    let resp = req.send().await.expect("the service answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    Reply {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn replayed(r: &Reply) -> bool {
    r.headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

async fn persons(app: &TestApp, token: &str) -> Vec<Value> {
    let r = app.get("/api/persons", Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body.as_array().unwrap().clone()
}

fn ada() -> Value {
    json!({ "first_name": "Ada", "last_name": "Lovelace" })
}

#[tokio::test]
async fn sequential_repeats_create_one_person_and_replay_the_first_answer() {
    let (_db, app) = start().await;
    let (token, _) = app.register("ada@example.org").await;
    let key = "8e03978e-40d5-43e8-bc93-6894a57f9324";
    let first = post_keyed(&app, "/api/persons", &ada(), Some(&token), &[key]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(!replayed(&first));
    for _ in 0..3 {
        let again = post_keyed(&app, "/api/persons", &ada(), Some(&token), &[key]).await;
        assert_eq!(again.status, 200, "{}", again.body);
        assert!(replayed(&again), "{:?}", again.headers);
        assert_eq!(again.body, first.body);
        assert!(
            again.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
    }
    // The quoted form (RFC 8941 string) is the same key.
    let quoted = format!("\"{key}\"");
    let again = post_keyed(&app, "/api/persons", &ada(), Some(&token), &[&quoted]).await;
    assert!(
        replayed(&again) && again.body == first.body,
        "{}",
        again.body
    );
    assert_eq!(persons(&app, &token).await, vec![first.body.clone()]);

    // A new key is a new operation.
    let other = post_keyed(&app, "/api/persons", &ada(), Some(&token), &["k-2"]).await;
    assert_eq!(other.status, 200);
    assert!(!replayed(&other));
    assert_ne!(id(&other.body), id(&first.body));
    assert_eq!(persons(&app, &token).await.len(), 2);
}

#[tokio::test]
async fn twenty_concurrent_copies_create_one_person() {
    let (_db, app) = start().await;
    let (token, _) = app.register("ada@example.org").await;
    let body = ada();
    let replies = futures::future::join_all(
        (0..20).map(|_| post_keyed(&app, "/api/persons", &body, Some(&token), &["twenty"])),
    )
    .await;
    for r in &replies {
        match r.status {
            200 => {}
            // Still in flight, or shed by admission control (20 at once): retry later.
            409 | 503 => {
                assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
                assert!(!r.detail().is_empty());
            }
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    // The retries of every copy get the stored answer: the same person each time.
    let (app_ref, token_ref, body_ref) = (&app, &token, &body);
    wait_until("a retry to get the stored answer", || async {
        let r = post_keyed(
            app_ref,
            "/api/persons",
            body_ref,
            Some(token_ref),
            &["twenty"],
        )
        .await;
        assert!(matches!(r.status, 200 | 409 | 503), "{}", r.body);
        r.status == 200 && replayed(&r)
    })
    .await;
    let mut answers: Vec<Reply> = replies.into_iter().filter(|r| r.status == 200).collect();
    for _ in 0..20 {
        let r = post_keyed(&app, "/api/persons", &body, Some(&token), &["twenty"]).await;
        assert!(replayed(&r), "{}", r.body);
        answers.push(r);
    }
    let fresh = answers.iter().filter(|r| !replayed(r)).count();
    assert!(fresh <= 1, "{fresh} copies ran: {answers:?}");
    let first = answers[0].body.clone();
    assert!(
        answers.iter().all(|r| r.status == 200 && r.body == first),
        "{answers:?}"
    );
    assert_eq!(persons(&app, &token).await, vec![first]);
}

#[tokio::test]
async fn a_key_reused_with_another_body_is_refused_and_writes_nothing() {
    let (_db, app) = start().await;
    let (token, _) = app.register("ada@example.org").await;
    let first = post_keyed(&app, "/api/persons", &ada(), Some(&token), &["reused"]).await;
    assert_eq!(first.status, 200);
    let other = json!({ "first_name": "Charles", "last_name": "Babbage" });
    let r = post_keyed(&app, "/api/persons", &other, Some(&token), &["reused"]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.detail().contains("Idempotency-Key"), "{}", r.body);
    assert!(!replayed(&r));
    // Another route with the same key is another request too.
    let link = json!({ "person_id_1": id(&first.body), "person_id_2": id(&first.body), "link_type": "spouse" });
    let r = post_keyed(&app, "/api/links", &link, Some(&token), &["reused"]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(persons(&app, &token).await, vec![first.body]);
    let user_id = app.get("/api/auth/me", Some(&token)).await.body["id"].clone();
    let links = count(
        &app,
        "family_links",
        bson::doc! { "user_id": user_id.as_str().unwrap() },
    )
    .await;
    assert_eq!(links, 0);
}

#[tokio::test]
async fn a_malformed_key_is_400_and_writes_nothing() {
    let (_db, app) = start().await;
    let (token, _) = app.register("ada@example.org").await;
    let long = "k".repeat(256);
    for keys in [
        vec![""],
        vec!["\"\""],
        vec!["\"unterminated"],
        vec![long.as_str()],
        vec!["one", "two"],
    ] {
        let r = post_keyed(&app, "/api/persons", &ada(), Some(&token), &keys).await;
        assert_eq!(r.status, 400, "{keys:?}: {}", r.body);
        assert!(r.detail().contains("Idempotency-Key"), "{}", r.body);
    }
    assert!(persons(&app, &token).await.is_empty());
}

#[tokio::test]
async fn keys_belong_to_their_caller() {
    let (_db, app) = start().await;
    let (ada_token, _) = app.register("ada@example.org").await;
    let (bob_token, _) = app.register("bob@example.org").await;
    let a = post_keyed(&app, "/api/persons", &ada(), Some(&ada_token), &["shared"]).await;
    let b = post_keyed(&app, "/api/persons", &ada(), Some(&bob_token), &["shared"]).await;
    assert_eq!((a.status, b.status), (200, 200));
    assert!(!replayed(&b), "another caller's key is not replayed");
    assert_ne!(id(&a.body), id(&b.body));
    assert_eq!(persons(&app, &bob_token).await, vec![b.body]);
}

#[tokio::test]
async fn anonymous_routes_replay_per_client_address() {
    let (_db, app) = start().await;
    let register = json!({"email": "new@example.org", "password": "Password123!", "first_name": "N", "last_name": "U", "gdpr_consent": true});
    let first = post_keyed(&app, "/api/auth/register", &register, None, &["reg-1"]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = post_keyed(&app, "/api/auth/register", &register, None, &["reg-1"]).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(replayed(&again));
    assert_eq!(again.body, first.body);
    assert_eq!(
        count(&app, "users", bson::doc! { "email": "new@example.org" }).await,
        1
    );

    let s1 = post_keyed(&app, "/api/preview/session", &json!({}), None, &["p-1"]).await;
    let s2 = post_keyed(&app, "/api/preview/session", &json!({}), None, &["p-1"]).await;
    assert_eq!((s1.status, s2.status), (200, 200), "{}", s2.body);
    assert!(replayed(&s2));
    assert_eq!(s1.body, s2.body);
    let token = s1.str("session_token").to_string();
    let path = format!("/api/preview/{token}/person");
    let p1 = post_keyed(&app, &path, &ada(), None, &["pp-1"]).await;
    let p2 = post_keyed(&app, &path, &ada(), None, &["pp-1"]).await;
    assert_eq!((p1.status, p2.status), (200, 200), "{}", p2.body);
    assert!(replayed(&p2));
    let session = app.get(&format!("/api/preview/{token}"), None).await;
    assert_eq!(session.body["persons"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn without_the_header_nothing_changes() {
    let (_db, app) = start().await;
    let (token, _) = app.register("ada@example.org").await;
    let a = app.post("/api/persons", ada(), Some(&token)).await;
    let b = app.post("/api/persons", ada(), Some(&token)).await;
    assert_eq!((a.status, b.status), (200, 200));
    assert!(!replayed(&a) && !replayed(&b));
    assert_ne!(id(&a.body), id(&b.body));
    assert_eq!(persons(&app, &token).await.len(), 2);
    assert_eq!(count(&app, "idempotency_keys", bson::doc! {}).await, 0);
    // Errors as before too.
    let r = app.post("/api/persons", json!({}), Some(&token)).await;
    assert_eq!(r.status, 422);
    let r = app.post("/api/persons", ada(), None).await;
    assert_eq!((r.status, r.detail()), (401, "Not authenticated"));
}

#[tokio::test]
async fn the_api_description_documents_the_header_on_every_route_that_takes_it() {
    let (_db, app) = start().await;
    let spec = app.get("/openapi.json", None).await.body;
    let routes = [
        "/api/auth/register",
        "/api/persons",
        "/api/links",
        "/api/collaborators/invite",
        "/api/contributions",
        "/api/contributions/{id}/review",
        "/api/preview/session",
        "/api/preview/{token}/person",
        "/api/preview/{token}/link",
        "/api/preview/{token}/convert",
    ];
    for route in routes {
        let params = spec["paths"][route]["post"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("no parameters on POST {route}"));
        let header = params
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .unwrap_or_else(|| panic!("no Idempotency-Key on POST {route}"));
        assert_eq!(header["in"], "header", "{route}");
        assert_eq!(header["required"], false, "{route}");
        assert!(
            header["description"]
                .as_str()
                .is_some_and(|d| d.contains("Idempotent-Replayed")),
            "{route}: {header}"
        );
    }
    let login = &spec["paths"]["/api/auth/login"]["post"]["parameters"];
    assert!(
        !login.to_string().contains("Idempotency-Key"),
        "login takes no key"
    );
    assert!(
        spec["info"]["description"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
}

/// Blind retries of `path` with `key` until one gets 200; returns that answer.
async fn retry_until_ok(
    app: &TestApp,
    path: &str,
    body: &Value,
    token: Option<&str>,
    key: &str,
) -> Reply {
    let answer = std::sync::Mutex::new(None);
    wait_until("a blind retry to get 200", || async {
        let r = post_keyed(app, path, body, token, &[key]).await;
        assert!(matches!(r.status, 200 | 409 | 503), "{}", r.body);
        let ok = r.status == 200;
        if ok {
            *answer.lock().unwrap() = Some(r);
        }
        ok
    })
    .await;
    answer.into_inner().unwrap().unwrap()
}

#[tokio::test]
async fn a_write_whose_reply_is_lost_is_applied_once_across_blind_retries() {
    let (mut db, app) = start().await;
    let (token, user) = app.register("ada@example.org").await;
    let owner = bson::doc! { "user_id": user["id"].as_str().unwrap() };

    // The insert reaches the database and is applied; its reply is lost on the way back.
    gateway(&app).inject_lost_reply(InjectedFault {
        operation: "insert_one",
        collection: "persons",
        skip: 0,
    });
    let r = post_keyed(&app, "/api/persons", &ada(), Some(&token), &["lost-1"]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        count(&app, "persons", owner.clone()).await,
        1,
        "it was applied"
    );

    // Then the database goes away; the client keeps retrying blindly through the outage.
    db.kill();
    app.wait_not_ready().await;
    let r = post_keyed(&app, "/api/persons", &ada(), Some(&token), &["lost-1"]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    db.restart().await;
    let answer = retry_until_ok(&app, "/api/persons", &ada(), Some(&token), "lost-1").await;

    // Exactly once: the retry met the person the lost write made, and answered with it.
    assert_eq!(persons(&app, &token).await, vec![answer.body.clone()]);
    let again = post_keyed(&app, "/api/persons", &ada(), Some(&token), &["lost-1"]).await;
    assert!(
        replayed(&again) && again.body == answer.body,
        "{}",
        again.body
    );

    // A link, the same way.
    let other = post_keyed(&app, "/api/persons", &ada(), Some(&token), &["lost-2"]).await;
    let link = json!({ "person_id_1": id(&answer.body), "person_id_2": id(&other.body), "link_type": "spouse" });
    gateway(&app).inject_lost_reply(InjectedFault {
        operation: "insert_one",
        collection: "family_links",
        skip: 0,
    });
    let r = post_keyed(&app, "/api/links", &link, Some(&token), &["lost-3"]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let answer = retry_until_ok(&app, "/api/links", &link, Some(&token), "lost-3").await;
    let links = app.get("/api/links", Some(&token)).await.body;
    assert_eq!(links, json!([answer.body]));
}

#[tokio::test]
async fn a_preview_write_whose_reply_is_lost_is_applied_once() {
    let (_db, app) = start().await;
    gateway(&app).inject_lost_reply(InjectedFault {
        operation: "insert_one",
        collection: "preview_sessions",
        skip: 0,
    });
    let r = post_keyed(&app, "/api/preview/session", &json!({}), None, &["s-1"]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let session = retry_until_ok(&app, "/api/preview/session", &json!({}), None, "s-1").await;
    assert_eq!(count(&app, "preview_sessions", bson::doc! {}).await, 1);
    let token = session.str("session_token").to_string();

    let path = format!("/api/preview/{token}/person");
    gateway(&app).inject_lost_reply(InjectedFault {
        operation: "update_one",
        collection: "preview_sessions",
        skip: 0,
    });
    let r = post_keyed(&app, &path, &ada(), None, &["pp-1"]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let answer = retry_until_ok(&app, &path, &ada(), None, "pp-1").await;
    assert_eq!(answer.body["persons"].as_array().unwrap().len(), 1);
    let stored = app.get(&format!("/api/preview/{token}"), None).await.body;
    assert_eq!(stored["persons"], answer.body["persons"]);
}

#[tokio::test]
async fn a_registration_whose_reply_is_lost_answers_its_user_on_retry() {
    let (_db, app) = start().await;
    let register = json!({"email": "lost@example.org", "password": "Password123!", "first_name": "L", "last_name": "R", "gdpr_consent": true});
    gateway(&app).inject_lost_reply(InjectedFault {
        operation: "insert_one",
        collection: "users",
        skip: 0,
    });
    let r = post_keyed(&app, "/api/auth/register", &register, None, &["reg-lost"]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let answer = retry_until_ok(&app, "/api/auth/register", &register, None, "reg-lost").await;
    let users =
        crate::support::find(&app, "users", bson::doc! { "email": "lost@example.org" }).await;
    assert_eq!(users.len(), 1);
    assert_eq!(
        answer.body["user"]["id"].as_str().unwrap(),
        users[0].get_object_id("_id").unwrap().to_hex()
    );
    // The token it answered works.
    let me = app
        .get("/api/auth/me", Some(answer.str("access_token")))
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
}

#[tokio::test]
async fn keys_expire_after_the_configured_time_and_the_sweep_deletes_them() {
    let db = Database::start().await;
    let app = spawn_app_with(
        &db.url(),
        &[
            ("IDEMPOTENCY_KEY_TTL_SECS", "1"),
            ("IDEMPOTENCY_SWEEP_INTERVAL_MS", "100"),
        ],
    )
    .await;
    app.wait_ready().await;
    let (token, _) = app.register("ada@example.org").await;
    let first = post_keyed(&app, "/api/persons", &ada(), Some(&token), &["short"]).await;
    assert_eq!(first.status, 200);
    assert_eq!(count(&app, "idempotency_keys", bson::doc! {}).await, 1);
    // FerretDB refuses the TTL index: the service's own sweep deletes the expired key.
    wait_until("the sweep to delete the expired key", || async {
        count(&app, "idempotency_keys", bson::doc! {}).await == 0
    })
    .await;
    // The key is forgotten: the same request is a new operation.
    let again = post_keyed(&app, "/api/persons", &ada(), Some(&token), &["short"]).await;
    assert_eq!(again.status, 200);
    assert!(!replayed(&again));
    assert_ne!(id(&again.body), id(&first.body));
    assert_eq!(persons(&app, &token).await.len(), 2);
}

#[tokio::test]
async fn an_expired_key_not_yet_swept_counts_as_absent() {
    let db = Database::start().await;
    let app = spawn_app_with(
        &db.url(),
        &[
            ("IDEMPOTENCY_KEY_TTL_SECS", "1"),
            ("IDEMPOTENCY_SWEEP_INTERVAL_MS", "3600000"),
        ],
    )
    .await;
    app.wait_ready().await;
    let (token, _) = app.register("ada@example.org").await;
    let first = post_keyed(&app, "/api/persons", &ada(), Some(&token), &["k"]).await;
    assert_eq!(first.status, 200);
    // Replayed while the key lives, run again once it has expired (no sweep meanwhile).
    wait_until("the key to expire", || async {
        let r = post_keyed(&app, "/api/persons", &ada(), Some(&token), &["k"]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        !replayed(&r)
    })
    .await;
    assert_eq!(persons(&app, &token).await.len(), 2);
    assert_eq!(count(&app, "idempotency_keys", bson::doc! {}).await, 1);
}

#[tokio::test]
async fn an_invitation_and_a_contribution_whose_replies_are_lost_are_applied_once() {
    let (_db, app) = start().await;
    let (owner, owner_user) = app.register("owner@example.org").await;
    // Verified: only a verified address is given an invitation at once (with its notification).
    let (editor, _) = crate::support::register_verified(&app, "editor@example.org").await;
    let owner_id = owner_user["id"].as_str().unwrap().to_string();

    // The invitation is stored, its answer lost; the retry finishes it (one invitation,
    // one notification for the invitee).
    gateway(&app).inject_lost_reply(InjectedFault {
        operation: "insert_one",
        collection: "collaborators",
        skip: 0,
    });
    let invite = json!({ "email": "editor@example.org", "role": "editor" });
    let path = "/api/collaborators/invite";
    let r = post_keyed(&app, path, &invite, Some(&owner), &["inv-1"]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let answer = retry_until_ok(&app, path, &invite, Some(&owner), "inv-1").await;
    let stored = crate::support::find(&app, "collaborators", bson::doc! {}).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        answer.str("id"),
        stored[0].get_object_id("_id").unwrap().to_hex()
    );
    assert_eq!(count(&app, "notifications", bson::doc! {}).await, 1);

    // A contribution, the same way.
    gateway(&app).inject_lost_reply(InjectedFault {
        operation: "insert_one",
        collection: "contributions",
        skip: 0,
    });
    let proposal = json!({
        "action": "add",
        "entity_type": "person",
        "entity_data": { "first_name": "New", "last_name": "Person" }
    });
    let path = format!("/api/contributions?owner_id={owner_id}");
    let r = post_keyed(&app, &path, &proposal, Some(&editor), &["c-1"]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let answer = retry_until_ok(&app, &path, &proposal, Some(&editor), "c-1").await;
    let stored = crate::support::find(&app, "contributions", bson::doc! {}).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        answer.str("id"),
        stored[0].get_object_id("_id").unwrap().to_hex()
    );
    // The owner got one notification for it (and the editor one for the invitation).
    assert_eq!(
        count(&app, "notifications", bson::doc! { "user_id": &owner_id }).await,
        1
    );

    // The owner's approval is recorded, its answer lost; the retry answers the review
    // (not 404) and the person is added once, the editor notified once.
    gateway(&app).inject_lost_reply(InjectedFault {
        operation: "update_one",
        collection: "contributions",
        skip: 0,
    });
    let path = format!("/api/contributions/{}/review", answer.str("id"));
    let review = json!({ "status": "approved" });
    let r = post_keyed(&app, &path, &review, Some(&owner), &["r-1"]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let done = retry_until_ok(&app, &path, &review, Some(&owner), "r-1").await;
    assert_eq!(done.str("contribution_id"), answer.str("id"));
    let tree = persons(&app, &owner).await;
    assert_eq!(tree.len(), 1, "{tree:?}");
    let editor_id = stored[0].get_str("contributor_id").unwrap().to_string();
    // The invitation's notification and the review's.
    assert_eq!(
        count(&app, "notifications", bson::doc! { "user_id": &editor_id }).await,
        2
    );
}
