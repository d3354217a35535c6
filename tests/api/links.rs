//! `/api/links`: create (both persons in the caller's tree, one of the 16 types), list,
//! delete, and the owner/admin rules across users.

use serde_json::json;

use crate::{create_link, create_person, id, start};

const LINK_TYPES: [&str; 16] = [
    "parent",
    "child",
    "spouse",
    "sibling",
    "grandparent",
    "grandchild",
    "uncle_aunt",
    "nephew_niece",
    "cousin",
    "step_parent",
    "step_child",
    "parent_in_law",
    "child_in_law",
    "sibling_in_law",
    "godparent",
    "godchild",
];

#[tokio::test]
async fn create_and_list_links_of_every_type() {
    let (_db, app) = start().await;
    let (token, user) = app.register("ada@example.org").await;
    let a = id(&create_person(&app, &token, "A").await);
    let b = id(&create_person(&app, &token, "B").await);

    let r = app
        .post(
            "/api/links",
            json!({"person_id_1": a, "person_id_2": b, "link_type": "parent", "note": "ignored"}),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let link = r.body.clone();
    assert_eq!(link["id"].as_str().unwrap().len(), 24);
    assert_eq!(link["user_id"], user["id"]);
    assert_eq!(link["person_id_1"], a.as_str());
    assert_eq!(link["person_id_2"], b.as_str());
    assert_eq!(link["link_type"], "parent");
    assert!(link["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(link.get("note").is_none() && link.get("_id").is_none());

    let mut all = vec![link];
    for t in &LINK_TYPES[1..] {
        all.push(create_link(&app, &token, &b, &a, t).await);
    }
    let r = app.get("/api/links", Some(&token)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!(all));
    let types: Vec<&str> = all
        .iter()
        .map(|l| l["link_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, LINK_TYPES);
}

#[tokio::test]
async fn create_refuses_bad_types_bad_ids_and_persons_of_another_tree() {
    let (_db, app) = start().await;
    let (ada, _) = app.register("ada@example.org").await;
    let (bob, _) = app.register("bob@example.org").await;
    let a = id(&create_person(&app, &ada, "A").await);
    let a2 = id(&create_person(&app, &ada, "A2").await);
    let b = id(&create_person(&app, &bob, "B").await);

    let r = app
        .post(
            "/api/links",
            json!({"person_id_1": a, "person_id_2": a2, "link_type": "friend"}),
            Some(&ada),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.detail().contains("link_type") && r.detail().contains("godchild"),
        "{}",
        r.detail()
    );

    for (field, body) in [
        (
            "person_id_1",
            json!({"person_id_1": "nope", "person_id_2": a2, "link_type": "parent"}),
        ),
        (
            "person_id_2",
            json!({"person_id_1": a, "person_id_2": "6574a5b2c3d4e5f6071829", "link_type": "parent"}),
        ),
        (
            "person_id_2",
            json!({"person_id_1": a, "person_id_2": a, "link_type": "parent"}),
        ),
        ("link_type", json!({"person_id_1": a, "person_id_2": a2})),
        (
            "person_id_1",
            json!({"person_id_1": 7, "person_id_2": a2, "link_type": "parent"}),
        ),
    ] {
        let r = app.post("/api/links", body.clone(), Some(&ada)).await;
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert!(r.detail().contains(field), "{body}: {}", r.detail());
    }

    for (p1, p2) in [
        (&a, &b),
        (&b, &a),
        (&a, &"6574a5b2c3d4e5f60718293a".to_string()),
    ] {
        let r = app
            .post(
                "/api/links",
                json!({"person_id_1": p1, "person_id_2": p2, "link_type": "cousin"}),
                Some(&ada),
            )
            .await;
        assert_eq!(
            (r.status, r.detail()),
            (404, "One or both persons not found"),
            "{p1} {p2}"
        );
    }
    // Bob cannot link Ada's persons either.
    let r = app
        .post(
            "/api/links",
            json!({"person_id_1": a, "person_id_2": a2, "link_type": "cousin"}),
            Some(&bob),
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (404, "One or both persons not found")
    );

    assert_eq!(app.get("/api/links", Some(&ada)).await.body, json!([]));
    assert_eq!(app.get("/api/links", Some(&bob)).await.body, json!([]));
    assert_eq!(app.get("/api/links", None).await.status, 401);
}

#[tokio::test]
async fn only_the_owner_or_an_admin_deletes_a_link_and_others_never_see_it() {
    let (_db, app) = start().await;
    let (admin, _) = app.register("admin@example.org").await;
    let (ada, _) = app.register("ada@example.org").await;
    let (bob, _) = app.register("bob@example.org").await;
    let a = id(&create_person(&app, &ada, "A").await);
    let a2 = id(&create_person(&app, &ada, "A2").await);
    let l1 = create_link(&app, &ada, &a, &a2, "spouse").await;
    let l2 = create_link(&app, &ada, &a2, &a, "spouse").await;

    assert_eq!(app.get("/api/links", Some(&bob)).await.body, json!([]));
    let r = app
        .delete(&format!("/api/links/{}", id(&l1)), Some(&bob))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        app.get("/api/links", Some(&ada)).await.body,
        json!([l1, l2])
    );

    let r = app
        .delete(&format!("/api/links/{}", id(&l1)), Some(&ada))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.str("message").contains("deleted"));
    let r = app
        .delete(&format!("/api/links/{}", id(&l2)), Some(&admin))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.get("/api/links", Some(&ada)).await.body, json!([]));

    for gone in [
        id(&l1),
        "not-an-id".to_string(),
        "6574a5b2c3d4e5f60718293a".to_string(),
    ] {
        let r = app.delete(&format!("/api/links/{gone}"), Some(&ada)).await;
        assert_eq!((r.status, r.detail()), (404, "Link not found"), "{gone}");
    }
    // The persons are untouched.
    assert_eq!(
        app.get("/api/persons", Some(&ada))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Deleting a person deletes its links by `person_id_1` or `person_id_2`: both fields are
/// indexed, so that deletion does not scan every link of every tree.
#[tokio::test]
async fn family_links_are_indexed_by_both_persons() {
    use crate::common::wait_until;
    use crate::support::gateway;
    use bson::Document;
    use mongodb::Collection;

    let (_db, app) = start().await;
    let gw = gateway(&app);
    wait_until("the family_links indexes on both persons", || {
        let gw = gw.clone();
        async move {
            let names = gw
                .run(
                    "list_index_names",
                    "family_links",
                    |c: Collection<Document>| async move { c.list_index_names().await },
                )
                .await
                .unwrap_or_default();
            names.iter().any(|n| n == "person_id_1_1") && names.iter().any(|n| n == "person_id_2_1")
        }
    })
    .await;
    let h = app.get("/health", None).await;
    let ensured = h.body["indexes"]["ensured"].to_string();
    assert!(
        ensured.contains("family_links.person_id_1_1")
            && ensured.contains("family_links.person_id_2_1"),
        "{ensured}"
    );
}
