//! The GDPR export as the issue asks: every section (collaborations and contributions both
//! ways, notifications), no limit on the tree, written page by page while the client reads
//! (a database failure after the first page cuts the body short instead of failing before
//! the answer), and account deletion removing the deleted user from others' notifications.

use aila_api::db::gateway::InjectedFault;
use aila_api::http::api::gdpr_export::PAGE;
use aila_api::repo::notifications::SENDER_DELETED;
use bson::doc;
use serde_json::{Value, json};

use crate::gdpr::busy_account;
use crate::support::{find, insert_all};
use crate::{id, start};

/// Stores `n` persons in `owner_id`'s tree directly (as a large imported tree would be).
async fn store_persons(app: &crate::common::TestApp, owner_id: &str, n: i64) {
    let now = bson::DateTime::now();
    let docs = (0..n)
        .map(|i| {
            doc! {
                "user_id": owner_id,
                "first_name": format!("Bulk{i:05}"),
                "last_name": "Export",
                "created_at": now,
            }
        })
        .collect();
    insert_all(app, "persons", docs).await;
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(id)
        .collect()
}

#[tokio::test]
async fn the_export_holds_every_section_and_a_tree_of_several_pages() {
    let (_db, app) = start().await;
    let (me, me_id, friend, _host) = busy_account(&app).await;
    let bulk = 3 * PAGE + 7;
    store_persons(&app, &me_id, bulk).await;

    let r = app.get("/api/gdpr/export", Some(&me)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Streamed: the length is not known when the answer starts.
    assert!(
        r.headers.get("content-length").is_none(),
        "the export is written while it is read: {:?}",
        r.headers
    );

    // Every person once, in `_id` order, across the pages.
    let stored: Vec<String> = find(&app, "persons", doc! { "user_id": &me_id })
        .await
        .iter()
        .map(|d| d.get_object_id("_id").unwrap().to_hex())
        .collect();
    assert_eq!(stored.len() as i64, bulk + 2);
    assert_eq!(ids(&r.body["persons"]), stored);
    assert_eq!(ids(&r.body["family_links"]).len(), 1);

    // Collaborations both ways: me's own invitations, and host's invitation to me.
    let mut invited: Vec<&str> = r.body["collaborators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap())
        .collect();
    invited.sort_unstable();
    assert_eq!(invited, ["friend@example.org", "pending@example.org"]);
    let shared = r.body["shared_with_me"].as_array().unwrap();
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert_eq!(shared[0]["email"], "me@example.org");
    // Contributions both ways.
    let made = r.body["contributions_made"].as_array().unwrap();
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["contributor_id"], me_id.as_str());
    let received = r.body["contributions_received"].as_array().unwrap();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["tree_owner_id"], me_id.as_str());
    // The notifications are the ones the notification route lists.
    let listed = app.get("/api/notifications", Some(&me)).await.body;
    let mut exported = ids(&r.body["notifications"]);
    let mut expected = ids(&listed);
    exported.sort_unstable();
    expected.sort_unstable();
    assert!(!expected.is_empty(), "me has notifications: {listed}");
    assert_eq!(exported, expected);

    // Nobody else's data.
    let friend_tree = app.get("/api/tree", Some(&friend)).await.body;
    for p in ids(&friend_tree["persons"]) {
        assert!(
            !r.body.to_string().contains(&p),
            "friend's person {p} exported"
        );
    }
    assert!(r.body["exported_at"].is_string());
}

#[tokio::test]
async fn a_database_failure_after_the_first_page_cuts_the_export_short() {
    let (_db, app) = start().await;
    let (me, me_user) = app.register("big@example.org").await;
    let me_id = me_user["id"].as_str().unwrap().to_string();
    store_persons(&app, &me_id, 2 * PAGE).await;
    // The first page is read before the answer starts; the second read fails.
    app.app().context().gateway.inject_fault(InjectedFault {
        operation: "find",
        collection: "persons",
        skip: 1,
    });

    let resp = app
        .http
        .get(format!("{}/api/gdpr/export", app.address))
        .bearer_auth(&me)
        .send()
        .await
        .expect("the answer starts");
    assert_eq!(resp.status(), 200, "the first page was read");
    // Cut short: the connection fails, or what arrived is not a whole JSON document (its
    // closing brackets come only at the end), never a complete-looking export.
    if let Ok(bytes) = resp.bytes().await {
        assert!(
            serde_json::from_slice::<Value>(&bytes).is_err(),
            "a complete document of {} bytes despite the failed read",
            bytes.len()
        );
        assert!(bytes.starts_with(b"{\"user\":"), "the first page was sent");
    }
    // The next export, with the database well, is whole.
    let r = app.get("/api/gdpr/export", Some(&me)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["persons"].as_array().unwrap().len() as i64, 2 * PAGE);
}

#[tokio::test]
async fn a_deleted_account_disappears_from_other_users_notifications() {
    let (_db, app) = start().await;
    let (me, me_id, friend, host) = busy_account(&app).await;
    let host_sees = |body: &Value| body.to_string().contains(&me_id);
    // Before: host was told of me's contribution (me's id, me's name in the message).
    let host_notes = app.get("/api/notifications", Some(&host)).await.body;
    assert!(host_sees(&host_notes), "{host_notes}");

    let r = app.delete("/api/gdpr/delete-account", Some(&me)).await;
    assert_eq!(r.status, 200, "{}", r.body);

    for (who, token) in [("host", &host), ("friend", &friend)] {
        let notes = app.get("/api/notifications", Some(token)).await.body;
        let text = notes.to_string();
        assert!(
            !text.contains(&me_id),
            "{who} still sees the deleted id: {text}"
        );
    }
    // The notifications themselves stay, saying what happened instead of the deleted
    // user's words (their name, a review note they wrote).
    let notes = app.get("/api/notifications", Some(&host)).await.body;
    let scrubbed: Vec<&Value> = notes
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["message"] == json!(SENDER_DELETED))
        .collect();
    assert_eq!(scrubbed.len(), 1, "{notes}");
    assert_eq!(scrubbed[0]["type"], "new_contribution");
}
