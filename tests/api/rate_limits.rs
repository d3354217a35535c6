//! Rate limits: per client address and per account, 429 + `Retry-After` + `detail`, the
//! client address from `X-Forwarded-For` only behind a trusted proxy, the limits in
//! `/metrics` and in the API description. Small limits are configured per test, so a few
//! requests reach them.

use serde_json::{Value, json};

use crate::common::{Database, Reply, TestApp, spawn_app_with};
use crate::support::invite;

async fn start_with(overrides: &[(&str, &str)]) -> (Database, TestApp) {
    let db = Database::start().await;
    let app = spawn_app_with(&db.url(), overrides).await;
    app.wait_ready().await;
    (db, app)
}

/// POST `body` to `path` with `X-Forwarded-For: forwarded_for` (when given).
async fn post_from(
    app: &TestApp,
    path: &str,
    body: Value,
    token: Option<&str>,
    forwarded_for: Option<&str>,
) -> Reply {
    let mut req = app.http.post(format!("{}{path}", app.address)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(f) = forwarded_for {
        req = req.header("x-forwarded-for", f);
    }
    let resp = req.send().await.expect("the service answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

fn login(email: &str) -> Value {
    json!({ "email": email, "password": "wrong-password" })
}

/// Asserts a 429 with a `Retry-After` of at least `min_secs` and a `detail` naming `what`.
fn assert_limited(r: &Reply, min_secs: u64, what: &str) {
    assert_eq!(r.status, 429, "{}", r.body);
    let secs: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(secs >= min_secs, "Retry-After {secs} < {min_secs}");
    assert!(r.detail().contains(what), "{}", r.body);
}

#[tokio::test]
async fn failed_logins_slow_an_account_down_whatever_the_address() {
    let (_db, app) = start_with(&[
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("RATE_LIMIT_LOGIN_PER_ACCOUNT", "3/15m"),
    ])
    .await;
    app.register("victim@example.org").await;
    // An attacker spreading its guesses over addresses: each address is new.
    for i in 0..3 {
        let from = format!("203.0.113.{i}");
        let r = post_from(
            &app,
            "/api/auth/login",
            login("victim@example.org"),
            None,
            Some(&from),
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = post_from(
        &app,
        "/api/auth/login",
        login("Victim@Example.org "),
        None,
        Some("203.0.113.99"),
    )
    .await;
    // One attempt comes back every 5 minutes (3 per 15 minutes).
    assert_limited(&r, 200, "for this account");
    assert!(
        r.body["retry_after_ms"].as_u64().unwrap() <= 300_000,
        "{}",
        r.body
    );
    // Other accounts are not affected (an unknown email is limited the same way, so 429
    // tells nothing about which emails exist).
    let r = post_from(
        &app,
        "/api/auth/login",
        login("other@example.org"),
        None,
        Some("203.0.113.99"),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);

    let metrics = app.get("/metrics", None).await;
    let _ = metrics;
    let text = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "aila_rate_limit_refused_requests_total{scope=\"login\",per=\"account\"} 1",
        "aila_rate_limit_allowed_requests{scope=\"login\",per=\"account\"} 3",
        "aila_rate_limit_period_seconds{scope=\"login\",per=\"account\"} 900",
        "aila_rate_limit_allowed_requests{scope=\"login\",per=\"address\"} 0",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
}

#[tokio::test]
async fn the_client_address_comes_from_forwarded_for_only_behind_a_trusted_proxy() {
    let limits = [("RATE_LIMIT_LOGIN_PER_ADDRESS", "2/1h")];
    // No trusted proxy: the header is the client's own claim and is ignored.
    let (_db, app) = start_with(&limits).await;
    for i in 0..2 {
        let r = post_from(
            &app,
            "/api/auth/login",
            login(&format!("u{i}@example.org")),
            None,
            Some(&format!("198.51.100.{i}")),
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = post_from(
        &app,
        "/api/auth/login",
        login("u9@example.org"),
        None,
        Some("198.51.100.9"),
    )
    .await;
    assert_limited(&r, 1000, "from your address");

    // Behind a trusted proxy (the peer, loopback here), each forwarded client has its own
    // allowance, and what a client prepends to the header does not count.
    let (_db2, app) = start_with(&[limits[0], ("TRUSTED_PROXIES", "127.0.0.0/8")]).await;
    for _ in 0..2 {
        let r = post_from(
            &app,
            "/api/auth/login",
            login("a@example.org"),
            None,
            Some("198.51.100.1"),
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = post_from(
        &app,
        "/api/auth/login",
        login("a@example.org"),
        None,
        Some("6.6.6.6, 198.51.100.1"),
    )
    .await;
    assert_limited(&r, 1000, "from your address");
    let r = post_from(
        &app,
        "/api/auth/login",
        login("a@example.org"),
        None,
        Some("198.51.100.2"),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
}

#[tokio::test]
async fn registration_preview_invitations_and_contributions_are_limited() {
    let (_db, app) = start_with(&[
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("RATE_LIMIT_REGISTER_PER_ADDRESS", "2/1h"),
        ("RATE_LIMIT_PREVIEW_SESSION_PER_ADDRESS", "1/1h"),
        ("RATE_LIMIT_PREVIEW_WRITE_PER_SESSION", "1/1h"),
        ("RATE_LIMIT_INVITE_PER_ACCOUNT", "1/1h"),
        ("RATE_LIMIT_CONTRIBUTION_PER_ACCOUNT", "1/1h"),
    ])
    .await;
    let register = |email: &str| json!({"email": email, "password": "Password123!", "first_name": "A", "last_name": "B", "gdpr_consent": true});
    // Registration, per address.
    let owner = post_from(
        &app,
        "/api/auth/register",
        register("owner@example.org"),
        None,
        Some("192.0.2.1"),
    )
    .await;
    assert_eq!(owner.status, 200, "{}", owner.body);
    let owner_token = owner.str("access_token").to_string();
    let owner_id = owner.body["user"]["id"].as_str().unwrap().to_string();
    let editor = post_from(
        &app,
        "/api/auth/register",
        register("editor@example.org"),
        None,
        Some("192.0.2.1"),
    )
    .await;
    assert_eq!(editor.status, 200, "{}", editor.body);
    let editor_token = editor.str("access_token").to_string();
    let r = post_from(
        &app,
        "/api/auth/register",
        register("third@example.org"),
        None,
        Some("192.0.2.1"),
    )
    .await;
    assert_limited(&r, 1000, "from your address");
    let r = post_from(
        &app,
        "/api/auth/register",
        register("third@example.org"),
        None,
        Some("192.0.2.2"),
    )
    .await;
    assert_eq!(r.status, 200, "another address registers: {}", r.body);

    // Preview sessions, per address; preview writes, per session.
    let s = post_from(
        &app,
        "/api/preview/session",
        json!({}),
        None,
        Some("192.0.2.1"),
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.body);
    let token = s.str("session_token").to_string();
    let r = post_from(
        &app,
        "/api/preview/session",
        json!({}),
        None,
        Some("192.0.2.1"),
    )
    .await;
    assert_limited(&r, 1000, "from your address");
    let person = json!({ "first_name": "Ada", "last_name": "L" });
    let path = format!("/api/preview/{token}/person");
    let r = post_from(&app, &path, person.clone(), None, Some("192.0.2.1")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post_from(&app, &path, person, None, Some("192.0.2.7")).await;
    assert_limited(&r, 1000, "for this preview session");

    // Invitations, per account (the editor's address verified: its invitation is accepted
    // at once, and the contributions below are allowed).
    crate::support::mark_verified(&app, "editor@example.org").await;
    invite(&app, &owner_token, "editor@example.org", "editor").await;
    let r = post_from(
        &app,
        "/api/collaborators/invite",
        json!({"email": "x@example.org", "role": "viewer"}),
        Some(&owner_token),
        Some("192.0.2.8"),
    )
    .await;
    assert_limited(&r, 1000, "for your account");

    // Contributions, per account.
    let contribution = json!({ "action": "add", "entity_type": "person", "entity_data": { "first_name": "Bo", "last_name": "C" } });
    let path = format!("/api/contributions?owner_id={owner_id}");
    let r = post_from(&app, &path, contribution.clone(), Some(&editor_token), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post_from(
        &app,
        &path,
        contribution,
        Some(&editor_token),
        Some("192.0.2.9"),
    )
    .await;
    assert_limited(&r, 1000, "for your account");
}

#[tokio::test]
async fn the_api_description_shows_429_on_the_limited_routes_only() {
    let (_db, app) = start_with(&[]).await;
    let spec = app.get("/openapi.json", None).await;
    let paths = &spec.body["paths"];
    for (path, method) in [
        ("/api/auth/login", "post"),
        ("/api/auth/register", "post"),
        ("/api/preview/session", "post"),
        ("/api/preview/{token}/person", "post"),
        ("/api/preview/{token}/link", "post"),
        ("/api/preview/{token}/convert", "post"),
        ("/api/collaborators/invite", "post"),
        ("/api/contributions", "post"),
    ] {
        let r = &paths[path][method]["responses"]["429"];
        assert!(r.is_object(), "{method} {path} does not document 429");
        assert!(
            r["headers"]["RETRY-AFTER"].is_object(),
            "{method} {path}: {r}"
        );
    }
    for (path, method) in [("/api/persons", "get"), ("/api/auth/me", "get")] {
        assert!(
            paths[path][method]["responses"]["429"].is_null(),
            "{method} {path} documents 429"
        );
    }
}
