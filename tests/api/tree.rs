//! `GET /api/tree`: the caller's persons and links, nobody else's.

use bson::doc;
use bson::oid::ObjectId;
use serde_json::json;

use crate::support::insert_all;
use crate::{create_link, create_person, id, start};

#[tokio::test]
async fn the_tree_holds_the_callers_persons_and_links_only() {
    let (_db, app) = start().await;
    let (ada, _) = app.register("ada@example.org").await;
    let (bob, _) = app.register("bob@example.org").await;

    let r = app.get("/api/tree", Some(&ada)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"persons": [], "links": []}));

    let a = create_person(&app, &ada, "A").await;
    let a2 = create_person(&app, &ada, "A2").await;
    let link = create_link(&app, &ada, &id(&a), &id(&a2), "child").await;
    let b = create_person(&app, &bob, "B").await;

    let r = app.get("/api/tree", Some(&ada)).await;
    assert_eq!(r.body, json!({"persons": [a, a2], "links": [link]}));
    let r = app.get("/api/tree", Some(&bob)).await;
    assert_eq!(r.body, json!({"persons": [b], "links": []}));

    let r = app.get("/api/tree", None).await;
    assert_eq!((r.status, r.detail()), (401, "Not authenticated"));
}

/// More persons and links than the server's default first batch (101 documents), stored out
/// of order: every one comes back, oldest first (by id: an ObjectId starts with its creation
/// time), as JSON with the JSON content type; and a list never holds more than its cap (500).
#[tokio::test]
async fn a_tree_larger_than_one_batch_comes_back_whole_oldest_first_and_capped() {
    let (_db, app) = start().await;
    let (ada, user) = app.register("ada@example.org").await;
    let owner = user["id"].as_str().expect("the user's id").to_string();
    let at = |n: usize| bson::DateTime::from_millis(1_700_000_000_000 + n as i64 * 1_000);
    // Ids made oldest first, documents stored newest first: only the sort can order them.
    let person_ids: Vec<ObjectId> = (0..150).map(|_| ObjectId::new()).collect();
    let link_ids: Vec<ObjectId> = (0..520).map(|_| ObjectId::new()).collect();
    let persons = (0..150)
        .rev()
        .map(|n| {
            doc! {
                "_id": person_ids[n], "user_id": &owner, "first_name": format!("P{n:03}"),
                "last_name": "Batch", "gender": "unknown", "created_at": at(n),
            }
        })
        .collect();
    insert_all(&app, "persons", persons).await;
    let links = (0..520)
        .rev()
        .map(|n| {
            doc! {
                "_id": link_ids[n], "user_id": &owner,
                "person_id_1": person_ids[n % 150].to_hex(),
                "person_id_2": person_ids[(n + 1) % 150].to_hex(),
                "link_type": "sibling", "created_at": at(n),
            }
        })
        .collect();
    insert_all(&app, "family_links", links).await;

    let r = app.get("/api/tree", Some(&ada)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.headers["content-type"], "application/json; charset=utf-8",
        "the answer is JSON"
    );
    // `key` of every item of the list `list` of the answer.
    let each = |list: &str, key: &str| -> Vec<String> {
        let items = r.body[list].as_array().expect("a list");
        items
            .iter()
            .map(|i| i[key].as_str().expect(key).to_string())
            .collect()
    };
    let expected: Vec<String> = (0..150).map(|n| format!("P{n:03}")).collect();
    assert_eq!(
        each("persons", "first_name"),
        expected,
        "all 150 persons, oldest first"
    );
    let ids = each("links", "id");
    let expected: Vec<String> = link_ids[..500].iter().map(|i| i.to_hex()).collect();
    if ids != expected {
        let first_wrong = ids.iter().zip(&expected).position(|(i, e)| i != e);
        panic!(
            "expected the oldest 500 links of 520, oldest first; got {} links, first difference at {first_wrong:?}",
            ids.len()
        );
    }
}
