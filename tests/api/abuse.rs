//! Input an attacker would send, and what closes it: control characters in emails (never a
//! 500), stored emails lower-cased once at start-up (so an unknown email costs one indexed
//! lookup, no per-request scan).

use aila_api::repo::users;
use bson::{Document, doc, oid::ObjectId};
use serde_json::json;

use crate::common::{spawn_app_with, wait_until};
use crate::start;
use crate::support::find;

const PASSWORD: &str = "Password123!";

fn register_body(email: &str) -> serde_json::Value {
    json!({
        "email": email, "password": PASSWORD, "first_name": "Ada",
        "last_name": "Lovelace", "gdpr_consent": true,
    })
}

/// The request: `{"email":"a\u0000@x.org"}` on login answered 500.
#[tokio::test]
async fn emails_with_nul_or_control_characters_are_refused_never_500() {
    let (_db, app) = start().await;
    let (owner, _) = app.register("owner@example.org").await;
    for email in [
        "a\u{0}@x.org",
        "a@x\u{0}.org",
        "a\n@x.org",
        "a\u{1b}[31m@x.org",
        "a\u{7f}@x.org",
    ] {
        let r = app
            .post(
                "/api/auth/login",
                json!({"email": email, "password": "whatever1"}),
                None,
            )
            .await;
        assert_eq!(
            (r.status, r.detail()),
            (401, "Invalid email or password"),
            "{email:?}"
        );

        let r = app
            .post("/api/auth/register", register_body(email), None)
            .await;
        assert_eq!(r.status, 422, "{email:?}: {}", r.body);
        assert!(r.detail().contains("control characters"), "{}", r.body);

        let invite = json!({"email": email, "role": "viewer"});
        let r = app
            .post("/api/collaborators/invite", invite, Some(&owner))
            .await;
        assert_eq!(r.status, 422, "{email:?}: {}", r.body);
        assert!(r.detail().contains("control characters"), "{}", r.body);
    }
    // Surrounding whitespace (a pasted address) is still trimmed, not refused.
    let r = app
        .post(
            "/api/auth/register",
            register_body(" new@example.org\n"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

fn old_user(email: &str) -> Document {
    doc! {
        "_id": ObjectId::new(), "email": email, "password_hash": "$2b$12$x",
        "first_name": "Old", "last_name": "User",
    }
}

async fn stored_emails(app: &crate::common::TestApp) -> Vec<String> {
    let mut emails: Vec<String> = find(app, users::USERS, doc! {})
        .await
        .iter()
        .map(|u| u.get_str("email").unwrap().to_string())
        .collect();
    emails.sort();
    emails
}

#[tokio::test]
async fn stored_emails_are_lower_cased_once_at_start_up_and_case_twins_are_left_alone() {
    let (db, app) = start().await;
    let gw = &app.app().context().gateway;
    for email in [
        "Mixed.Case@Example.ORG",
        "Zoé.ÉCOLE@Exemple.fr",
        "twin@example.org",
        "TWIN@Example.org",
        "already@example.org",
    ] {
        users::insert_raw(gw, old_user(email)).await.unwrap();
    }
    // The documents were written after this service started: it does not scan per request,
    // so another case finds nothing yet.
    assert!(
        users::find_by_email(gw, "mixed.case@example.org")
            .await
            .unwrap()
            .is_none()
    );

    // A restart on those documents lower-cases them, in the background.
    let restarted = spawn_app_with(&db.url(), &[("DB_NAME", &app.db_name)]).await;
    restarted.wait_ready().await;
    wait_until("stored emails lower-cased", || async {
        stored_emails(&restarted)
            .await
            .contains(&"zoé.école@exemple.fr".to_string())
    })
    .await;
    let expected = vec![
        "TWIN@Example.org".to_string(),
        "already@example.org".to_string(),
        "mixed.case@example.org".to_string(),
        "twin@example.org".to_string(),
        "zoé.école@exemple.fr".to_string(),
    ];
    assert_eq!(stored_emails(&restarted).await, expected);
    let rgw = &restarted.app().context().gateway;
    let found = users::find_by_email(rgw, "MIXED.case@example.org")
        .await
        .unwrap();
    assert_eq!(found.unwrap().email, "mixed.case@example.org");
    // A case twin still finds its own document with its exact spelling.
    let twin = users::find_by_email(rgw, "TWIN@Example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(twin.email, "TWIN@Example.org");

    // Idempotent: another start changes nothing and still starts.
    let again = spawn_app_with(&db.url(), &[("DB_NAME", &app.db_name)]).await;
    again.wait_ready().await;
    let r = again
        .post(
            "/api/auth/login",
            json!({"email": "nobody@example.org", "password": "x1234567"}),
            None,
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(stored_emails(&again).await, expected);
}

/// `POST /api/auth/logout` revokes every token of the caller issued before it, and only
/// those: a token issued right after it (the same second, even the same millisecond)
/// works.
#[tokio::test]
async fn logout_revokes_the_callers_earlier_tokens_and_only_those() {
    let (_db, app) = start().await;
    let (first, _) = app.register("ada@example.org").await;
    let (other, _) = app.register("other@example.org").await;
    let login = || async {
        let r = app
            .post(
                "/api/auth/login",
                json!({"email": "ada@example.org", "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.str("access_token").to_string()
    };
    let second = login().await;
    for t in [&first, &second] {
        assert_eq!(app.get("/api/auth/me", Some(t)).await.status, 200);
    }

    let r = app
        .request("POST", "/api/auth/logout", None, Some(&second))
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    for t in [&first, &second] {
        let r = app.get("/api/auth/me", Some(t)).await;
        assert_eq!((r.status, r.detail()), (401, "Token revoked"));
        let r = app.request("POST", "/api/auth/logout", None, Some(t)).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    // Another user's tokens are untouched.
    assert_eq!(app.get("/api/auth/me", Some(&other)).await.status, 200);

    // Log in and out in a tight loop: each new token works at once, each logout ends it.
    for _ in 0..5 {
        let fresh = login().await;
        let r = app.get("/api/auth/me", Some(&fresh)).await;
        assert_eq!(
            r.status, 200,
            "a token issued right after a logout: {}",
            r.body
        );
        let r = app
            .request("POST", "/api/auth/logout", None, Some(&fresh))
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
        let r = app.get("/api/auth/me", Some(&fresh)).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = app.request("POST", "/api/auth/logout", None, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
}

/// A password change moves the same cutoff: every earlier token is revoked.
#[tokio::test]
async fn a_password_change_revokes_earlier_tokens() {
    let (_db, app) = start().await;
    let (token, user) = app.register("ada@example.org").await;
    let gw = &app.app().context().gateway;
    let id = ObjectId::parse_str(user["id"].as_str().unwrap()).unwrap();
    let hash = app
        .app()
        .context()
        .hasher
        .hash("NewPassword1!".to_string())
        .await
        .unwrap()
        .unwrap();
    assert!(users::set_password(gw, id, hash).await.unwrap());
    let r = app.get("/api/auth/me", Some(&token)).await;
    assert_eq!((r.status, r.detail()), (401, "Token revoked"));
    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "ada@example.org", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "ada@example.org", "password": "NewPassword1!"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        app.get("/api/auth/me", Some(r.str("access_token")))
            .await
            .status,
        200
    );
}

/// The database's error text (addresses, driver messages) is for operators: `/health` and
/// `/readiness` show it only when configured to, and never by default in production.
#[tokio::test]
async fn health_shows_database_error_text_only_when_configured_to() {
    let db = crate::common::Database::unstarted();
    for (show, overrides) in [
        (true, vec![]),
        (false, vec![("HEALTH_SHOW_ERRORS", "false")]),
    ] {
        let app = spawn_app_with(&db.url(), &overrides).await;
        let url = format!("{}/health", app.address);
        let http = app.http.clone();
        // Until the reconnect loop has failed at least twice (it has error text to show).
        wait_until("reconnect attempts", || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let h: serde_json::Value =
                    http.get(&url).send().await.unwrap().json().await.unwrap();
                h["reconnect"]["attempt"].as_u64().unwrap_or(0) >= 2
            }
        })
        .await;
        for path in ["/health", "/readiness"] {
            let h = app.get(path, None).await;
            // The state fields stay.
            assert_ne!(h.body["database"], "connected", "{path}: {}", h.body);
            assert!(h.body["reconnect"]["attempt"].as_u64().unwrap() >= 2);
            assert!(h.body["circuit_breaker"]["state"].is_string());
            let text = h.body.to_string();
            if show {
                assert!(
                    h.body["reconnect"]["last_error"].is_string(),
                    "{path}: {text}"
                );
            } else {
                assert_eq!(
                    h.body["reconnect"]["last_error"],
                    json!(null),
                    "{path}: {text}"
                );
                assert_eq!(
                    h.body["circuit_breaker"]["last_failure"],
                    json!(null),
                    "{text}"
                );
                for m in h.body["members"].as_array().unwrap() {
                    assert_eq!(m["last_error"], json!(null), "{text}");
                }
                for error_text in ["refused", "no answer within"] {
                    assert!(!text.to_lowercase().contains(error_text), "{path}: {text}");
                }
            }
        }
    }
}

/// An inviter cannot tell from the answer whether an email has an account.
#[tokio::test]
async fn the_invite_answer_does_not_reveal_whether_an_email_has_an_account() {
    let (_db, app) = start().await;
    let (owner, _) = app.register("owner@example.org").await;
    app.register("member@example.org").await;
    let strip = |mut c: serde_json::Value| {
        let o = c.as_object_mut().unwrap();
        for k in ["id", "email", "invited_at"] {
            assert!(o.remove(k).is_some(), "{k}");
        }
        c
    };
    let known = crate::support::invite(&app, &owner, "member@example.org", "viewer").await;
    let unknown = crate::support::invite(&app, &owner, "nobody@example.org", "viewer").await;
    assert_eq!(known["status"], "pending", "{known}");
    assert_eq!(strip(known), strip(unknown));
}
