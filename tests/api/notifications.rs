//! Notifications: the caller's 50 newest (newest first), the unread count, marking one or
//! all read (`read-all` is not taken for an id), nobody else's, an old document read
//! cleanly, and the outage.

use aila_api::repo::notifications::{self, NotificationDoc};
use bson::doc;
use bson::oid::ObjectId;
use serde_json::json;

use crate::id;
use crate::start;
use crate::support::{assert_unavailable, gateway, insert_raw, invite, register_verified};

#[tokio::test]
async fn notifications_are_listed_counted_and_marked_read() {
    let (_db, app) = start().await;
    let (guest, guest_user) = register_verified(&app, "guest@example.org").await;
    let mut owners = Vec::new();
    for name in ["a", "b", "c"] {
        let (token, user) = register_verified(&app, &format!("{name}@example.org")).await;
        invite(&app, &token, "guest@example.org", "viewer").await;
        owners.push(user["id"].as_str().unwrap().to_string());
    }

    let r = app.get("/api/notifications", Some(&guest)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.body.as_array().unwrap().clone();
    assert_eq!(list.len(), 3);
    // Newest first.
    let from: Vec<&str> = list
        .iter()
        .map(|n| n["data"]["tree_owner_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        from,
        [owners[2].as_str(), owners[1].as_str(), owners[0].as_str()]
    );
    for n in &list {
        assert_eq!(n["user_id"], guest_user["id"]);
        assert_eq!(n["type"], "collaboration_invite");
        assert_eq!(n["read"], false);
        assert!(n["title"].is_string() && n["message"].is_string() && n["created_at"].is_string());
        assert!(n.get("_id").is_none());
    }

    let r = app
        .get("/api/notifications/unread-count", Some(&guest))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({ "unread_count": 3 }));

    let r = app
        .put(
            &format!("/api/notifications/{}/read", id(&list[1])),
            None,
            Some(&guest),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["message"].is_string());
    let r = app
        .get("/api/notifications/unread-count", Some(&guest))
        .await;
    assert_eq!(r.body["unread_count"], 2);
    let r = app.get("/api/notifications", Some(&guest)).await;
    let read: Vec<bool> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["read"].as_bool().unwrap())
        .collect();
    assert_eq!(read, [false, true, false]);

    let r = app
        .put("/api/notifications/read-all", None, Some(&guest))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["message"].is_string(), "{}", r.body);
    let r = app
        .get("/api/notifications/unread-count", Some(&guest))
        .await;
    assert_eq!(r.body["unread_count"], 0);
    let r = app.get("/api/notifications", Some(&guest)).await;
    assert!(r.body.as_array().unwrap().iter().all(|n| n["read"] == true));
}

#[tokio::test]
async fn nobody_reads_or_marks_someone_elses_notifications() {
    let (_db, app) = start().await;
    let (guest, _) = register_verified(&app, "guest@example.org").await;
    let (owner, _) = register_verified(&app, "owner@example.org").await;
    invite(&app, &owner, "guest@example.org", "viewer").await;
    let theirs = app.get("/api/notifications", Some(&guest)).await.body[0].clone();

    let r = app.get("/api/notifications", Some(&owner)).await;
    assert_eq!(r.body, json!([]));
    let r = app
        .get("/api/notifications/unread-count", Some(&owner))
        .await;
    assert_eq!(r.body["unread_count"], 0);

    let path = format!("/api/notifications/{}/read", id(&theirs));
    let r = app.put(&path, None, Some(&owner)).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.detail(), "Notification not found");
    let r = app
        .put("/api/notifications/read-all", None, Some(&owner))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .get("/api/notifications/unread-count", Some(&guest))
        .await;
    assert_eq!(
        r.body["unread_count"], 1,
        "the owner's read-all left the guest's alone"
    );

    for bad in ["not-an-id", &ObjectId::new().to_hex()] {
        let r = app
            .put(
                &format!("/api/notifications/{bad}/read"),
                None,
                Some(&guest),
            )
            .await;
        assert_eq!(r.status, 404, "{bad}: {}", r.body);
    }
    for (method, path) in [
        ("GET", "/api/notifications"),
        ("GET", "/api/notifications/unread-count"),
        ("PUT", "/api/notifications/read-all"),
        ("PUT", path.as_str()),
    ] {
        let r = app.request(method, path, None, None).await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
    }
}

#[tokio::test]
async fn the_list_holds_the_50_newest_and_old_documents_read_cleanly() {
    let (_db, app) = start().await;
    let (token, user) = register_verified(&app, "busy@example.org").await;
    let me = user["id"].as_str().unwrap();
    let gw = gateway(&app);
    let base = bson::DateTime::now().timestamp_millis() - 3_600_000;
    for i in 0..60 {
        let mut n = NotificationDoc::new(
            me,
            notifications::NEW_CONTRIBUTION,
            "t",
            format!("n{i}"),
            doc! {},
        );
        n.created_at = Some(bson::DateTime::from_millis(base + i * 1000));
        notifications::insert(&gw, &n).await.unwrap();
    }
    // As the old service wrote it: a naive date string, no `data`, no `read`.
    insert_raw(
        &app,
        "notifications",
        doc! {
            "_id": ObjectId::new(),
            "user_id": me,
            "type": "collaboration_invite",
            "title": "old",
            "message": "old one",
            "created_at": "2020-01-01T10:00:00.123456",
        },
    )
    .await;

    let r = app.get("/api/notifications", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 50);
    assert_eq!(list[0]["message"], "n59");
    assert_eq!(list[49]["message"], "n10");
    let r = app
        .get("/api/notifications/unread-count", Some(&token))
        .await;
    assert_eq!(
        r.body["unread_count"], 61,
        "without `read` is unread: {}",
        r.body
    );

    // Once the newer ones are gone, the old one shows, with its date read as UTC.
    let r = app
        .put("/api/notifications/read-all", None, Some(&token))
        .await;
    assert_eq!(r.status, 200);
    crate::support::set(
        &app,
        "notifications",
        doc! { "title": "t" },
        doc! { "user_id": "someone-else" },
    )
    .await;
    let r = app.get("/api/notifications", Some(&token)).await;
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", r.body);
    assert_eq!(list[0]["created_at"], "2020-01-01T10:00:00.123000Z");
    assert_eq!(list[0]["data"], json!(null));
    assert_eq!(list[0]["read"], true);
}

#[tokio::test]
async fn notification_routes_answer_503_at_once_during_an_outage() {
    let (mut db, app) = start().await;
    let (guest, _) = register_verified(&app, "guest@example.org").await;
    let (owner, _) = register_verified(&app, "owner@example.org").await;
    invite(&app, &owner, "guest@example.org", "viewer").await;
    let n = app.get("/api/notifications", Some(&guest)).await.body[0].clone();

    db.kill();
    app.wait_not_ready().await;
    assert_unavailable(&app, "GET", "/api/notifications", None, Some(&guest)).await;
    assert_unavailable(
        &app,
        "GET",
        "/api/notifications/unread-count",
        None,
        Some(&guest),
    )
    .await;
    assert_unavailable(
        &app,
        "PUT",
        &format!("/api/notifications/{}/read", id(&n)),
        None,
        Some(&guest),
    )
    .await;
    assert_unavailable(
        &app,
        "PUT",
        "/api/notifications/read-all",
        None,
        Some(&guest),
    )
    .await;
}
