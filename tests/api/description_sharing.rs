//! `/openapi.json` documents the sharing routes (preview, collaborators, contributions,
//! notifications, shared tree, GDPR) with their error responses, bodies and the list caps.

use crate::start;

#[tokio::test]
async fn the_api_description_lists_every_sharing_route_with_its_errors() {
    let (_db, app) = start().await;
    let spec = app.get("/openapi.json", None).await;
    assert_eq!(spec.status, 200);
    let paths = &spec.body["paths"];
    let routes: &[(&str, &str, &[&str])] = &[
        ("/api/preview/session", "post", &["200", "503"]),
        ("/api/preview/{token}", "get", &["200", "404", "410", "503"]),
        (
            "/api/preview/{token}/person",
            "post",
            &["200", "400", "404", "410", "422", "503"],
        ),
        (
            "/api/preview/{token}/link",
            "post",
            &["200", "400", "404", "410", "422", "503"],
        ),
        (
            "/api/preview/{token}/convert",
            "post",
            &["200", "401", "404", "410", "503"],
        ),
        (
            "/api/collaborators/invite",
            "post",
            &["200", "400", "401", "422", "503"],
        ),
        ("/api/collaborators", "get", &["200", "401", "503"]),
        (
            "/api/collaborators/shared-with-me",
            "get",
            &["200", "401", "503"],
        ),
        (
            "/api/collaborators/{id}",
            "delete",
            &["200", "401", "404", "503"],
        ),
        (
            "/api/contributions",
            "post",
            &["200", "401", "403", "404", "422", "503"],
        ),
        ("/api/contributions/pending", "get", &["200", "401", "503"]),
        ("/api/contributions/my", "get", &["200", "401", "503"]),
        (
            "/api/contributions/{id}/review",
            "post",
            &["200", "400", "401", "404", "422", "503"],
        ),
        ("/api/notifications", "get", &["200", "401", "503"]),
        (
            "/api/notifications/unread-count",
            "get",
            &["200", "401", "503"],
        ),
        (
            "/api/notifications/{id}/read",
            "put",
            &["200", "401", "404", "503"],
        ),
        ("/api/notifications/read-all", "put", &["200", "401", "503"]),
        (
            "/api/tree/shared/{owner_id}",
            "get",
            &["200", "401", "403", "404", "503"],
        ),
        ("/api/gdpr/export", "get", &["200", "401", "503"]),
        ("/api/gdpr/delete-account", "delete", &["200", "401", "503"]),
    ];
    for (path, method, statuses) in routes {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(
            op["summary"].is_string() || op["description"].is_string(),
            "{method} {path} has no summary"
        );
        for status in *statuses {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path} does not document {status}"
            );
        }
        let needs_auth = !path.starts_with("/api/preview") || path.ends_with("/convert");
        assert_eq!(
            op["security"].is_array(),
            needs_auth,
            "{method} {path} security: {}",
            op["security"]
        );
    }
    for (path, schema) in [
        ("/api/preview/{token}/person", "PersonInput"),
        ("/api/preview/{token}/link", "PreviewLinkBody"),
        ("/api/collaborators/invite", "InviteInput"),
        ("/api/contributions", "ContributionInput"),
        ("/api/contributions/{id}/review", "ReviewInput"),
    ] {
        let body = &paths[path]["post"]["requestBody"]["content"]["application/json; charset=utf-8"]
            ["schema"]["$ref"];
        assert_eq!(
            body.as_str(),
            Some(format!("#/components/schemas/{schema}").as_str()),
            "{path}: {}",
            paths[path]["post"]["requestBody"]
        );
    }
    let description = spec.body["info"]["description"].as_str().unwrap();
    assert!(
        description.contains("notifications at the 50 newest"),
        "{description}"
    );
    assert!(description.contains("collaborators"), "{description}");
}
