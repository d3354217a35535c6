//! The database killed: every auth, user, person, link and tree route answers 503 with
//! `Retry-After` (seconds) and `Retry-After-Ms` at once; `/`, `/health` and the API
//! description keep answering 200; after a restart the data is all there.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{create_link, create_person, id, start};

#[tokio::test]
async fn with_the_database_down_every_route_answers_503_fast_and_the_rest_200() {
    let (mut db, app) = start().await;
    let (admin, _) = app.register("admin@example.org").await;
    let (_, member) = app.register("member@example.org").await;
    let p1 = id(&create_person(&app, &admin, "A").await);
    let p2 = id(&create_person(&app, &admin, "B").await);
    let link = id(&create_link(&app, &admin, &p1, &p2, "sibling").await);
    let member_id = id(&member);
    let tree_before = app.get("/api/tree", Some(&admin)).await.body;

    db.kill();
    app.wait_not_ready().await;

    let person_body = json!({"first_name": "C", "last_name": "D"});
    let requests: Vec<(&str, String, Option<serde_json::Value>, Option<&str>)> = vec![
        (
            "POST",
            "/api/auth/register".into(),
            Some(
                json!({"email": "new@example.org", "password": "Password123!", "first_name": "N",
                        "last_name": "U", "gdpr_consent": true}),
            ),
            None,
        ),
        (
            "POST",
            "/api/auth/login".into(),
            Some(json!({"email": "admin@example.org", "password": "Password123!"})),
            None,
        ),
        ("GET", "/api/auth/me".into(), None, Some(&admin)),
        ("GET", "/api/users".into(), None, Some(&admin)),
        (
            "PUT",
            format!("/api/users/{member_id}/promote"),
            None,
            Some(&admin),
        ),
        (
            "PUT",
            format!("/api/users/{member_id}/demote"),
            None,
            Some(&admin),
        ),
        (
            "POST",
            "/api/persons".into(),
            Some(person_body),
            Some(&admin),
        ),
        ("GET", "/api/persons".into(), None, Some(&admin)),
        ("GET", format!("/api/persons/{p1}"), None, Some(&admin)),
        (
            "PUT",
            format!("/api/persons/{p1}"),
            Some(json!({"notes": "n"})),
            Some(&admin),
        ),
        ("DELETE", format!("/api/persons/{p1}"), None, Some(&admin)),
        (
            "POST",
            "/api/links".into(),
            Some(json!({"person_id_1": p1, "person_id_2": p2, "link_type": "spouse"})),
            Some(&admin),
        ),
        ("GET", "/api/links".into(), None, Some(&admin)),
        ("DELETE", format!("/api/links/{link}"), None, Some(&admin)),
        ("GET", "/api/tree".into(), None, Some(&admin)),
    ];
    for (method, path, body, token) in requests {
        crate::support::assert_unavailable(&app, method, &path, body, token).await;
    }

    for path in ["/", "/health", "/api/health", "/openapi.json"] {
        let started = Instant::now();
        let r = app.get(path, None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(started.elapsed() < Duration::from_secs(1), "{path}");
    }

    db.restart().await;
    app.wait_ready().await;
    let r = app.get("/api/tree", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, tree_before);
}

/// The Expo web front end runs on another origin: a browser lets it read a response header
/// only when CORS exposes it. `Retry-After`, `Retry-After-Ms` (how long to wait during an
/// outage) and `Idempotent-Replayed` are not CORS-safelisted, so they must be listed in
/// `Access-Control-Expose-Headers`, or the app retries blind.
#[tokio::test]
async fn a_front_end_on_another_origin_can_read_the_retry_hints_of_a_503() {
    let (mut db, app) = start().await;
    let (token, _) = app.register("cors@example.org").await;
    db.kill();
    app.wait_not_ready().await;

    let resp = app
        .http
        .get(format!("{}/api/persons", app.address))
        .bearer_auth(&token)
        .header("Origin", "http://localhost:8081")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let exposed: Vec<String> = resp
        .headers()
        .get_all("access-control-expose-headers")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for header in ["retry-after", "retry-after-ms", "idempotent-replayed"] {
        assert!(
            exposed.iter().any(|e| e == header),
            "{header} not in Access-Control-Expose-Headers: {exposed:?}"
        );
    }
}
