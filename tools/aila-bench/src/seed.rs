//! Data set-up through the API itself (never straight into the database): a user, the
//! persons and links of a tree, and small probes of `/health` and `/readiness`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::load::{RequestSpec, once};

/// Sends one request and parses the JSON answer.
pub async fn call(addr: SocketAddr, spec: &RequestSpec) -> Result<(u16, Value)> {
    let (status, body) = once(addr, spec).await?;
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok((status, value))
}

/// A person body like the ones the web client sends.
pub fn person_body(i: usize) -> Value {
    let gender = ["male", "female", "unknown"][i % 3];
    json!({
        "first_name": format!("Prénom{i}"),
        "last_name": "Benchmark",
        "gender": gender,
        "birth_date": format!("{}-0{}-1{}", 1900 + i % 100, 1 + i % 9, i % 10),
        "birth_place": "Lyon",
        "notes": "Seeded by aila-bench.",
        "geographic_branch": "Rhône",
    })
}

/// Registers a fresh user and returns its token.
pub async fn register(addr: SocketAddr) -> Result<String> {
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = json!({
        "email": email, "password": "Password123!", "first_name": "Ada",
        "last_name": "Lovelace", "gdpr_consent": true,
    });
    let (status, v) = call(addr, &RequestSpec::post_json("/api/auth/register", &body)).await?;
    if status != 200 {
        bail!("register answered {status}: {v}");
    }
    v["access_token"]
        .as_str()
        .map(str::to_string)
        .context("no access_token in the register answer")
}

/// Creates `persons` persons and `links` links between them in the tree of `token`'s user.
pub async fn seed_tree(addr: SocketAddr, token: &str, persons: usize, links: usize) -> Result<()> {
    let mut ids = Vec::with_capacity(persons);
    for i in 0..persons {
        let spec = RequestSpec::post_json("/api/persons", &person_body(i)).bearer(token);
        let (status, v) = call(addr, &spec).await?;
        if status != 200 {
            bail!("POST /api/persons answered {status}: {v}");
        }
        ids.push(v["id"].as_str().context("no person id")?.to_string());
    }
    const TYPES: [&str; 6] = [
        "parent",
        "child",
        "spouse",
        "sibling",
        "cousin",
        "godparent",
    ];
    for i in 0..links {
        let a = i % persons;
        let mut b = (i * 37 + 11 + i / persons) % persons;
        if b == a {
            b = (b + 1) % persons;
        }
        let link_type = TYPES[i % TYPES.len()];
        let body = json!({
            "person_id_1": ids[a], "person_id_2": ids[b], "link_type": link_type,
        });
        let spec = RequestSpec::post_json("/api/links", &body).bearer(token);
        let (status, v) = call(addr, &spec).await?;
        if status != 200 {
            bail!("POST /api/links answered {status}: {v}");
        }
    }
    Ok(())
}

/// Polls `path` every `every` until it answers `want`; the instant it first did.
pub async fn wait_status(
    addr: SocketAddr,
    path: &str,
    want: u16,
    every: Duration,
    limit: Duration,
) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    let spec = RequestSpec::get(path);
    loop {
        if let Ok((status, _)) = once(addr, &spec).await {
            if status == want {
                return Ok(Instant::now());
            }
        }
        if Instant::now() > deadline {
            bail!("GET {path} did not answer {want} within {limit:?}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls `/health` until `pred` holds for its JSON.
pub async fn wait_health(
    addr: SocketAddr,
    what: &str,
    limit: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok((200, v)) = call(addr, &RequestSpec::get("/health")).await {
            if pred(&v) {
                return Ok(v);
            }
        }
        if Instant::now() > deadline {
            bail!("/health never showed {what} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
