//! `/api/auth`: register, login, me; the first admin under concurrent registrations; a
//! burst of logins leaves `/health` responsive; invitations are claimed at registration.

use std::time::{Duration, Instant};

use aila_api::auth::token::TokenCodec;
use aila_api::domain::enums::Role;
use aila_api::repo::users::{self, Created, NewUser};
use bson::{Bson, Document, doc, oid::ObjectId};
use futures::future::join_all;
use mongodb::Collection;
use serde_json::json;

use crate::start;

const PASSWORD: &str = "Password123!";

fn register_body(email: &str) -> serde_json::Value {
    json!({
        "email": email, "password": PASSWORD, "first_name": "Ada",
        "last_name": "Lovelace", "gdpr_consent": true,
    })
}

fn is_iso_utc(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok() && s.ends_with('Z')
}

#[tokio::test]
async fn register_answers_a_token_and_the_user_and_the_first_user_is_admin() {
    let (_db, app) = start().await;
    let mut body = register_body("  Ada.Lovelace@Example.ORG ");
    body["algerian_branch"] = json!("ignored");
    let r = app.post("/api/auth/register", body, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.str("token_type"), "bearer");
    let user = &r.body["user"];
    assert_eq!(user["email"], "ada.lovelace@example.org");
    assert_eq!(user["first_name"], "Ada");
    assert_eq!(user["last_name"], "Lovelace");
    assert_eq!(user["gdpr_consent"], true);
    assert_eq!(user["role"], "admin");
    assert!(user.get("password_hash").is_none() && user.get("_id").is_none());
    assert_eq!(user["id"].as_str().unwrap().len(), 24);
    assert!(is_iso_utc(user["created_at"].as_str().unwrap()), "{user}");
    assert!(
        is_iso_utc(user["gdpr_consent_date"].as_str().unwrap()),
        "{user}"
    );

    // The token is ours: HS256 with the configured secret, for this user, 7 days.
    let claims = TokenCodec::new(b"test-secret-for-the-harness")
        .verify(r.str("access_token"))
        .unwrap();
    assert_eq!(claims.user_id, user["id"].as_str().unwrap());
    assert_eq!(claims.exp - claims.iat, 7 * 24 * 3600);

    let me = app.get("/api/auth/me", Some(r.str("access_token"))).await;
    assert_eq!(me.status, 200);
    assert_eq!(&me.body, user);

    let (_, second) = app.register("grace@example.org").await;
    assert_eq!(second["role"], "member");
}

#[tokio::test]
async fn register_refuses_taken_emails_missing_consent_and_invalid_fields() {
    let (_db, app) = start().await;
    app.register("ada@example.org").await;

    let r = app
        .post("/api/auth/register", register_body("ADA@example.org"), None)
        .await;
    assert_eq!((r.status, r.detail()), (400, "Email already registered"));

    let mut no_consent = register_body("bob@example.org");
    no_consent["gdpr_consent"] = json!(false);
    let r = app.post("/api/auth/register", no_consent, None).await;
    assert_eq!((r.status, r.detail()), (400, "GDPR consent is required"));
    let mut missing_consent = register_body("bob@example.org");
    missing_consent
        .as_object_mut()
        .unwrap()
        .remove("gdpr_consent");
    let r = app.post("/api/auth/register", missing_consent, None).await;
    assert_eq!((r.status, r.detail()), (400, "GDPR consent is required"));

    let cases = [
        ("email", json!("not-an-email")),
        ("email", json!("bob@localhost")),
        ("email", json!(42)),
        ("password", json!("12345")),
        ("password", json!("x".repeat(73))),
        ("password", json!("é".repeat(37))),
        ("first_name", json!("   ")),
        ("last_name", json!("")),
        ("gdpr_consent", json!("yes")),
    ];
    for (field, value) in cases {
        let mut body = register_body("bob@example.org");
        body[field] = value.clone();
        let r = app.post("/api/auth/register", body, None).await;
        assert_eq!(r.status, 422, "{field}={value}: {}", r.body);
        assert!(
            r.detail().contains(field),
            "{field}={value}: {}",
            r.detail()
        );
    }
    let mut body = register_body("bob@example.org");
    body.as_object_mut().unwrap().remove("last_name");
    let r = app.post("/api/auth/register", body, None).await;
    assert_eq!(r.status, 422);
    assert!(r.detail().contains("last_name"), "{}", r.detail());

    // None of the refused registrations created a user.
    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "bob@example.org", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn login_answers_the_same_401_for_an_unknown_email_and_a_wrong_password() {
    let (_db, app) = start().await;
    let (_, user) = app.register("ada@example.org").await;

    let r = app
        .post(
            "/api/auth/login",
            json!({"email": " ADA@Example.org", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.str("token_type"), "bearer");
    assert_eq!(r.body["user"], user);
    let me = app.get("/api/auth/me", Some(r.str("access_token"))).await;
    assert_eq!(me.body["id"], user["id"]);

    let wrong = app
        .post(
            "/api/auth/login",
            json!({"email": "ada@example.org", "password": "Password123?"}),
            None,
        )
        .await;
    let unknown = app
        .post(
            "/api/auth/login",
            json!({"email": "nobody@example.org", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.detail()),
        (401, "Invalid email or password")
    );
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(unknown.status, 401);

    let r = app
        .post("/api/auth/login", json!({"email": "ada@example.org"}), None)
        .await;
    assert_eq!(r.status, 422);
    assert!(r.detail().contains("password"), "{}", r.detail());
}

#[tokio::test]
async fn me_refuses_missing_invalid_expired_and_orphan_tokens() {
    let (_db, app) = start().await;
    let (token, user) = app.register("ada@example.org").await;
    assert_eq!(app.get("/api/auth/me", Some(&token)).await.status, 200);

    let r = app.get("/api/auth/me", None).await;
    assert_eq!((r.status, r.detail()), (401, "Not authenticated"));
    let r = app.get("/api/auth/me", Some("not.a.token")).await;
    assert_eq!((r.status, r.detail()), (401, "Invalid token"));
    let tampered = TokenCodec::new(b"another-secret").issue(user["id"].as_str().unwrap());
    let r = app.get("/api/auth/me", Some(&tampered)).await;
    assert_eq!((r.status, r.detail()), (401, "Invalid token"));
    let codec = TokenCodec::new(b"test-secret-for-the-harness");
    let expired = codec.issue_at(
        user["id"].as_str().unwrap(),
        chrono::Utc::now().timestamp() - 8 * 24 * 3600,
    );
    let r = app.get("/api/auth/me", Some(&expired)).await;
    assert_eq!((r.status, r.detail()), (401, "Token expired"));
    let orphan = codec.issue(&ObjectId::new().to_hex());
    let r = app.get("/api/auth/me", Some(&orphan)).await;
    assert_eq!((r.status, r.detail()), (401, "User not found"));
    let not_an_id = codec.issue("not-an-object-id");
    let r = app.get("/api/auth/me", Some(&not_an_id)).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn ten_simultaneous_first_registrations_make_exactly_one_admin() {
    let (_db, app) = start().await;
    let replies = join_all((0..10).map(|i| {
        let app = &app;
        async move {
            app.post(
                "/api/auth/register",
                register_body(&format!("user{i}@example.org")),
                None,
            )
            .await
        }
    }))
    .await;
    let mut admin_token = None;
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["user"]["role"] == "admin" {
            assert!(admin_token.is_none(), "two admins: {replies:?}");
            admin_token = Some(r.str("access_token").to_string());
        }
    }
    let admin_token = admin_token.expect("one registration became admin");
    let users = app.get("/api/users", Some(&admin_token)).await;
    assert_eq!(users.status, 200);
    let users = users.body.as_array().unwrap();
    assert_eq!(users.len(), 10);
    assert_eq!(users.iter().filter(|u| u["role"] == "admin").count(), 1);

    // Later registrations are members.
    let (_, late) = app.register("late@example.org").await;
    assert_eq!(late["role"], "member");
}

#[tokio::test]
async fn ten_interleaved_first_user_creations_make_exactly_one_admin() {
    // Over HTTP the bcrypt work spaces registrations out; here the ten creations run their
    // "no user yet?" checks at the same time, which a count-then-insert would get wrong.
    let (_db, app) = start().await;
    let gw = &app.app().context().gateway;
    let created = join_all((0..10).map(|i| {
        users::create(
            gw,
            NewUser {
                email: format!("user{i}@example.org"),
                password_hash: "$2b$04$not-a-real-hash".into(),
                first_name: "U".into(),
                last_name: format!("{i}"),
                gdpr_consent: true,
            },
        )
    }))
    .await;
    let roles: Vec<Role> = created
        .into_iter()
        .map(|c| match c.unwrap() {
            Created::User(u) => u.role(),
            Created::EmailTaken => panic!("distinct emails"),
        })
        .collect();
    assert_eq!(
        roles.iter().filter(|r| **r == Role::Admin).count(),
        1,
        "{roles:?}"
    );
    let stored = users::list(gw, 100).await.unwrap();
    assert_eq!(stored.len(), 10);
    assert_eq!(stored.iter().filter(|u| u.is_admin()).count(), 1);
}

#[tokio::test]
async fn a_first_admin_marker_left_without_its_user_is_taken_over_once_stale() {
    // A crash between the marker and the user insert (or a first admin who deleted their
    // account from an otherwise empty database) leaves a marker naming nobody.
    let (_db, app) = start().await;
    let gw = &app.app().context().gateway;
    let set_marker = |age_secs: i64| async move {
        let claimed_at =
            bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() - age_secs * 1000);
        gw.run(
            "delete_many",
            "service_flags",
            |c: Collection<Document>| async move { c.delete_many(doc! {}).await.map(|_| ()) },
        )
        .await
        .unwrap();
        let marker =
            doc! { "_id": "first_admin", "user_id": ObjectId::new(), "claimed_at": claimed_at };
        gw.run(
            "insert_one",
            "service_flags",
            |c: Collection<Document>| async move { c.insert_one(marker).await.map(|_| ()) },
        )
        .await
        .unwrap();
    };

    // Fresh: a registration may still be between its two writes; no takeover.
    set_marker(5).await;
    let fresh = users::claim_first_admin(gw, ObjectId::new()).await.unwrap();
    assert!(!fresh);

    // Stale: the next first registration becomes admin.
    set_marker(10 * 60).await;
    let (_, user) = app.register("ada@example.org").await;
    assert_eq!(user["role"], "admin");
    let (_, second) = app.register("bob@example.org").await;
    assert_eq!(second["role"], "member");
}

#[tokio::test]
async fn a_database_that_already_has_users_gets_no_new_admin() {
    // A database migrated from the old service: users, no first-admin marker.
    let (_db, app) = start().await;
    let gw = &app.app().context().gateway;
    aila_api::repo::users::insert_raw(
        gw,
        doc! { "email": "old@example.org", "password_hash": "$2b$12$x", "first_name": "Old" },
    )
    .await
    .unwrap();
    let (_, user) = app.register("new@example.org").await;
    assert_eq!(user["role"], "member");
}

#[tokio::test]
async fn a_burst_of_logins_does_not_stall_health() {
    let (_db, app) = start().await;
    app.register("ada@example.org").await;
    let logins = async {
        let replies = join_all((0..8).map(|_| {
            app.post(
                "/api/auth/login",
                json!({"email": "ada@example.org", "password": PASSWORD}),
                None,
            )
        }))
        .await;
        for r in replies {
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let probes = async {
        let mut latencies = Vec::new();
        while !done.load(std::sync::atomic::Ordering::Acquire) {
            let started = Instant::now();
            let r = app.get("/health", None).await;
            latencies.push(started.elapsed());
            assert_eq!(r.status, 200);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        latencies
    };
    let (_, latencies) = tokio::join!(
        async {
            logins.await;
            done.store(true, std::sync::atomic::Ordering::Release);
        },
        probes
    );
    assert!(latencies.len() >= 5, "too few probes ran: {latencies:?}");
    let worst = latencies.iter().max().unwrap();
    assert!(
        *worst < Duration::from_millis(200),
        "/health took {worst:?} during the logins: {latencies:?}"
    );
}

#[tokio::test]
async fn pending_invitations_are_accepted_for_a_verified_email_never_at_registration() {
    let (_db, app) = start().await;
    let (_, owner) = app.register("owner@example.org").await;
    let gw = &app.app().context().gateway;
    let invitation = doc! {
        "tree_owner_id": owner["id"].as_str().unwrap(),
        "user_id": Bson::Null,
        "email": "invitee@example.org",
        "role": "viewer",
        "status": "pending",
        "invite_token": "3b241101-e2bb-4255-8caf-4136c566a962",
        "invited_at": bson::DateTime::now(),
        "accepted_at": Bson::Null,
    };
    gw.run(
        "insert_one",
        "collaborators",
        |c: Collection<Document>| async move { c.insert_one(invitation).await.map(|_| ()) },
    )
    .await
    .unwrap();

    let (_, invitee) = app.register("Invitee@Example.org").await;
    let stored = || async {
        gw.run(
            "find_one",
            "collaborators",
            |c: Collection<Document>| async move {
                c.find_one(doc! { "email": "invitee@example.org" }).await
            },
        )
        .await
        .unwrap()
        .unwrap()
    };
    // A bare registration proves nothing about who owns the address.
    let pending = stored().await;
    assert_eq!(pending.get_str("status").unwrap(), "pending", "{pending}");
    assert_eq!(pending.get("user_id"), Some(&Bson::Null), "{pending}");
    // Once the address is verified (its mailed link: tests/api/mail.rs), the next login
    // accepts it.
    crate::support::verify_and_login(&app, "invitee@example.org").await;
    let stored = stored().await;
    assert_eq!(stored.get_str("status").unwrap(), "accepted");
    assert_eq!(
        stored.get_str("user_id").unwrap(),
        invitee["id"].as_str().unwrap()
    );
    assert!(stored.get_datetime("accepted_at").is_ok(), "{stored}");
}
