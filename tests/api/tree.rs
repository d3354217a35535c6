//! `GET /api/tree`: the caller's persons and links, nobody else's.

use serde_json::json;

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
