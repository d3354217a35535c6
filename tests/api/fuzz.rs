//! Property-based requests on every route of the API description: path and query values,
//! JSON bodies and tokens generated to be hostile (control characters and NUL, huge
//! strings, deeply nested JSON, wrong types, operator-looking strings, bytes that are not
//! UTF-8). Whatever the request, the answer is never a 5xx, and an error answer is JSON
//! with a `detail` (or, from the two HTML pages for people, HTML).
//!
//! The routes come from `/openapi.json`, so a new route is covered without editing this
//! file. The generator runs from a fixed seed (the same requests every run); a failure is
//! shrunk to a small request and printed, not saved to a file.

use std::sync::Arc;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

use aila_testkit::mailpit::{self, Mailpit};

use crate::common::{Database, TestApp, spawn_app_with};
use crate::{create_link, create_person, id};

/// Requests generated per run (spread over every route).
const CASES: u32 = 600;

/// A route of the API description, with what its requests can carry.
#[derive(Debug, Clone)]
struct Route {
    method: String,
    /// Path template, `{name}` for each path parameter.
    path: String,
    path_params: Vec<String>,
    query_params: Vec<String>,
    /// The request body's top-level field names (empty without a JSON body).
    fields: Vec<String>,
    has_body: bool,
}

/// Routes whose success would end the caller's session or account: generated with a valid
/// token they would leave every later case unauthenticated, so they get only foreign ones.
fn ends_the_session(route: &Route) -> bool {
    matches!(
        (route.method.as_str(), route.path.as_str()),
        ("post", "/api/auth/logout") | ("delete", "/api/gdpr/delete-account")
    )
}

/// The routes of the API description.
fn routes(spec: &Value) -> Vec<Route> {
    let schemas = &spec["components"]["schemas"];
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let named = |place: &str| -> Vec<String> {
                params
                    .iter()
                    .filter(|p| p["in"] == place)
                    .map(|p| p["name"].as_str().unwrap().to_string())
                    .collect()
            };
            let body_schema = &op["requestBody"]["content"]["application/json"]["schema"];
            let resolved = match body_schema["$ref"].as_str() {
                Some(r) => &schemas[r.trim_start_matches("#/components/schemas/")],
                None => body_schema,
            };
            let fields = resolved["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            out.push(Route {
                method: method.clone(),
                path: path.clone(),
                path_params: named("path"),
                query_params: named("query"),
                fields,
                has_body: !op["requestBody"].is_null(),
            });
        }
    }
    out.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
    out
}

/// Strings meant to break things: control characters (NUL among them), Unicode, operator
/// and path look-alikes, ObjectId shapes. Short enough for a URL.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[\\x00-\\x1f\\x7f]{1,6}",
        "[a-z]{0,4}[\\x00-\\x1f][a-z@.]{0,8}",
        "\\PC{0,24}",
        "[0-9a-f]{24}",
        Just(String::new()),
        Just("$where".to_string()),
        Just("{\"$gt\":\"\"}".to_string()),
        Just("../../etc/passwd".to_string()),
        Just("a@b.c\u{0}".to_string()),
        Just("-1".to_string()),
        Just("99999999999999999999999".to_string()),
    ]
}

/// Strings for bodies: the short ones, and huge ones (up to about 1.2 MB).
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => hostile_text(),
        1 => (0usize..4).prop_map(|k| "é\u{1}".repeat([2_000, 40_000, 200_000, 400_000][k])),
    ]
}

/// Any JSON value built from hostile leaves (wrong types for every field).
fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|x| json!(x)),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(hostile_text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A request body for a route with `fields`: its own fields with hostile values, any
/// hostile JSON, JSON nested far deeper than any parser's limit, or bytes that are not
/// UTF-8 at all.
fn hostile_body(fields: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    let n = fields.len();
    prop_oneof![
        4 => vec(hostile_value(), n).prop_map(move |values| {
            let object: serde_json::Map<String, Value> =
                fields.iter().cloned().zip(values).collect();
            serde_json::to_vec(&Value::Object(object)).unwrap()
        }),
        2 => hostile_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => (64usize..5_000).prop_map(|depth| {
            let mut body = "[{\"a\":".repeat(depth).into_bytes();
            body.extend("1}]".repeat(depth).into_bytes());
            body
        }),
        1 => vec(any::<u8>(), 0..64).prop_map(|mut bytes| {
            bytes.insert(0, 0xff);
            bytes
        }),
    ]
}

/// Who the request claims to be.
#[derive(Debug, Clone)]
enum Caller {
    /// The fixture user's real token.
    Valid,
    /// No `Authorization` header.
    Anonymous,
    /// A bearer token that is not one of ours.
    Forged(String),
}

/// One generated request.
#[derive(Debug, Clone)]
struct Case {
    route: usize,
    /// Per path parameter: `None` for the fixture's valid value, else a hostile one.
    path_values: Vec<Option<String>>,
    query_values: Vec<Option<String>>,
    body: Option<Vec<u8>>,
    caller: Caller,
}

fn case(routes: Arc<Vec<Route>>) -> impl Strategy<Value = Case> {
    (0..routes.len()).prop_flat_map(move |i| {
        let r = &routes[i];
        let value = || proptest::option::weighted(0.7, hostile_text());
        let caller = if ends_the_session(r) {
            prop_oneof![
                Just(Caller::Anonymous),
                "[A-Za-z0-9._-]{0,300}".prop_map(Caller::Forged)
            ]
            .boxed()
        } else {
            prop_oneof![
                3 => Just(Caller::Valid),
                1 => Just(Caller::Anonymous),
                1 => "[A-Za-z0-9._-]{0,300}".prop_map(Caller::Forged),
            ]
            .boxed()
        };
        let body = if r.has_body {
            proptest::option::weighted(0.95, hostile_body(r.fields.clone())).boxed()
        } else {
            Just(None).boxed()
        };
        (
            Just(i),
            vec(value(), r.path_params.len()),
            vec(value(), r.query_params.len()),
            body,
            caller,
        )
            .prop_map(|(route, path_values, query_values, body, caller)| Case {
                route,
                path_values,
                query_values,
                body,
                caller,
            })
    })
}

/// Valid values for path and query parameters, from the fixture's own data.
struct Fixture {
    token: String,
    user_id: String,
    person: String,
    link: String,
    preview: String,
}

impl Fixture {
    /// A value of parameter `name` of route `path` that names something of the fixture.
    fn valid(&self, path: &str, name: &str) -> &str {
        match name {
            "token" => &self.preview,
            "owner_id" => &self.user_id,
            _ if path.starts_with("/api/links/") => &self.link,
            _ if path.starts_with("/api/users/") => &self.user_id,
            _ => &self.person,
        }
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An error and every cause under it, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// Sends `case`; `Ok` is the status, `Err` describes a 5xx or an error answer without
/// `detail`.
async fn send(app: &TestApp, routes: &[Route], fx: &Fixture, case: &Case) -> Result<u16, String> {
    let route = &routes[case.route];
    let mut path = route.path.clone();
    for (name, value) in route.path_params.iter().zip(&case.path_values) {
        let v = value
            .as_deref()
            .unwrap_or_else(|| fx.valid(&route.path, name));
        path = path.replace(&format!("{{{name}}}"), &encode(v));
    }
    let query: Vec<String> = route
        .query_params
        .iter()
        .zip(&case.query_values)
        .map(|(name, value)| {
            let v = value
                .as_deref()
                .unwrap_or_else(|| fx.valid(&route.path, name));
            format!("{name}={}", encode(v))
        })
        .collect();
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let method = reqwest::Method::from_bytes(route.method.to_uppercase().as_bytes()).unwrap();
    let mut req = app.http.request(method, format!("{}{path}", app.address));
    req = match &case.caller {
        Caller::Valid => req.bearer_auth(&fx.token),
        Caller::Anonymous => req,
        Caller::Forged(t) => req.bearer_auth(t),
    };
    if let Some(body) = &case.body {
        req = req
            .header("content-type", "application/json")
            .body(body.clone());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{} {path}: no answer: {}", route.method, chain(&e)))?;
    let status = resp.status().as_u16();
    // The pages for people (`/verify-email`, `/reset-password`) answer errors in HTML.
    let resp_is_html = resp
        .headers()
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    let bytes = resp.bytes().await.unwrap_or_default();
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).to_string();
    if status >= 500 {
        return Err(format!("{} {path}: {status} {shown}", route.method));
    }
    let html = resp_is_html;
    if status >= 400 && !html {
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !body["detail"].is_string() {
            return Err(format!(
                "{} {path}: {status} without a JSON `detail`: {shown}",
                route.method
            ));
        }
    }
    Ok(status)
}

#[test]
fn no_generated_request_gets_a_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // With a mail server, so the mail routes do their work instead of answering 503.
    let mail = Mailpit::start(&mailpit::binary(), None).expect("mailpit starts");
    let (_db, app, fx, routes) = rt.block_on(async {
        let db = Database::start().await;
        let app = spawn_app_with(&db.url(), &[("SMTP_URL", mail.smtp_url().as_str())]).await;
        app.wait_ready().await;
        let (token, user) = app.register("fuzz@example.org").await;
        let p1 = id(&create_person(&app, &token, "Fuzz1").await);
        let p2 = id(&create_person(&app, &token, "Fuzz2").await);
        let link = id(&create_link(&app, &token, &p1, &p2, "spouse").await);
        let r = app.post("/api/preview/session", json!({}), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let preview = r.str("session_token").to_string();
        let spec = app.get("/openapi.json", None).await.body;
        let routes = routes(&spec);
        let fx = Fixture {
            token,
            user_id: id(&user),
            person: p1,
            link,
            preview,
        };
        (db, app, fx, routes)
    });
    assert!(
        routes.len() >= 36,
        "the API description lists {} routes",
        routes.len()
    );
    let routes = Arc::new(routes);

    let config = Config {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let result = runner.run(&case(routes.clone()), |c| {
        let status = rt
            .block_on(send(&app, &routes, &fx, &c))
            .map_err(TestCaseError::fail)?;
        *statuses.lock().unwrap().entry(status).or_default() += 1;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The requests got past authentication and validation often enough to reach the
    // routes' own work, not only their first refusal.
    let statuses = statuses.into_inner().unwrap();
    println!("statuses of {CASES} generated requests: {statuses:?}");
    let ok: u32 = statuses.range(200..300).map(|(_, n)| n).sum();
    let distinct_errors = statuses.range(400..500).count();
    assert!(ok >= CASES / 20, "only {ok} successes: {statuses:?}");
    assert!(distinct_errors >= 4, "few kinds of refusal: {statuses:?}");
    // The fixture user is still there: the run exercised routes with a valid token.
    let me = rt.block_on(app.get("/api/auth/me", Some(&fx.token)));
    assert_eq!(me.status, 200, "{}", me.body);
}
