//! `/api/persons`: create, list, get, partial update, delete (with its links), owner/admin
//! rules across users, a failure injected between the two writes of a delete, and the
//! request body limit (a few MiB of base64 photo pass, more gets 413).

use aila_api::db::gateway::InjectedFault;
use serde_json::json;

use crate::common::wait_until;
use crate::{create_link, create_person, id, start};

fn full_person() -> serde_json::Value {
    json!({
        "first_name": " Fatima ", "last_name": "Benali", "gender": "female",
        "birth_date": "vers 1920", "birth_place": "Tlemcen", "death_date": "1999-02-03",
        "death_place": "Oran", "photo": "aGVsbG8=", "notes": "Grand-mère",
        "geographic_branch": "Ouest", "algerian_branch": "ignored", "user_id": "someone-else",
        "is_preview": true,
    })
}

#[tokio::test]
async fn create_answers_every_field_and_ignores_unknown_ones() {
    let (_db, app) = start().await;
    let (token, user) = app.register("ada@example.org").await;
    let r = app.post("/api/persons", full_person(), Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let p = &r.body;
    assert_eq!(p["id"].as_str().unwrap().len(), 24);
    assert_eq!(p["user_id"], user["id"]);
    assert_eq!(p["first_name"], "Fatima");
    assert_eq!(p["last_name"], "Benali");
    assert_eq!(p["gender"], "female");
    assert_eq!(p["birth_date"], "vers 1920");
    assert_eq!(p["birth_place"], "Tlemcen");
    assert_eq!(p["death_date"], "1999-02-03");
    assert_eq!(p["death_place"], "Oran");
    assert_eq!(p["photo"], "aGVsbG8=");
    assert_eq!(p["notes"], "Grand-mère");
    assert_eq!(p["geographic_branch"], "Ouest");
    assert_eq!(p["is_preview"], false);
    assert!(p["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(p.get("algerian_branch").is_none() && p.get("_id").is_none());

    let minimal = create_person(&app, &token, "Omar").await;
    assert_eq!(minimal["gender"], "unknown");
    assert_eq!(minimal["photo"], serde_json::Value::Null);

    let r = app
        .get(&format!("/api/persons/{}", id(p)), Some(&token))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body, p);
}

#[tokio::test]
async fn create_refuses_invalid_bodies_with_422_naming_the_field() {
    let (_db, app) = start().await;
    let (token, _) = app.register("ada@example.org").await;
    let cases = [
        (
            "gender",
            json!({"first_name": "A", "last_name": "B", "gender": "other"}),
        ),
        ("first_name", json!({"first_name": "  ", "last_name": "B"})),
        ("last_name", json!({"first_name": "A"})),
        (
            "birth_place",
            json!({"first_name": "A", "last_name": "B", "birth_place": "x".repeat(201)}),
        ),
        (
            "notes",
            json!({"first_name": "A", "last_name": "B", "notes": ["n"]}),
        ),
    ];
    for (field, body) in cases {
        let r = app.post("/api/persons", body, Some(&token)).await;
        assert_eq!(r.status, 422, "{field}: {}", r.body);
        assert!(r.detail().contains(field), "{field}: {}", r.detail());
    }
    let r = app.get("/api/persons", Some(&token)).await;
    assert_eq!(r.body, json!([]));
    let r = app
        .post(
            "/api/persons",
            json!({"first_name": "A", "last_name": "B"}),
            None,
        )
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn each_user_lists_and_reads_only_their_own_persons() {
    let (_db, app) = start().await;
    let (ada, _) = app.register("ada@example.org").await;
    let (bob, _) = app.register("bob@example.org").await;
    let a1 = create_person(&app, &ada, "A1").await;
    let a2 = create_person(&app, &ada, "A2").await;
    let b1 = create_person(&app, &bob, "B1").await;

    let r = app.get("/api/persons", Some(&ada)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!([a1, a2]));
    let r = app.get("/api/persons", Some(&bob)).await;
    assert_eq!(r.body, json!([b1]));

    let r = app
        .get(&format!("/api/persons/{}", id(&a1)), Some(&bob))
        .await;
    assert_eq!((r.status, r.detail()), (404, "Person not found"));
    for bad in [
        "not-an-id",
        "6574a5b2c3d4e5f60718293a",
        "6574a5b2c3d4e5f60718293g",
    ] {
        let r = app.get(&format!("/api/persons/{bad}"), Some(&ada)).await;
        assert_eq!((r.status, r.detail()), (404, "Person not found"), "{bad}");
    }
}

#[tokio::test]
async fn update_changes_only_the_fields_present() {
    let (_db, app) = start().await;
    let (token, _) = app.register("ada@example.org").await;
    let p = app
        .post("/api/persons", full_person(), Some(&token))
        .await
        .body;
    let path = format!("/api/persons/{}", id(&p));

    let r = app
        .put(
            &path,
            Some(json!({"notes": "", "gender": "unknown", "birth_place": null, "user_id": "x"})),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut expected = p.clone();
    expected["notes"] = json!("");
    expected["gender"] = json!("unknown");
    assert_eq!(r.body, expected);
    assert_eq!(app.get(&path, Some(&token)).await.body, expected);

    let r = app
        .put(&path, Some(json!({"first_name": " Fatma "})), Some(&token))
        .await;
    assert_eq!(r.body["first_name"], "Fatma");

    for empty in [json!({}), json!({"unknown": 1}), json!({"notes": null})] {
        let r = app.put(&path, Some(empty.clone()), Some(&token)).await;
        assert_eq!(
            (r.status, r.detail()),
            (400, "No data to update"),
            "{empty}"
        );
    }
    let r = app
        .put(&path, Some(json!({"last_name": " "})), Some(&token))
        .await;
    assert_eq!(r.status, 422);
    assert!(r.detail().contains("last_name"));
    let r = app
        .put(&path, Some(json!({"gender": "x"})), Some(&token))
        .await;
    assert_eq!(r.status, 422);
    assert!(r.detail().contains("gender"));
    for bad in ["not-an-id", "6574a5b2c3d4e5f60718293a"] {
        let r = app
            .put(
                &format!("/api/persons/{bad}"),
                Some(json!({"notes": "n"})),
                Some(&token),
            )
            .await;
        assert_eq!((r.status, r.detail()), (404, "Person not found"), "{bad}");
    }
}

#[tokio::test]
async fn only_the_owner_or_an_admin_changes_or_deletes_a_person() {
    let (_db, app) = start().await;
    let (admin, _) = app.register("admin@example.org").await;
    let (ada, _) = app.register("ada@example.org").await;
    let (bob, _) = app.register("bob@example.org").await;
    let p = create_person(&app, &ada, "A1").await;
    let path = format!("/api/persons/{}", id(&p));

    let r = app
        .put(&path, Some(json!({"notes": "bob was here"})), Some(&bob))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = app.delete(&path, Some(&bob)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(app.get(&path, Some(&ada)).await.body, p);

    let r = app
        .put(
            &path,
            Some(json!({"notes": "checked by admin"})),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["user_id"], p["user_id"]);
    assert_eq!(
        app.get(&path, Some(&ada)).await.body["notes"],
        "checked by admin"
    );

    let r = app.delete(&path, Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.get(&path, Some(&ada)).await.status, 404);
}

#[tokio::test]
async fn delete_removes_the_person_and_every_link_naming_it() {
    let (_db, app) = start().await;
    let (token, _) = app.register("ada@example.org").await;
    let a = create_person(&app, &token, "A").await;
    let b = create_person(&app, &token, "B").await;
    let c = create_person(&app, &token, "C").await;
    create_link(&app, &token, &id(&a), &id(&b), "parent").await;
    create_link(&app, &token, &id(&c), &id(&a), "sibling").await;
    let kept = create_link(&app, &token, &id(&b), &id(&c), "cousin").await;

    let r = app
        .delete(&format!("/api/persons/{}", id(&a)), Some(&token))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.str("message").contains("deleted"));
    assert_eq!(
        app.get("/api/links", Some(&token)).await.body,
        json!([kept])
    );
    assert_eq!(
        app.get("/api/persons", Some(&token)).await.body,
        json!([b, c])
    );

    let r = app
        .delete(&format!("/api/persons/{}", id(&a)), Some(&token))
        .await;
    assert_eq!((r.status, r.detail()), (404, "Person not found"));
    let r = app.delete("/api/persons/not-an-id", Some(&token)).await;
    assert_eq!((r.status, r.detail()), (404, "Person not found"));
}

#[tokio::test]
async fn a_delete_failing_between_its_writes_leaves_no_dangling_link_and_a_retry_finishes() {
    let (_db, app) = start().await;
    let (token, _) = app.register("ada@example.org").await;
    let a = create_person(&app, &token, "A").await;
    let b = create_person(&app, &token, "B").await;
    create_link(&app, &token, &id(&a), &id(&b), "spouse").await;

    // The links are deleted, then the person's own delete fails.
    app.app().context().gateway.inject_fault(InjectedFault {
        operation: "delete_one",
        collection: "persons",
        skip: 0,
    });
    let path = format!("/api/persons/{}", id(&a));
    let r = app.delete(&path, Some(&token)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));

    // What the API shows is consistent: the person is still there, no link names a
    // missing person.
    let tree = app.get("/api/tree", Some(&token)).await.body;
    assert_eq!(tree["links"], json!([]));
    assert_eq!(tree["persons"].as_array().unwrap().len(), 2);

    // A retry converges (the breaker may need a moment after the failure it counted).
    let (app_ref, path_ref, token_ref) = (&app, &path, &token);
    wait_until("the retried delete to succeed", || async move {
        app_ref.delete(path_ref, Some(token_ref)).await.status == 200
    })
    .await;
    assert_eq!(app.get(&path, Some(&token)).await.status, 404);
    assert_eq!(app.get("/api/persons", Some(&token)).await.body, json!([b]));
}

#[tokio::test]
async fn a_few_mib_of_photo_pass_and_a_body_over_the_limit_gets_413() {
    let (_db, app) = start().await;
    let (token, _) = app.register("ada@example.org").await;

    let photo = "QUJD".repeat(3 * 1024 * 1024 / 4);
    let r = app
        .post(
            "/api/persons",
            json!({"first_name": "A", "last_name": "B", "photo": photo}),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body["detail"]);
    let r = app
        .get(&format!("/api/persons/{}", id(&r.body)), Some(&token))
        .await;
    assert_eq!(r.body["photo"].as_str().map(str::len), Some(photo.len()));

    let huge = "QUJD".repeat(9 * 1024 * 1024 / 4);
    let r = app
        .post(
            "/api/persons",
            json!({"first_name": "A", "last_name": "B", "photo": huge}),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, 413);
    assert!(!r.detail().is_empty());
    assert_eq!(
        app.get("/api/persons", Some(&token))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
