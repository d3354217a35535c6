//! Contributions: an editor proposes (add, edit, delete a person; add, delete a link), the
//! owner is notified, approves (the change applied, only person or link fields written) or
//! rejects (nothing changes), the contributor is notified; viewers, strangers and owners
//! cannot submit; invalid entity data is 422 at submission; links only between persons of
//! the owner's tree; only the owner reviews, once; an approval interrupted before the
//! contribution is marked is retried without duplicates; and the outage.

use aila_api::db::gateway::InjectedFault;
use bson::oid::ObjectId;
use bson::{Bson, doc};
use serde_json::{Value, json};

use crate::common::{Database, TestApp};
use crate::support::{
    assert_unavailable, count, find, gateway, insert_raw, invite, register_verified,
};
use crate::{create_link, create_person, id, start};

/// A tree owner with two persons, an editor and a viewer of that tree.
struct Tree {
    db: Database,
    app: TestApp,
    owner: String,
    owner_id: String,
    editor: String,
    editor_id: String,
    viewer: String,
    p1: String,
    p2: String,
}

async fn tree() -> Tree {
    let (db, app) = start().await;
    let (owner, owner_user) = register_verified(&app, "owner@example.org").await;
    let (editor, editor_user) = register_verified(&app, "editor@example.org").await;
    let (viewer, _) = register_verified(&app, "viewer@example.org").await;
    invite(&app, &owner, "editor@example.org", "editor").await;
    invite(&app, &owner, "viewer@example.org", "viewer").await;
    let p1 = id(&create_person(&app, &owner, "P1").await);
    let p2 = id(&create_person(&app, &owner, "P2").await);
    Tree {
        db,
        app,
        owner,
        owner_id: owner_user["id"].as_str().unwrap().to_string(),
        editor,
        editor_id: editor_user["id"].as_str().unwrap().to_string(),
        viewer,
        p1,
        p2,
    }
}

impl Tree {
    async fn submit_as(&self, token: &str, body: Value) -> crate::common::Reply {
        self.app
            .post(
                &format!("/api/contributions?owner_id={}", self.owner_id),
                body,
                Some(token),
            )
            .await
    }

    /// The editor submits `body`; asserts 200 and returns the contribution.
    async fn propose(&self, body: Value) -> Value {
        let r = self.submit_as(&self.editor, body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    async fn review(&self, token: &str, contribution: &str, status: &str) -> crate::common::Reply {
        self.app
            .post(
                &format!("/api/contributions/{contribution}/review"),
                json!({ "status": status }),
                Some(token),
            )
            .await
    }

    /// The owner approves; asserts 200.
    async fn approve(&self, contribution: &Value) {
        let r = self
            .review(&self.owner, &id(contribution), "approved")
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["contribution_id"], contribution["id"]);
        assert!(r.body["message"].is_string());
    }

    async fn owner_tree(&self) -> Value {
        let r = self.app.get("/api/tree", Some(&self.owner)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    fn persons_named(tree: &Value, name: &str) -> Vec<Value> {
        tree["persons"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["first_name"] == name)
            .cloned()
            .collect()
    }
}

#[tokio::test]
async fn an_added_person_is_proposed_notified_approved_and_written_with_person_fields_only() {
    let t = tree().await;
    let c = t
        .propose(json!({
            "action": "add",
            "entity_type": "person",
            "entity_data": {
                "first_name": "New", "last_name": "Person", "gender": "female",
                "birth_place": "Oran",
                "user_id": t.editor_id, "is_preview": true, "_id": ObjectId::new().to_hex(),
                "algerian_branch": "west", "role": "admin"
            }
        }))
        .await;
    assert_eq!(c["status"], "pending");
    assert_eq!(c["tree_owner_id"], t.owner_id.as_str());
    assert_eq!(c["contributor_id"], t.editor_id.as_str());
    assert_eq!(c["contributor_name"], "Ada Lovelace");
    assert_eq!(c["action"], "add");
    assert_eq!(c["entity_type"], "person");
    assert_eq!(c["entity_id"], json!(null));
    assert_eq!(
        c["entity_data"],
        json!({ "first_name": "New", "last_name": "Person", "gender": "female", "birth_place": "Oran" })
    );
    assert!(c["created_at"].is_string());
    assert_eq!(c["reviewed_at"], json!(null));

    let notes = t.app.get("/api/notifications", Some(&t.owner)).await.body;
    assert_eq!(notes[0]["type"], "new_contribution");
    assert_eq!(notes[0]["data"]["contribution_id"], c["id"]);

    let pending = t
        .app
        .get("/api/contributions/pending", Some(&t.owner))
        .await;
    assert_eq!(pending.status, 200);
    assert_eq!(pending.body, json!([c]));
    let mine = t.app.get("/api/contributions/my", Some(&t.editor)).await;
    assert_eq!(mine.body, json!([c]));
    // Nobody else sees them.
    assert_eq!(
        t.app
            .get("/api/contributions/pending", Some(&t.editor))
            .await
            .body,
        json!([])
    );
    assert_eq!(
        t.app
            .get("/api/contributions/my", Some(&t.owner))
            .await
            .body,
        json!([])
    );
    assert!(Tree::persons_named(&t.owner_tree().await, "New").is_empty());

    t.approve(&c).await;
    let added = Tree::persons_named(&t.owner_tree().await, "New");
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["user_id"], t.owner_id.as_str());
    assert_eq!(added[0]["gender"], "female");
    assert_eq!(added[0]["is_preview"], false);
    let stored = find(&t.app, "persons", doc! { "first_name": "New" }).await;
    let keys: Vec<&str> = stored[0].keys().map(String::as_str).collect();
    for k in &keys {
        assert!(
            [
                "_id",
                "user_id",
                "first_name",
                "last_name",
                "gender",
                "birth_date",
                "birth_place",
                "death_date",
                "death_place",
                "photo",
                "notes",
                "geographic_branch",
                "created_at",
                "is_preview"
            ]
            .contains(k),
            "unexpected field {k} in {}",
            stored[0]
        );
    }
    assert_eq!(stored[0].get_str("user_id").unwrap(), t.owner_id);

    assert_eq!(
        t.app
            .get("/api/contributions/pending", Some(&t.owner))
            .await
            .body,
        json!([])
    );
    let mine = t
        .app
        .get("/api/contributions/my", Some(&t.editor))
        .await
        .body;
    assert_eq!(mine[0]["status"], "approved");
    assert!(mine[0]["reviewed_at"].is_string());
    let notes = t.app.get("/api/notifications", Some(&t.editor)).await.body;
    let reviewed: Vec<&Value> = notes
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == "contribution_reviewed")
        .collect();
    assert_eq!(reviewed.len(), 1, "{notes}");
    assert_eq!(reviewed[0]["data"]["status"], "approved");
    assert_eq!(reviewed[0]["data"]["contribution_id"], c["id"]);
}

#[tokio::test]
async fn an_old_contribution_with_raw_entity_data_writes_only_person_fields() {
    let t = tree().await;
    let raw_id = ObjectId::new();
    insert_raw(
        &t.app,
        "contributions",
        doc! {
            "_id": raw_id,
            "tree_owner_id": &t.owner_id,
            "contributor_id": &t.editor_id,
            "contributor_name": "Old Editor",
            "action": "add",
            "entity_type": "person",
            "entity_id": Bson::Null,
            "entity_data": {
                "first_name": "Raw", "last_name": "Data", "user_id": &t.editor_id,
                "is_preview": true, "algerian_branch": "x", "owner": "someone"
            },
            "status": "pending",
            "created_at": "2024-05-01T12:00:00",
            "reviewed_at": Bson::Null,
            "review_note": Bson::Null,
        },
    )
    .await;
    let pending = t
        .app
        .get("/api/contributions/pending", Some(&t.owner))
        .await
        .body;
    assert_eq!(pending[0]["id"], raw_id.to_hex());
    assert_eq!(pending[0]["created_at"], "2024-05-01T12:00:00.000000Z");
    let r = t.review(&t.owner, &raw_id.to_hex(), "approved").await;
    assert_eq!(r.status, 200, "{}", r.body);

    let stored = find(&t.app, "persons", doc! { "first_name": "Raw" }).await;
    assert_eq!(stored.len(), 1);
    let d = &stored[0];
    assert_eq!(d.get_str("user_id").unwrap(), t.owner_id);
    assert!(!d.get_bool("is_preview").unwrap(), "{d}");
    assert!(
        !d.contains_key("algerian_branch") && !d.contains_key("owner"),
        "{d}"
    );
    assert_eq!(
        count(&t.app, "persons", doc! { "user_id": &t.editor_id }).await,
        0
    );
}

#[tokio::test]
async fn edits_deletions_and_links_are_applied_when_approved() {
    let t = tree().await;
    // Edit a person: only the fields given change.
    let c = t
        .propose(
            json!({ "action": "edit", "entity_type": "person", "entity_id": t.p1,
                         "entity_data": { "birth_place": "Tlemcen", "user_id": t.editor_id } }),
        )
        .await;
    assert_eq!(c["entity_data"], json!({ "birth_place": "Tlemcen" }));
    assert_eq!(c["entity_id"], t.p1.as_str());
    t.approve(&c).await;
    let p1 = t
        .app
        .get(&format!("/api/persons/{}", t.p1), Some(&t.owner))
        .await
        .body;
    assert_eq!(p1["birth_place"], "Tlemcen");
    assert_eq!(p1["first_name"], "P1");
    assert_eq!(p1["user_id"], t.owner_id.as_str());

    // Add a link between two persons of the tree.
    let c = t
        .propose(json!({ "action": "add", "entity_type": "link",
                         "entity_data": { "person_id_1": t.p1, "person_id_2": t.p2,
                                          "link_type": "parent", "user_id": t.editor_id } }))
        .await;
    t.approve(&c).await;
    let tree = t.owner_tree().await;
    let links = tree["links"].as_array().unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0]["person_id_1"], t.p1.as_str());
    assert_eq!(links[0]["person_id_2"], t.p2.as_str());
    assert_eq!(links[0]["link_type"], "parent");
    assert_eq!(links[0]["user_id"], t.owner_id.as_str());

    // Delete that link.
    let c = t
        .propose(json!({ "action": "delete", "entity_type": "link", "entity_id": id(&links[0]) }))
        .await;
    t.approve(&c).await;
    assert_eq!(t.owner_tree().await["links"], json!([]));

    // Delete a person: its links go with it.
    create_link(&t.app, &t.owner, &t.p1, &t.p2, "sibling").await;
    let c = t
        .propose(json!({ "action": "delete", "entity_type": "person", "entity_id": t.p2 }))
        .await;
    t.approve(&c).await;
    let tree = t.owner_tree().await;
    assert_eq!(tree["persons"].as_array().unwrap().len(), 1);
    assert_eq!(tree["persons"][0]["id"], t.p1.as_str());
    assert_eq!(tree["links"], json!([]));
}

#[tokio::test]
async fn a_rejected_contribution_changes_nothing_and_tells_the_contributor_why() {
    let t = tree().await;
    let before = t.owner_tree().await;
    let c = t
        .propose(json!({ "action": "delete", "entity_type": "person", "entity_id": t.p1 }))
        .await;
    let r = t
        .app
        .post(
            &format!("/api/contributions/{}/review", id(&c)),
            json!({ "status": "rejected", "note": "Still alive" }),
            Some(&t.owner),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(t.owner_tree().await, before);
    let mine = t
        .app
        .get("/api/contributions/my", Some(&t.editor))
        .await
        .body;
    assert_eq!(mine[0]["status"], "rejected");
    assert_eq!(mine[0]["review_note"], "Still alive");
    let notes = t.app.get("/api/notifications", Some(&t.editor)).await.body;
    let n = notes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == "contribution_reviewed")
        .unwrap()
        .clone();
    assert_eq!(n["data"]["status"], "rejected");
    assert!(
        n["message"].as_str().unwrap().contains("Still alive"),
        "{n}"
    );
    // Reviewed once: a second review finds nothing pending.
    let r = t.review(&t.owner, &id(&c), "approved").await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(t.owner_tree().await, before);

    let r = t
        .app
        .post(
            &format!("/api/contributions/{}/review", id(&c)),
            json!({ "status": "pending" }),
            Some(&t.owner),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
}

#[tokio::test]
async fn only_accepted_editors_submit() {
    let t = tree().await;
    let body = json!({ "action": "add", "entity_type": "person",
                       "entity_data": { "first_name": "X", "last_name": "Y" } });
    let r = t.submit_as(&t.viewer, body.clone()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.detail().contains("editor"), "{}", r.detail());
    let (stranger, _) = register_verified(&t.app, "stranger@example.org").await;
    let r = t.submit_as(&stranger, body.clone()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = t.submit_as(&t.owner, body.clone()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = t
        .app
        .post(
            "/api/contributions?owner_id=nope",
            body.clone(),
            Some(&t.editor),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.detail().contains("owner_id"), "{}", r.detail());
    let r = t
        .app
        .post("/api/contributions", body.clone(), Some(&t.editor))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.detail().contains("owner_id"), "{}", r.detail());
    let r = t
        .app
        .post(
            &format!("/api/contributions?owner_id={}", t.owner_id),
            body.clone(),
            None,
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    // An editor of another tree is not an editor of this one.
    let (other, _) = register_verified(&t.app, "other@example.org").await;
    invite(&t.app, &other, "stranger@example.org", "editor").await;
    let r = t.submit_as(&stranger, body).await;
    assert_eq!(r.status, 403, "{}", r.body);

    assert_eq!(count(&t.app, "contributions", doc! {}).await, 0);
    assert_eq!(
        t.app
            .get("/api/contributions/pending", Some(&t.owner))
            .await
            .body,
        json!([])
    );
}

#[tokio::test]
async fn invalid_entity_data_is_refused_with_the_field_named() {
    let t = tree().await;
    let bad_id = ObjectId::new().to_hex();
    let cases = [
        (
            json!({ "action": "add", "entity_type": "person" }),
            "entity_data",
        ),
        (
            json!({ "action": "add", "entity_type": "person", "entity_data": { "last_name": "Y" } }),
            "entity_data: field `first_name`",
        ),
        (
            json!({ "action": "add", "entity_type": "person", "entity_data": { "first_name": " ", "last_name": "Y" } }),
            "first_name",
        ),
        (
            json!({ "action": "add", "entity_type": "person", "entity_data": "a string" }),
            "entity_data",
        ),
        (
            json!({ "action": "add", "entity_type": "person", "entity_data": { "first_name": "X", "last_name": "Y", "gender": "other" } }),
            "entity_data: field `gender`",
        ),
        (
            json!({ "action": "edit", "entity_type": "person", "entity_data": { "notes": "n" } }),
            "entity_id",
        ),
        (
            json!({ "action": "edit", "entity_type": "person", "entity_id": "nope", "entity_data": { "notes": "n" } }),
            "entity_id",
        ),
        (
            json!({ "action": "edit", "entity_type": "person", "entity_id": t.p1, "entity_data": { "unknown": 1 } }),
            "entity_data",
        ),
        (
            json!({ "action": "delete", "entity_type": "person" }),
            "entity_id",
        ),
        (
            json!({ "action": "add", "entity_type": "link", "entity_data": { "person_id_1": t.p1, "person_id_2": t.p2, "link_type": "friend" } }),
            "entity_data: field `link_type`",
        ),
        (
            json!({ "action": "add", "entity_type": "link", "entity_data": { "person_id_1": "x", "person_id_2": t.p2, "link_type": "parent" } }),
            "person_id_1",
        ),
        (
            json!({ "action": "add", "entity_type": "link", "entity_data": { "person_id_1": t.p1, "person_id_2": t.p1, "link_type": "parent" } }),
            "person_id_2",
        ),
        (
            json!({ "action": "edit", "entity_type": "link", "entity_id": bad_id, "entity_data": {} }),
            "link",
        ),
        (
            json!({ "action": "rename", "entity_type": "person", "entity_data": {} }),
            "field `action`",
        ),
        (
            json!({ "action": "add", "entity_type": "family", "entity_data": {} }),
            "field `entity_type`",
        ),
    ];
    for (body, field) in cases {
        let r = t.submit_as(&t.editor, body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert!(
            r.detail().contains(field),
            "{body}: `{}` should name {field}",
            r.detail()
        );
    }
    assert_eq!(count(&t.app, "contributions", doc! {}).await, 0);
}

#[tokio::test]
async fn changes_may_only_name_persons_and_links_of_the_owners_tree() {
    let t = tree().await;
    let mine = id(&create_person(&t.app, &t.editor, "Mine").await);
    let r = t
        .submit_as(
            &t.editor,
            json!({ "action": "add", "entity_type": "link",
                    "entity_data": { "person_id_1": t.p1, "person_id_2": mine, "link_type": "parent" } }),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.detail(), "One or both persons not found");
    for action in ["edit", "delete"] {
        let r = t
            .submit_as(
                &t.editor,
                json!({ "action": action, "entity_type": "person", "entity_id": mine,
                        "entity_data": { "notes": "hijacked" } }),
            )
            .await;
        assert_eq!(r.status, 404, "{action}: {}", r.body);
        assert_eq!(r.detail(), "Person not found");
    }
    let (_, their_link) = {
        let other = id(&create_person(&t.app, &t.editor, "Other").await);
        (
            (),
            create_link(&t.app, &t.editor, &mine, &other, "spouse").await,
        )
    };
    let r = t
        .submit_as(
            &t.editor,
            json!({ "action": "delete", "entity_type": "link", "entity_id": id(&their_link) }),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(count(&t.app, "contributions", doc! {}).await, 0);

    // An old contribution naming a person of another tree is refused when applied.
    let raw = ObjectId::new();
    insert_raw(
        &t.app,
        "contributions",
        doc! {
            "_id": raw, "tree_owner_id": &t.owner_id, "contributor_id": &t.editor_id,
            "contributor_name": "E", "action": "add", "entity_type": "link",
            "entity_data": { "person_id_1": &t.p1, "person_id_2": &mine, "link_type": "parent" },
            "status": "pending", "created_at": bson::DateTime::now(),
        },
    )
    .await;
    let r = t.review(&t.owner, &raw.to_hex(), "approved").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(t.owner_tree().await["links"], json!([]));
    assert_eq!(
        count(&t.app, "family_links", doc! { "user_id": &t.owner_id }).await,
        0
    );
    // Still pending: the owner can reject it.
    let r = t.review(&t.owner, &raw.to_hex(), "rejected").await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The editor's own tree is untouched.
    let r = t
        .app
        .get(&format!("/api/persons/{mine}"), Some(&t.editor))
        .await;
    assert_eq!(r.body["notes"], json!(null));
}

#[tokio::test]
async fn only_the_owner_reviews_and_only_pending_contributions() {
    let t = tree().await;
    let c = t
        .propose(json!({ "action": "delete", "entity_type": "person", "entity_id": t.p1 }))
        .await;
    let (stranger, _) = register_verified(&t.app, "stranger@example.org").await;
    for token in [&t.editor, &t.viewer, &stranger] {
        let r = t.review(token, &id(&c), "approved").await;
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(r.detail(), "Contribution not found");
    }
    for bad in ["nope".to_string(), ObjectId::new().to_hex()] {
        let r = t.review(&t.owner, &bad, "approved").await;
        assert_eq!(r.status, 404, "{bad}: {}", r.body);
    }
    let r = t
        .app
        .post(
            &format!("/api/contributions/{}/review", id(&c)),
            json!({ "status": "approved" }),
            None,
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    // Still there, still pending.
    assert_eq!(t.owner_tree().await["persons"].as_array().unwrap().len(), 2);
    assert_eq!(
        t.app
            .get("/api/contributions/pending", Some(&t.owner))
            .await
            .body[0]["id"],
        c["id"]
    );
}

#[tokio::test]
async fn an_approval_interrupted_before_it_is_recorded_is_retried_without_duplicates() {
    let t = tree().await;
    let c = t
        .propose(json!({ "action": "add", "entity_type": "person",
                         "entity_data": { "first_name": "Once", "last_name": "Only" } }))
        .await;
    gateway(&t.app).inject_fault(InjectedFault {
        operation: "update_one",
        collection: "contributions",
        skip: 0,
    });
    let r = t.review(&t.owner, &id(&c), "approved").await;
    assert_eq!(r.status, 503, "{}", r.body);
    // Applied, not yet recorded: still pending, the person is there once.
    assert_eq!(Tree::persons_named(&t.owner_tree().await, "Once").len(), 1);
    assert_eq!(
        t.app
            .get("/api/contributions/pending", Some(&t.owner))
            .await
            .body[0]["id"],
        c["id"]
    );

    t.approve(&c).await;
    assert_eq!(Tree::persons_named(&t.owner_tree().await, "Once").len(), 1);
    assert_eq!(
        count(&t.app, "persons", doc! { "first_name": "Once" }).await,
        1
    );
    assert_eq!(
        t.app
            .get("/api/contributions/pending", Some(&t.owner))
            .await
            .body,
        json!([])
    );

    // The same for a link.
    let c = t
        .propose(json!({ "action": "add", "entity_type": "link",
                         "entity_data": { "person_id_1": t.p1, "person_id_2": t.p2, "link_type": "cousin" } }))
        .await;
    gateway(&t.app).inject_fault(InjectedFault {
        operation: "update_one",
        collection: "contributions",
        skip: 0,
    });
    assert_eq!(t.review(&t.owner, &id(&c), "approved").await.status, 503);
    t.approve(&c).await;
    assert_eq!(t.owner_tree().await["links"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn contribution_routes_answer_503_at_once_during_an_outage() {
    let mut t = tree().await;
    let c = t
        .propose(json!({ "action": "delete", "entity_type": "person", "entity_id": t.p1 }))
        .await;
    t.db.kill();
    t.app.wait_not_ready().await;
    assert_unavailable(
        &t.app,
        "POST",
        &format!("/api/contributions?owner_id={}", t.owner_id),
        Some(json!({ "action": "delete", "entity_type": "person", "entity_id": t.p2 })),
        Some(&t.editor),
    )
    .await;
    assert_unavailable(
        &t.app,
        "GET",
        "/api/contributions/pending",
        None,
        Some(&t.owner),
    )
    .await;
    assert_unavailable(
        &t.app,
        "GET",
        "/api/contributions/my",
        None,
        Some(&t.editor),
    )
    .await;
    assert_unavailable(
        &t.app,
        "POST",
        &format!("/api/contributions/{}/review", id(&c)),
        Some(json!({ "status": "approved" })),
        Some(&t.owner),
    )
    .await;
}

#[tokio::test]
async fn concurrent_reviews_of_one_contribution_let_exactly_one_through() {
    let t = tree().await;
    let c = t
        .propose(json!({ "action": "add", "entity_type": "person",
                         "entity_data": { "first_name": "Raced", "last_name": "Once" } }))
        .await;
    let path = format!("/api/contributions/{}/review", id(&c));
    let answers = futures::future::join_all((0..6).map(|i| {
        let status = if i % 2 == 0 { "approved" } else { "rejected" };
        t.app
            .post(&path, json!({ "status": status }), Some(&t.owner))
    }))
    .await;
    let winners: Vec<_> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for r in &answers {
        assert!([200, 404].contains(&r.status), "{}: {}", r.status, r.body);
    }
    let verdict = t
        .app
        .get("/api/contributions/my", Some(&t.editor))
        .await
        .body[0]["status"]
        .as_str()
        .unwrap()
        .to_string();
    let added = count(&t.app, "persons", doc! { "first_name": "Raced" }).await;
    match verdict.as_str() {
        "approved" => assert_eq!(added, 1),
        "rejected" => assert_eq!(added, 0),
        other => panic!("status {other}"),
    }
    let reviewed = count(
        &t.app,
        "notifications",
        doc! { "user_id": &t.editor_id, "type": "contribution_reviewed" },
    )
    .await;
    assert_eq!(reviewed, 1);
}
