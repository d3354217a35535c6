//! Collaborators: inviting a registered user (accepted at once, notified, the answer not
//! telling), inviting an
//! unknown email (pending until it registers), the 400s (twice, oneself) and 422s, the
//! owner's list and the invitee's "shared with me", removal by the owner only, and the
//! outage.

use bson::doc;
use serde_json::json;

use crate::support::{assert_unavailable, count, invite, register_verified};
use crate::{create_person, id, start};

#[tokio::test]
async fn inviting_a_verified_user_accepts_at_once_and_notifies_them() {
    let (_db, app) = start().await;
    let (owner, owner_user) = register_verified(&app, "owner@example.org").await;
    let (guest, guest_user) = register_verified(&app, "guest@example.org").await;
    create_person(&app, &owner, "P1").await;
    create_person(&app, &owner, "P2").await;

    let answer = invite(&app, &owner, "  Guest@Example.ORG ", "viewer").await;
    // The answer does not tell that the email has an account (see abuse.rs)...
    assert_eq!(answer["status"], "pending");
    assert_eq!(answer["user_id"], json!(null));
    // ...the owner's list shows the invitation accepted at once.
    let r = app.get("/api/collaborators", Some(&owner)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = r.body[0].clone();
    assert_eq!(r.body.as_array().unwrap().len(), 1, "{}", r.body);
    assert_eq!(c["id"], answer["id"]);
    assert_eq!(c["tree_owner_id"], owner_user["id"]);
    assert_eq!(c["user_id"], guest_user["id"]);
    assert_eq!(c["email"], "guest@example.org");
    assert_eq!(c["role"], "viewer");
    assert_eq!(c["status"], "accepted");
    assert!(
        c["invited_at"].is_string() && c["accepted_at"].is_string(),
        "{c}"
    );
    assert_eq!(id(&c).len(), 24);
    assert!(c.get("_id").is_none() && c.get("invite_token").is_none());

    let r = app.get("/api/notifications", Some(&guest)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let notes = r.body.as_array().unwrap();
    assert_eq!(notes.len(), 1, "{}", r.body);
    assert_eq!(notes[0]["type"], "collaboration_invite");
    assert_eq!(notes[0]["user_id"], guest_user["id"]);
    assert_eq!(notes[0]["read"], false);
    assert_eq!(notes[0]["data"]["tree_owner_id"], owner_user["id"]);

    let r = app
        .get("/api/collaborators/shared-with-me", Some(&guest))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!([{
            "id": c["id"],
            "owner_id": owner_user["id"],
            "owner_name": "Ada Lovelace",
            "owner_email": "owner@example.org",
            "role": "viewer",
            "persons_count": 2,
            "accepted_at": c["accepted_at"],
        }])
    );
    // The owner shares nothing with themselves, and the guest owns no collaborators.
    let r = app
        .get("/api/collaborators/shared-with-me", Some(&owner))
        .await;
    assert_eq!(r.body, json!([]));
    let r = app.get("/api/collaborators", Some(&guest)).await;
    assert_eq!(r.body, json!([]));
}

#[tokio::test]
async fn an_invitation_to_an_unknown_email_waits_until_that_email_is_registered_and_verified() {
    let (_db, app) = start().await;
    let (owner, owner_user) = register_verified(&app, "owner@example.org").await;
    let c = invite(&app, &owner, "later@example.org", "editor").await;
    assert_eq!(c["status"], "pending");
    assert_eq!(c["user_id"], json!(null));
    assert_eq!(c["accepted_at"], json!(null));
    assert_eq!(c["role"], "editor");

    let (_, later_user) = app.register("Later@Example.org").await;
    let r = app.get("/api/collaborators", Some(&owner)).await;
    assert_eq!(
        r.body[0]["status"], "pending",
        "registered, not verified: {}",
        r.body
    );
    let later = crate::support::verify_and_login(&app, "later@example.org").await;
    let r = app.get("/api/collaborators", Some(&owner)).await;
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "accepted");
    assert_eq!(list[0]["user_id"], later_user["id"]);
    assert!(list[0]["accepted_at"].is_string());

    let r = app
        .get("/api/collaborators/shared-with-me", Some(&later))
        .await;
    let shared = r.body.as_array().unwrap();
    assert_eq!(shared.len(), 1, "{}", r.body);
    assert_eq!(shared[0]["owner_id"], owner_user["id"]);
    assert_eq!(shared[0]["role"], "editor");
    assert_eq!(shared[0]["persons_count"], 0);
}

#[tokio::test]
async fn invitations_twice_to_oneself_or_malformed_are_refused() {
    let (_db, app) = start().await;
    let (owner, _) = register_verified(&app, "owner@example.org").await;
    invite(&app, &owner, "guest@example.org", "viewer").await;
    let path = "/api/collaborators/invite";

    let r = app
        .post(
            path,
            json!({ "email": "GUEST@example.org", "role": "editor" }),
            Some(&owner),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.detail().contains("already been invited"),
        "{}",
        r.detail()
    );

    let r = app
        .post(
            path,
            json!({ "email": "Owner@Example.org", "role": "viewer" }),
            Some(&owner),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.detail(), "You cannot invite yourself");

    let r = app
        .post(
            path,
            json!({ "email": "not-an-email", "role": "viewer" }),
            Some(&owner),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.detail().contains("email"), "{}", r.detail());

    let r = app
        .post(
            path,
            json!({ "email": "x@example.org", "role": "admin" }),
            Some(&owner),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);

    let r = app
        .post(
            path,
            json!({ "email": "x@example.org", "role": "viewer" }),
            None,
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);

    let r = app.get("/api/collaborators", Some(&owner)).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn simultaneous_identical_invitations_make_one_collaborator() {
    let (_db, app) = start().await;
    let (owner, _) = register_verified(&app, "owner@example.org").await;
    register_verified(&app, "guest@example.org").await;
    let answers = futures::future::join_all((0..6).map(|_| {
        app.post(
            "/api/collaborators/invite",
            json!({ "email": "guest@example.org", "role": "viewer" }),
            Some(&owner),
        )
    }))
    .await;
    let ok = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 1, "{answers:?}");
    assert!(answers.iter().all(|r| [200, 400].contains(&r.status)));
    assert_eq!(count(&app, "collaborators", doc! {}).await, 1);
    assert_eq!(count(&app, "notifications", doc! {}).await, 1);
}

#[tokio::test]
async fn only_the_owner_removes_a_collaborator() {
    let (_db, app) = start().await;
    let (owner, owner_user) = register_verified(&app, "owner@example.org").await;
    let (guest, _) = register_verified(&app, "guest@example.org").await;
    let (stranger, _) = register_verified(&app, "stranger@example.org").await;
    let c = invite(&app, &owner, "guest@example.org", "viewer").await;
    let path = format!("/api/collaborators/{}", id(&c));

    for token in [&guest, &stranger] {
        let r = app.delete(&path, Some(token)).await;
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(r.detail(), "Collaborator not found");
    }
    let r = app
        .delete("/api/collaborators/not-an-id", Some(&owner))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = app.delete(&path, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(count(&app, "collaborators", doc! {}).await, 1);

    let owner_id = owner_user["id"].as_str().unwrap();
    let r = app
        .get(&format!("/api/tree/shared/{owner_id}"), Some(&guest))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let r = app.delete(&path, Some(&owner)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["message"].is_string());
    let r = app.delete(&path, Some(&owner)).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = app.get("/api/collaborators", Some(&owner)).await;
    assert_eq!(r.body, json!([]));
    let r = app
        .get("/api/collaborators/shared-with-me", Some(&guest))
        .await;
    assert_eq!(r.body, json!([]));
    let r = app
        .get(&format!("/api/tree/shared/{owner_id}"), Some(&guest))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
}

#[tokio::test]
async fn collaborator_routes_answer_503_at_once_during_an_outage() {
    let (mut db, app) = start().await;
    let (owner, _) = register_verified(&app, "owner@example.org").await;
    register_verified(&app, "guest@example.org").await;
    let c = invite(&app, &owner, "guest@example.org", "viewer").await;

    db.kill();
    app.wait_not_ready().await;
    assert_unavailable(
        &app,
        "POST",
        "/api/collaborators/invite",
        Some(json!({ "email": "new@example.org", "role": "viewer" })),
        Some(&owner),
    )
    .await;
    assert_unavailable(&app, "GET", "/api/collaborators", None, Some(&owner)).await;
    assert_unavailable(
        &app,
        "GET",
        "/api/collaborators/shared-with-me",
        None,
        Some(&owner),
    )
    .await;
    assert_unavailable(
        &app,
        "DELETE",
        &format!("/api/collaborators/{}", id(&c)),
        None,
        Some(&owner),
    )
    .await;
}
