//! `GET /api/tree/shared/{owner_id}`: accepted viewers and editors read the owner's tree;
//! strangers, pending invitees and removed collaborators get 403; and the outage.

use serde_json::json;

use bson::doc;
use bson::oid::ObjectId;

use crate::support::{assert_unavailable, insert_raw, invite, register_verified, set};
use crate::{create_link, create_person, id, start};

#[tokio::test]
async fn accepted_viewers_and_editors_read_the_owners_tree() {
    let (_db, app) = start().await;
    let (owner, owner_user) = register_verified(&app, "owner@example.org").await;
    let (viewer, _) = register_verified(&app, "viewer@example.org").await;
    let (editor, _) = register_verified(&app, "editor@example.org").await;
    let p1 = id(&create_person(&app, &owner, "P1").await);
    let p2 = id(&create_person(&app, &owner, "P2").await);
    create_link(&app, &owner, &p1, &p2, "spouse").await;
    invite(&app, &owner, "viewer@example.org", "viewer").await;
    invite(&app, &owner, "editor@example.org", "editor").await;
    let owner_id = owner_user["id"].as_str().unwrap();
    let own_tree = app.get("/api/tree", Some(&owner)).await.body;
    assert_eq!(own_tree["persons"].as_array().unwrap().len(), 2);
    assert_eq!(own_tree["links"].as_array().unwrap().len(), 1);

    for token in [&viewer, &editor, &owner] {
        let r = app
            .get(&format!("/api/tree/shared/{owner_id}"), Some(token))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, own_tree);
    }
    // The viewer's own tree is not the owner's.
    let r = app.get("/api/tree", Some(&viewer)).await;
    assert_eq!(r.body, json!({ "persons": [], "links": [] }));
}

#[tokio::test]
async fn strangers_and_pending_or_removed_collaborators_get_403() {
    let (_db, app) = start().await;
    let (owner, owner_user) = register_verified(&app, "owner@example.org").await;
    let (stranger, stranger_user) = register_verified(&app, "stranger@example.org").await;
    let (guest, _) = register_verified(&app, "guest@example.org").await;
    create_person(&app, &owner, "P1").await;
    let owner_id = owner_user["id"].as_str().unwrap();
    let path = format!("/api/tree/shared/{owner_id}");

    let r = app.get(&path, Some(&stranger)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.detail().contains("access"), "{}", r.detail());
    assert!(r.body.get("persons").is_none());

    // Someone else's collaboration does not open this tree.
    let (other_owner, _) = register_verified(&app, "other@example.org").await;
    invite(&app, &other_owner, "stranger@example.org", "editor").await;
    let r = app.get(&path, Some(&stranger)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Nor the other way round: the owner is no collaborator of the stranger.
    let stranger_id = stranger_user["id"].as_str().unwrap();
    let r = app
        .get(&format!("/api/tree/shared/{stranger_id}"), Some(&owner))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // A collaboration not accepted (as an old document may hold it) does not open it.
    let guest_id = app.get("/api/auth/me", Some(&guest)).await.body["id"].clone();
    insert_raw(
        &app,
        "collaborators",
        doc! {
            "_id": ObjectId::new(),
            "tree_owner_id": owner_id,
            "user_id": guest_id.as_str().unwrap(),
            "email": "guest@example.org",
            "role": "viewer",
            "status": "pending",
        },
    )
    .await;
    let r = app.get(&path, Some(&guest)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    set(
        &app,
        "collaborators",
        doc! { "tree_owner_id": owner_id },
        doc! { "status": "rejected" },
    )
    .await;
    let r = app.get(&path, Some(&guest)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = app
        .delete(
            &format!(
                "/api/collaborators/{}",
                id(&app.get("/api/collaborators", Some(&owner)).await.body[0])
            ),
            Some(&owner),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A removed collaborator loses access.
    let c = invite(&app, &owner, "guest@example.org", "viewer").await;
    assert_eq!(app.get(&path, Some(&guest)).await.status, 200);
    let r = app
        .delete(&format!("/api/collaborators/{}", id(&c)), Some(&owner))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.get(&path, Some(&guest)).await;
    assert_eq!(r.status, 403, "{}", r.body);

    let r = app.get("/api/tree/shared/not-an-id", Some(&guest)).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = app.get(&path, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
}

#[tokio::test]
async fn the_shared_tree_answers_503_at_once_during_an_outage() {
    let (mut db, app) = start().await;
    let (owner, owner_user) = register_verified(&app, "owner@example.org").await;
    let (viewer, _) = register_verified(&app, "viewer@example.org").await;
    invite(&app, &owner, "viewer@example.org", "viewer").await;
    let owner_id = owner_user["id"].as_str().unwrap();

    db.kill();
    app.wait_not_ready().await;
    assert_unavailable(
        &app,
        "GET",
        &format!("/api/tree/shared/{owner_id}"),
        None,
        Some(&viewer),
    )
    .await;
}
