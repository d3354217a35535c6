//! Preview sessions: create, read, add persons (at most 10) and links, expiry (410, then
//! gone) and the sweep, conversion into a tree (links re-pointed, session removed), a
//! conversion interrupted by a failure and retried, and the outage.

use aila_api::db::gateway::InjectedFault;
use bson::doc;
use serde_json::{Value, json};

use crate::common::{Database, TestApp, spawn_app_with, wait_until};
use crate::start;
use crate::support::{assert_unavailable, count, find, gateway, set};

async fn new_session(app: &TestApp) -> String {
    let r = app.post("/api/preview/session", json!({}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.str("session_token").to_string()
}

async fn add_person(app: &TestApp, token: &str, first_name: &str) -> Value {
    let r = app
        .post(
            &format!("/api/preview/{token}/person"),
            json!({ "first_name": first_name, "last_name": "Preview" }),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn person_id(session: &Value, first_name: &str) -> String {
    session["persons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["first_name"] == first_name)
        .unwrap_or_else(|| panic!("{first_name} in {session}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn add_link(app: &TestApp, token: &str, p1: &str, p2: &str, link_type: &str) -> Value {
    let r = app
        .post(
            &format!("/api/preview/{token}/link"),
            json!({ "person_id_1": p1, "person_id_2": p2, "link_type": link_type }),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn millis(iso: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(iso)
        .unwrap()
        .timestamp_millis()
}

#[tokio::test]
async fn a_session_is_created_filled_linked_and_read_back() {
    let (_db, app) = start().await;
    let r = app.post("/api/preview/session", json!({}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.str("session_token").to_string();
    assert_eq!(uuid::Uuid::parse_str(&token).unwrap().get_version_num(), 4);
    assert_eq!(r.body["persons"], json!([]));
    assert_eq!(r.body["links"], json!([]));
    assert!(r.body.get("_id").is_none() && r.body.get("id").is_none());
    let created = millis(r.str("created_at"));
    assert_eq!(millis(r.str("expires_at")) - created, 24 * 3600 * 1000);

    let r = app
        .post(
            &format!("/api/preview/{token}/person"),
            json!({ "first_name": " Ada ", "last_name": "Preview", "gender": "female",
                    "birth_date": "1815", "algerian_branch": "ignored" }),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ada = &r.body["persons"][0];
    assert_eq!(ada["first_name"], "Ada");
    assert_eq!(ada["gender"], "female");
    assert_eq!(ada["birth_date"], "1815");
    assert!(ada.get("algerian_branch").is_none());
    assert_eq!(
        uuid::Uuid::parse_str(ada["id"].as_str().unwrap())
            .unwrap()
            .get_version_num(),
        4
    );
    let session = add_person(&app, &token, "Byron").await;
    assert_eq!(session["persons"][1]["gender"], "unknown");
    let (a, b) = (person_id(&session, "Ada"), person_id(&session, "Byron"));
    let session = add_link(&app, &token, &b, &a, "parent").await;
    let link = &session["links"][0];
    assert_eq!(link["person_id_1"], b.as_str());
    assert_eq!(link["person_id_2"], a.as_str());
    assert_eq!(link["link_type"], "parent");

    let r = app.get(&format!("/api/preview/{token}"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, session);
    assert_eq!(r.body["persons"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["links"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_and_malformed_tokens_are_404() {
    let (_db, app) = start().await;
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/api/preview/{unknown}"),
        "/api/preview/not-a-token".to_string(),
    ] {
        let r = app.get(&path, None).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert_eq!(r.detail(), "Preview session not found");
    }
    let r = app
        .post(
            &format!("/api/preview/{unknown}/person"),
            json!({ "first_name": "A", "last_name": "B" }),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn a_session_holds_at_most_ten_persons_even_under_concurrent_additions() {
    let (_db, app) = start().await;
    // Sequentially: the eleventh is refused.
    let token = new_session(&app).await;
    for i in 0..10 {
        add_person(&app, &token, &format!("P{i}")).await;
    }
    let r = app
        .post(
            &format!("/api/preview/{token}/person"),
            json!({ "first_name": "Eleven", "last_name": "X" }),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.detail(), "Preview mode limited to 10 members");

    // Concurrently: never more than ten, and every answer is a success, the limit, or
    // "changed meanwhile, try again".
    let token = new_session(&app).await;
    let path = format!("/api/preview/{token}/person");
    let answers = futures::future::join_all((0..14).map(|i| {
        app.post(
            &path,
            json!({ "first_name": format!("C{i}"), "last_name": "X" }),
            None,
        )
    }))
    .await;
    let ok = answers.iter().filter(|r| r.status == 200).count();
    for r in &answers {
        assert!(
            [200, 400, 409].contains(&r.status),
            "{}: {}",
            r.status,
            r.body
        );
    }
    let session = app.get(&format!("/api/preview/{token}"), None).await;
    let stored = session.body["persons"].as_array().unwrap().len();
    assert_eq!(stored, ok);
    assert!(stored <= 10, "{stored} persons");
    assert!(ok >= 1);
}

#[tokio::test]
async fn a_link_needs_two_distinct_persons_of_the_session_and_a_known_type() {
    let (_db, app) = start().await;
    let token = new_session(&app).await;
    let other = new_session(&app).await;
    let a = person_id(&add_person(&app, &token, "A").await, "A");
    let stranger = person_id(&add_person(&app, &other, "S").await, "S");
    let link = |p1: &str, p2: &str, t: &str| json!({ "person_id_1": p1, "person_id_2": p2, "link_type": t });
    let path = format!("/api/preview/{token}/link");

    let r = app.post(&path, link(&a, &stranger, "sibling"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.detail(), "One or both persons not found");
    let r = app.post(&path, link(&a, "nobody", "sibling"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = app.post(&path, link(&a, &a, "sibling"), None).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.detail().contains("person_id_2"), "{}", r.detail());
    let b = person_id(&add_person(&app, &token, "B").await, "B");
    let r = app.post(&path, link(&a, &b, "friend"), None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.detail().contains("link_type"), "{}", r.detail());
    let r = app.post(&path, json!({ "person_id_1": a }), None).await;
    assert_eq!(r.status, 422, "{}", r.body);

    let r = app.get(&format!("/api/preview/{token}"), None).await;
    assert_eq!(r.body["links"], json!([]));
}

#[tokio::test]
async fn an_expired_session_answers_410_once_and_is_removed() {
    let (_db, app) = start().await;
    let token = new_session(&app).await;
    add_person(&app, &token, "A").await;
    let past = bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() - 1000);
    set(
        &app,
        "preview_sessions",
        doc! { "session_token": &token },
        doc! { "expires_at": past },
    )
    .await;

    let r = app.get(&format!("/api/preview/{token}"), None).await;
    assert_eq!(r.status, 410, "{}", r.body);
    assert!(r.detail().contains("expired"), "{}", r.detail());
    assert_eq!(
        count(&app, "preview_sessions", doc! { "session_token": &token }).await,
        0
    );
    let r = app.get(&format!("/api/preview/{token}"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Adding to, and converting, an expired session are refused the same way.
    let (user, _) = app.register("late@example.org").await;
    for path in ["person", "convert"] {
        let token = new_session(&app).await;
        set(
            &app,
            "preview_sessions",
            doc! { "session_token": &token },
            doc! { "expires_at": past },
        )
        .await;
        let r = app
            .post(
                &format!("/api/preview/{token}/{path}"),
                json!({ "first_name": "A", "last_name": "B" }),
                Some(&user),
            )
            .await;
        assert_eq!(r.status, 410, "{path}: {}", r.body);
    }
    let tree = app.get("/api/tree", Some(&user)).await;
    assert_eq!(tree.body["persons"], json!([]));
}

#[tokio::test]
async fn the_sweeper_deletes_expired_sessions_and_keeps_live_ones() {
    let db = Database::start().await;
    let app = spawn_app_with(&db.url(), &[("PREVIEW_SWEEP_INTERVAL_MS", "100")]).await;
    app.wait_ready().await;
    let live = new_session(&app).await;
    let expired = new_session(&app).await;
    let past = bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() - 1000);
    set(
        &app,
        "preview_sessions",
        doc! { "session_token": &expired },
        doc! { "expires_at": past },
    )
    .await;
    wait_until("the sweeper to delete the expired session", || {
        let app = &app;
        let expired = expired.clone();
        async move { count(app, "preview_sessions", doc! { "session_token": expired }).await == 0 }
    })
    .await;
    assert_eq!(
        count(&app, "preview_sessions", doc! { "session_token": &live }).await,
        1
    );
    let r = app.get(&format!("/api/preview/{live}"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A session of three persons (Ada, Byron, Clara) and two links.
async fn three_person_session(app: &TestApp) -> (String, Value) {
    let token = new_session(app).await;
    add_person(app, &token, "Ada").await;
    add_person(app, &token, "Byron").await;
    let session = add_person(app, &token, "Clara").await;
    let (a, b, c) = (
        person_id(&session, "Ada"),
        person_id(&session, "Byron"),
        person_id(&session, "Clara"),
    );
    add_link(app, &token, &b, &a, "parent").await;
    let session = add_link(app, &token, &c, &a, "sibling").await;
    (token, session)
}

/// The tree, checked: `n` persons named as in the session, links re-pointed to them.
async fn assert_converted_tree(app: &TestApp, user: &str, links: usize) -> Value {
    let tree = app.get("/api/tree", Some(user)).await;
    assert_eq!(tree.status, 200, "{}", tree.body);
    let persons = tree.body["persons"].as_array().unwrap();
    let mut names: Vec<&str> = persons
        .iter()
        .map(|p| p["first_name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Ada", "Byron", "Clara"]);
    let by_name = |name: &str| {
        persons.iter().find(|p| p["first_name"] == name).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for p in persons {
        assert_eq!(p["id"].as_str().unwrap().len(), 24, "{p}");
        assert_eq!(p["is_preview"], false);
    }
    let tree_links = tree.body["links"].as_array().unwrap();
    assert_eq!(tree_links.len(), links, "{}", tree.body);
    if links == 2 {
        let mut pairs: Vec<(String, String, String)> = tree_links
            .iter()
            .map(|l| {
                (
                    l["person_id_1"].as_str().unwrap().to_string(),
                    l["person_id_2"].as_str().unwrap().to_string(),
                    l["link_type"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        pairs.sort();
        let mut expected = vec![
            (by_name("Byron"), by_name("Ada"), "parent".to_string()),
            (by_name("Clara"), by_name("Ada"), "sibling".to_string()),
        ];
        expected.sort();
        assert_eq!(pairs, expected);
    }
    tree.body
}

#[tokio::test]
async fn convert_copies_persons_and_links_with_new_ids_and_removes_the_session() {
    let (_db, app) = start().await;
    let (user, _) = app.register("convert@example.org").await;
    let (token, session) = three_person_session(&app).await;
    let path = format!("/api/preview/{token}/convert");

    let r = app.post(&path, json!({}), None).await;
    assert_eq!(r.status, 401, "{}", r.body);

    let r = app.post(&path, json!({}), Some(&user)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["persons_converted"], 3);
    assert!(r.body["message"].is_string());
    let tree = assert_converted_tree(&app, &user, 2).await;
    let uuids: Vec<&str> = session["persons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    for p in tree["persons"].as_array().unwrap() {
        assert!(!uuids.contains(&p["id"].as_str().unwrap()));
    }
    let r = app.get(&format!("/api/preview/{token}"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = app.post(&path, json!({}), Some(&user)).await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn an_interrupted_convert_shows_nothing_dangling_and_a_retry_completes_it_once() {
    let (_db, app) = start().await;
    let (user, me) = app.register("retry@example.org").await;
    let me = me["id"].as_str().unwrap().to_string();
    let gw = gateway(&app);

    // Failure between the persons and the links.
    let (token, _) = three_person_session(&app).await;
    let path = format!("/api/preview/{token}/convert");
    gw.inject_fault(InjectedFault {
        operation: "insert_many",
        collection: "family_links",
        skip: 0,
    });
    let r = app.post(&path, json!({}), Some(&user)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    // The persons are in, no link yet: nothing points to a missing person.
    assert_converted_tree(&app, &user, 0).await;
    let r = app.get(&format!("/api/preview/{token}"), None).await;
    assert_eq!(
        r.status, 200,
        "the session stays until converted: {}",
        r.body
    );

    let r = app.post(&path, json!({}), Some(&user)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["persons_converted"], 3);
    assert_converted_tree(&app, &user, 2).await;
    assert_eq!(count(&app, "persons", doc! { "user_id": &me }).await, 3);
    assert_eq!(
        count(&app, "family_links", doc! { "user_id": &me }).await,
        2
    );

    // Failure after the persons and the links, before the session is deleted.
    let (user2, me2) = app.register("retry2@example.org").await;
    let me2 = me2["id"].as_str().unwrap().to_string();
    let (token, _) = three_person_session(&app).await;
    let path = format!("/api/preview/{token}/convert");
    gw.inject_fault(InjectedFault {
        operation: "delete_one",
        collection: "preview_sessions",
        skip: 0,
    });
    let r = app.post(&path, json!({}), Some(&user2)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_converted_tree(&app, &user2, 2).await;
    let r = app.post(&path, json!({}), Some(&user2)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_converted_tree(&app, &user2, 2).await;
    assert_eq!(count(&app, "persons", doc! { "user_id": &me2 }).await, 3);
    assert_eq!(
        count(&app, "family_links", doc! { "user_id": &me2 }).await,
        2
    );
    assert_eq!(
        count(&app, "preview_sessions", doc! { "session_token": &token }).await,
        0
    );
    // The stored documents are ordinary tree documents.
    let stored = find(&app, "persons", doc! { "user_id": &me2 }).await;
    for d in stored {
        assert!(!d.get_bool("is_preview").unwrap(), "{d}");
        assert!(d.get_datetime("created_at").is_ok(), "{d}");
    }
}

#[tokio::test]
async fn preview_routes_answer_503_at_once_during_an_outage() {
    let (mut db, app) = start().await;
    let (user, _) = app.register("outage@example.org").await;
    let token = new_session(&app).await;
    let session = add_person(&app, &token, "A").await;
    let a = person_id(&session, "A");
    let session = add_person(&app, &token, "B").await;
    let b = person_id(&session, "B");

    db.kill();
    app.wait_not_ready().await;
    assert_unavailable(&app, "POST", "/api/preview/session", Some(json!({})), None).await;
    assert_unavailable(&app, "GET", &format!("/api/preview/{token}"), None, None).await;
    assert_unavailable(
        &app,
        "POST",
        &format!("/api/preview/{token}/person"),
        Some(json!({ "first_name": "C", "last_name": "D" })),
        None,
    )
    .await;
    assert_unavailable(
        &app,
        "POST",
        &format!("/api/preview/{token}/link"),
        Some(json!({ "person_id_1": a, "person_id_2": b, "link_type": "spouse" })),
        None,
    )
    .await;
    assert_unavailable(
        &app,
        "POST",
        &format!("/api/preview/{token}/convert"),
        Some(json!({})),
        Some(&user),
    )
    .await;
}
