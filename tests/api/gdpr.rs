//! GDPR: the export (user without password hash, the caller's persons and links only), the
//! account deletion (every collection the contract lists, nobody else's data), a deletion
//! interrupted halfway and retried, and the outage.

use aila_api::db::gateway::InjectedFault;
use bson::doc;
use serde_json::json;

use crate::support::{
    assert_unavailable, count, gateway, insert_cross_tree_link, invite, register_verified,
};
use crate::{create_link, create_person, id, start};

#[tokio::test]
async fn the_export_holds_the_user_and_their_tree_only() {
    let (_db, app) = start().await;
    let (me, me_user) = register_verified(&app, "me@example.org").await;
    let (other, _) = register_verified(&app, "other@example.org").await;
    let p1 = id(&create_person(&app, &me, "Mine1").await);
    let p2 = id(&create_person(&app, &me, "Mine2").await);
    let link = create_link(&app, &me, &p1, &p2, "spouse").await;
    let o1 = id(&create_person(&app, &other, "Theirs1").await);
    let o2 = id(&create_person(&app, &other, "Theirs2").await);
    create_link(&app, &other, &o1, &o2, "sibling").await;

    let r = app.get("/api/gdpr/export", Some(&me)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["user"], me_user);
    assert!(r.body["user"].get("password_hash").is_none());
    assert!(!r.body.to_string().contains("$2b$"), "no hash anywhere");
    let tree = app.get("/api/tree", Some(&me)).await.body;
    assert_eq!(r.body["persons"], tree["persons"]);
    assert_eq!(r.body["family_links"], json!([link]));
    let exported = chrono::DateTime::parse_from_rfc3339(r.str("exported_at")).unwrap();
    assert!(
        (chrono::Utc::now() - exported.with_timezone(&chrono::Utc))
            .num_seconds()
            .abs()
            < 60
    );

    let r = app.get("/api/gdpr/export", None).await;
    assert_eq!(r.status, 401, "{}", r.body);
}

/// Everything the contract's deletion covers, for user `me` (hex id) and email.
async fn remaining(
    app: &crate::common::TestApp,
    me: &str,
    email: &str,
) -> Vec<(&'static str, u64)> {
    vec![
        (
            "persons",
            count(app, "persons", doc! { "user_id": me }).await,
        ),
        (
            "family_links",
            count(app, "family_links", doc! { "user_id": me }).await,
        ),
        (
            "collaborators",
            count(
                app,
                "collaborators",
                doc! { "$or": [ { "tree_owner_id": me }, { "user_id": me }, { "email": email } ] },
            )
            .await,
        ),
        (
            "contributions",
            count(
                app,
                "contributions",
                doc! { "$or": [ { "tree_owner_id": me }, { "contributor_id": me } ] },
            )
            .await,
        ),
        (
            "notifications",
            count(app, "notifications", doc! { "user_id": me }).await,
        ),
        ("users", count(app, "users", doc! { "email": email }).await),
    ]
}

/// `me` with a tree, a collaborator, a tree shared with them as editor, contributions both
/// ways, and notifications; `friend` and `host` with their own data.
pub(crate) async fn busy_account(app: &crate::common::TestApp) -> (String, String, String, String) {
    let (me, me_user) = register_verified(app, "me@example.org").await;
    let (friend, _) = register_verified(app, "friend@example.org").await;
    let (host, _) = register_verified(app, "host@example.org").await;
    let host_id = app.get("/api/auth/me", Some(&host)).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let me_id = me_user["id"].as_str().unwrap().to_string();

    let p1 = id(&create_person(app, &me, "Mine1").await);
    let p2 = id(&create_person(app, &me, "Mine2").await);
    create_link(app, &me, &p1, &p2, "spouse").await;
    let f1 = id(&create_person(app, &friend, "Friend1").await);
    let f2 = id(&create_person(app, &friend, "Friend2").await);
    create_link(app, &friend, &f1, &f2, "sibling").await;
    let h1 = id(&create_person(app, &host, "Host1").await);

    // me shares with friend (me as owner), host shares with me (me as member).
    invite(app, &me, "friend@example.org", "editor").await;
    invite(app, &me, "pending@example.org", "viewer").await;
    invite(app, &host, "me@example.org", "editor").await;
    invite(app, &host, "friend@example.org", "viewer").await;
    // Contributions: friend to me's tree (me as owner), me to host's tree (me as contributor).
    let r = app
        .post(
            &format!("/api/contributions?owner_id={me_id}"),
            json!({ "action": "edit", "entity_type": "person", "entity_id": p1, "entity_data": { "notes": "n" } }),
            Some(&friend),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .post(
            &format!("/api/contributions?owner_id={host_id}"),
            json!({ "action": "edit", "entity_type": "person", "entity_id": h1, "entity_data": { "notes": "n" } }),
            Some(&me),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    (me, me_id, friend, host)
}

/// The old service's data may hold a link of another tree naming one of the deleted
/// user's persons. The deletion removes it (as deleting that one person would), and the
/// other owner's kept tree stops showing it at once.
#[tokio::test]
async fn deleting_the_account_removes_other_trees_old_links_to_its_persons() {
    let (_db, app) = start().await;
    let (me, _) = register_verified(&app, "me@example.org").await;
    let (bob, bob_user) = register_verified(&app, "bob@example.org").await;
    let bob_id = bob_user["id"].as_str().expect("bob's id").to_string();
    let mine = id(&create_person(&app, &me, "Mine").await);
    let theirs = id(&create_person(&app, &bob, "Theirs").await);
    let link = insert_cross_tree_link(&app, &bob_id, &theirs, &mine).await;
    // Read twice: the second answer is Bob's kept tree.
    for _ in 0..2 {
        let tree = app.get("/api/tree", Some(&bob)).await.body;
        assert_eq!(tree["links"][0]["id"], link.to_hex(), "{tree}");
    }

    let r = app.delete("/api/gdpr/delete-account", Some(&me)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        count(&app, "family_links", doc! { "_id": link }).await,
        0,
        "the link naming the deleted user's person is still stored"
    );
    let tree = app.get("/api/tree", Some(&bob)).await.body;
    assert_eq!(tree["links"], json!([]), "Bob's tree: {tree}");
    assert_eq!(tree["persons"][0]["id"], theirs, "Bob's own person stays");
}

#[tokio::test]
async fn deleting_the_account_removes_everything_listed_and_nothing_else() {
    let (_db, app) = start().await;
    let (me, me_id, friend, host) = busy_account(&app).await;
    let friend_tree = app.get("/api/tree", Some(&friend)).await.body;
    let host_tree = app.get("/api/tree", Some(&host)).await.body;
    assert!(
        remaining(&app, &me_id, "me@example.org")
            .await
            .iter()
            .all(|(_, n)| *n > 0)
    );

    let r = app.delete("/api/gdpr/delete-account", Some(&me)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["message"].is_string());
    for (collection, n) in remaining(&app, &me_id, "me@example.org").await {
        assert_eq!(
            n, 0,
            "{collection} still holds the deleted user's documents"
        );
    }
    let r = app.get("/api/auth/me", Some(&me)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = app
        .post(
            "/api/auth/login",
            json!({ "email": "me@example.org", "password": "Password123!" }),
            None,
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);

    // Everyone else keeps their trees, and their own collaboration.
    assert_eq!(app.get("/api/tree", Some(&friend)).await.body, friend_tree);
    assert_eq!(app.get("/api/tree", Some(&host)).await.body, host_tree);
    let shared = app
        .get("/api/collaborators/shared-with-me", Some(&friend))
        .await
        .body;
    assert_eq!(shared.as_array().unwrap().len(), 1, "{shared}");
    let collaborators = app.get("/api/collaborators", Some(&host)).await.body;
    assert_eq!(
        collaborators.as_array().unwrap().len(),
        1,
        "{collaborators}"
    );
    assert_eq!(collaborators[0]["email"], "friend@example.org");
    assert_eq!(
        app.get("/api/contributions/pending", Some(&host))
            .await
            .body,
        json!([])
    );
    assert_eq!(
        app.get("/api/contributions/my", Some(&friend)).await.body,
        json!([])
    );
    assert!(
        count(&app, "notifications", doc! {}).await > 0,
        "others' notifications stay"
    );

    // Registering again starts from nothing.
    let (again, _) = register_verified(&app, "me@example.org").await;
    assert_eq!(
        app.get("/api/tree", Some(&again)).await.body,
        json!({ "persons": [], "links": [] })
    );
    assert_eq!(
        app.get("/api/collaborators/shared-with-me", Some(&again))
            .await
            .body,
        json!([])
    );
}

#[tokio::test]
async fn a_deletion_interrupted_halfway_keeps_the_account_and_a_retry_finishes_it() {
    let (_db, app) = start().await;
    let (me, me_id, _, _) = busy_account(&app).await;
    gateway(&app).inject_fault(InjectedFault {
        operation: "delete_many",
        collection: "contributions",
        skip: 0,
    });
    let r = app.delete("/api/gdpr/delete-account", Some(&me)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    // The account is still there: the caller can retry. The tree is gone, links first.
    let r = app.get("/api/auth/me", Some(&me)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        app.get("/api/tree", Some(&me)).await.body,
        json!({ "persons": [], "links": [] })
    );
    let left: Vec<(&str, u64)> = remaining(&app, &me_id, "me@example.org").await;
    assert!(
        left.iter().any(|(c, n)| *c == "contributions" && *n > 0),
        "{left:?}"
    );

    let r = app.delete("/api/gdpr/delete-account", Some(&me)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for (collection, n) in remaining(&app, &me_id, "me@example.org").await {
        assert_eq!(n, 0, "{collection}");
    }
}

#[tokio::test]
async fn gdpr_routes_answer_503_at_once_during_an_outage() {
    let (mut db, app) = start().await;
    let (me, _) = register_verified(&app, "me@example.org").await;
    db.kill();
    app.wait_not_ready().await;
    assert_unavailable(&app, "GET", "/api/gdpr/export", None, Some(&me)).await;
    assert_unavailable(&app, "DELETE", "/api/gdpr/delete-account", None, Some(&me)).await;
}
