//! `/openapi.json` documents part A's routes with their error responses.

use crate::start;

#[tokio::test]
async fn the_api_description_lists_every_route_with_its_errors() {
    let (_db, app) = start().await;
    let spec = app.get("/openapi.json", None).await;
    assert_eq!(spec.status, 200);
    let paths = &spec.body["paths"];
    let routes = [
        (
            "/api/auth/register",
            "post",
            &["200", "400", "422", "503"][..],
        ),
        ("/api/auth/login", "post", &["200", "401", "422", "503"][..]),
        ("/api/auth/me", "get", &["200", "401", "503"][..]),
        ("/api/auth/logout", "post", &["204", "401", "503"][..]),
        ("/api/users", "get", &["200", "401", "403", "503"][..]),
        (
            "/api/users/{id}/promote",
            "put",
            &["200", "403", "404", "503"][..],
        ),
        (
            "/api/users/{id}/demote",
            "put",
            &["200", "400", "403", "404", "503"][..],
        ),
        ("/api/persons", "post", &["200", "401", "422", "503"][..]),
        ("/api/persons", "get", &["200", "401", "503"][..]),
        ("/api/persons/{id}", "get", &["200", "404", "503"][..]),
        (
            "/api/persons/{id}",
            "put",
            &["200", "400", "403", "404", "422", "503"][..],
        ),
        (
            "/api/persons/{id}",
            "delete",
            &["200", "403", "404", "503"][..],
        ),
        (
            "/api/links",
            "post",
            &["200", "400", "404", "422", "503"][..],
        ),
        ("/api/links", "get", &["200", "401", "503"][..]),
        (
            "/api/links/{id}",
            "delete",
            &["200", "403", "404", "503"][..],
        ),
        ("/api/tree", "get", &["200", "401", "503"][..]),
    ];
    for (path, method, statuses) in routes {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(
            op["summary"].is_string() || op["description"].is_string(),
            "{method} {path} has no summary"
        );
        for status in statuses {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path} does not document {status}"
            );
        }
        if method == "post" && path != "/api/auth/logout"
            || method == "put" && path.starts_with("/api/persons")
        {
            let content = &op["requestBody"]["content"];
            let schema = content
                .as_object()
                .and_then(|c| c.values().next())
                .map(|m| &m["schema"]);
            assert!(
                schema.is_some_and(|s| s["$ref"].is_string()),
                "{method} {path} does not document its body: {}",
                op["requestBody"]
            );
        }
        let authenticated =
            !path.starts_with("/api/auth/") || path == "/api/auth/me" || path == "/api/auth/logout";
        assert_eq!(
            op["security"].is_array(),
            authenticated,
            "{method} {path} security"
        );
    }
    let description = spec.body["info"]["description"].as_str().unwrap();
    assert!(description.contains("500"), "{description}");
}

#[tokio::test]
async fn every_route_that_takes_a_body_documents_413() {
    let (_db, app) = start().await;
    let spec = app.get("/openapi.json", None).await.body;
    let mut with_body = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["requestBody"].is_null() {
                continue;
            }
            with_body += 1;
            assert!(
                op["responses"]["413"].is_object(),
                "{method} {path} takes a body but does not document 413"
            );
        }
    }
    assert!(with_body >= 10, "only {with_body} routes take a body");
    // And 413 is what such a route answers over the limit.
    let big = "x".repeat(9 * 1024 * 1024);
    let r = app
        .post("/api/auth/login", serde_json::json!({ "email": big }), None)
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.detail().contains("too large"), "{}", r.body);
}
