//! The load: virtual users that register, log in, add persons and links to their trees and
//! read trees and notifications, at a shared request rate.
//!
//! Every write carries a unique marker (a person's `notes`, a link's person pair and type,
//! an account's email), so the verification can count how often it is stored. A write that
//! fails with 503 (or no answer) is ambiguous: the database may have committed it before the
//! failure. By default every write carries an `Idempotency-Key` of its own and the client
//! retries blindly with it after the `Retry-After` (409, the first attempt still in flight,
//! likewise): the service applies it at most once and answers a retry of a write that did
//! happen with its first answer (`Idempotent-Replayed: true`, counted per attempt). With
//! `--no-idempotency-keys` the client does what a careful client without keys must do: it
//! reads its data back, and sends the write again only when it is not there. A write still
//! failing when its attempts run out is given up (stored at most once).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aila_api::domain::enums::LinkType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

use crate::record::{Attempt, Observed, RequestRecord, WriteKind, WriteOutcome, WriteRecord};

/// A tree is read back whole at the end; stay well under the API's 500-item list cap.
const MAX_PERSONS_PER_ACCOUNT: usize = 300;

const PASSWORD: &str = "Chaos-Passw0rd!";

/// Milliseconds since the start of the load.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    t0: Instant,
}

impl Clock {
    /// Starts now.
    pub fn start() -> Clock {
        Clock { t0: Instant::now() }
    }

    /// The start.
    pub fn t0(&self) -> Instant {
        self.t0
    }

    /// `at` in milliseconds since the start.
    pub fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.t0).as_secs_f64() * 1000.0
    }

    /// Now, in milliseconds since the start.
    pub fn now_ms(&self) -> f64 {
        self.ms(Instant::now())
    }
}

/// Spaces requests evenly at a total rate shared by every virtual user. A user that was
/// busy does not get to catch up in a burst: missed slots are dropped.
pub struct Pacer {
    period: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    /// `rate` requests per second in total.
    pub fn new(rate: f64) -> Pacer {
        Pacer {
            period: Duration::from_secs_f64(1.0 / rate.max(0.001)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for the next slot.
    pub async fn tick(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.period;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// What the load does.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Service base URL.
    pub url: String,
    /// Total requests per second.
    pub rate: f64,
    /// Unique per run: in every email and marker.
    pub run_id: String,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// How long a write keeps trying (read-backs and resends) after its first attempt
    /// failed, before the client gives up on it.
    pub write_patience: Duration,
    /// Seed of the action choice.
    pub seed: u64,
    /// Each user alternates a login and a new account this often (bcrypt-bound requests).
    pub auth_interval: Duration,
    /// Writes carry an `Idempotency-Key` and are retried blindly (false: read back
    /// before resending, no key).
    pub idempotency_keys: bool,
}

/// One account of a virtual user.
#[derive(Debug, Clone)]
pub struct Account {
    /// Email (the account's marker).
    pub email: String,
    /// Bearer token, once registered or logged in.
    pub token: Option<String>,
    /// Ids of its persons that are known to be stored.
    persons: Vec<String>,
    /// Person pairs already used by a link write.
    linked: HashSet<(String, String)>,
}

/// What one virtual user did.
#[derive(Debug, Default)]
pub struct UserLog {
    /// Its requests.
    pub requests: Vec<RequestRecord>,
    /// Its writes.
    pub writes: Vec<WriteRecord>,
    /// Its accounts.
    pub accounts: Vec<Account>,
}

/// An answer.
struct Reply {
    status: u16,
    body: Value,
    retry_after: Option<Duration>,
    /// `Idempotent-Replayed: true`: the stored answer of an earlier attempt.
    replayed: bool,
}

/// The shared side of the load.
pub struct Load {
    http: reqwest::Client,
    cfg: LoadConfig,
    pacer: Pacer,
    clock: Clock,
    stop: watch::Receiver<bool>,
    keys: std::sync::atomic::AtomicU64,
}

/// The actions and their weights.
#[derive(Debug, Clone, Copy)]
enum Action {
    CreatePerson,
    CreateLink,
    ReadTree,
    ReadNotifications,
    UnreadCount,
    Me,
    ListPersons,
    Login,
    Register,
}

/// The weighted mix of a user's requests. Logins and new accounts are not in it: they
/// come every `--auth-interval` per user, since bcrypt makes them CPU-bound by design.
const MIX: [(Action, u32); 7] = [
    (Action::CreatePerson, 30),
    (Action::CreateLink, 15),
    (Action::ReadTree, 25),
    (Action::ReadNotifications, 12),
    (Action::UnreadCount, 8),
    (Action::Me, 6),
    (Action::ListPersons, 4),
];

fn pick(rng: &mut StdRng) -> Action {
    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
    let mut n = rng.random_range(0..total);
    for (a, w) in MIX {
        if n < w {
            return a;
        }
        n -= w;
    }
    Action::ReadTree
}

enum Sent {
    /// 2xx, with the body.
    Ok(Value),
    /// 503, 5xx or no answer: may or may not have been applied.
    Ambiguous(Option<Duration>),
    /// Another 4xx.
    Refused(u16, Value),
}

impl Load {
    /// A load against `cfg.url`, timed by `clock`, stopping when `stop` turns true.
    pub fn new(cfg: LoadConfig, clock: Clock, stop: watch::Receiver<bool>) -> Arc<Load> {
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        Arc::new(Load {
            pacer: Pacer::new(cfg.rate),
            http,
            cfg,
            clock,
            stop,
            keys: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A fresh `Idempotency-Key` for one logical write (None without keys).
    fn new_key(&self) -> Option<String> {
        self.cfg.idempotency_keys.then(|| {
            let n = self.keys.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("{}-{n}", self.cfg.run_id)
        })
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    async fn send(
        &self,
        log: &mut UserLog,
        user: u32,
        route: &'static str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.send_keyed(log, user, route, path, token, body, None)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_keyed(
        &self,
        log: &mut UserLog,
        user: u32,
        route: &'static str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Reply {
        let (method, _) = route.split_once(' ').unwrap_or(("GET", route));
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        let mut req = self
            .http
            .request(method, format!("{}{}", self.cfg.url, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let started = Instant::now();
        let result = async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after-ms")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis)
                .or_else(|| {
                    resp.headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs)
                });
            let replayed = resp
                .headers()
                .get("idempotent-replayed")
                .is_some_and(|v| v == "true");
            let bytes = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, retry_after, replayed, bytes))
        }
        .await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let t_ms = self.clock.ms(started);
        match result {
            Ok((status, retry_after, replayed, bytes)) => {
                log.requests.push(RequestRecord {
                    t_ms,
                    route: route.into(),
                    status,
                    latency_ms,
                    user,
                    error: None,
                });
                Reply {
                    status,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    retry_after,
                    replayed,
                }
            }
            Err(e) => {
                log.requests.push(RequestRecord {
                    t_ms,
                    route: route.into(),
                    status: 0,
                    latency_ms,
                    user,
                    error: Some(error_text(&e)),
                });
                Reply {
                    status: 0,
                    body: Value::Null,
                    retry_after: None,
                    replayed: false,
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_write(
        &self,
        log: &mut UserLog,
        user: u32,
        attempts: &mut Vec<Attempt>,
        route: &'static str,
        path: &str,
        token: Option<&str>,
        body: Value,
        key: Option<&str>,
    ) -> Sent {
        let t = self.clock.now_ms();
        let r = self
            .send_keyed(log, user, route, path, token, Some(body), key)
            .await;
        attempts.push(Attempt {
            t_ms: t,
            status: r.status,
            replayed: r.replayed,
        });
        match r.status {
            200..=299 => Sent::Ok(r.body),
            // With a key: the first attempt is still being processed; retry after it.
            409 if key.is_some() => Sent::Ambiguous(r.retry_after),
            400..=499 => Sent::Refused(r.status, r.body),
            _ => Sent::Ambiguous(r.retry_after),
        }
    }

    /// Waits before the next try, unless stopping: the server's `Retry-After`, at least the
    /// client's own backoff (100 ms doubling with each failure), at most 2 s.
    async fn back_off(&self, retry_after: Option<Duration>, failures: u32) -> bool {
        let own = Duration::from_millis(100 << failures.saturating_sub(1).min(5));
        let wait = retry_after
            .unwrap_or(Duration::ZERO)
            .max(own)
            .min(Duration::from_secs(2));
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        !self.stopping()
    }

    /// Registers a new account (retrying while the database is away; the unique email
    /// makes a repeated registration harmless).
    async fn register(&self, log: &mut UserLog, user: u32, email: String) -> Option<Account> {
        let mut attempts = Vec::new();
        let body = json!({
            "email": email,
            "password": PASSWORD,
            "first_name": "Chaos",
            "last_name": format!("User{user}"),
            "gdpr_consent": true,
        });
        let give_up = Instant::now() + self.cfg.write_patience;
        let mut outcome = WriteOutcome::Unconfirmed;
        let mut token = None;
        let mut failures = 0;
        let key = self.new_key();
        while attempts.is_empty() || Instant::now() < give_up {
            self.pacer.tick().await;
            match self
                .send_write(
                    log,
                    user,
                    &mut attempts,
                    "POST /api/auth/register",
                    "/api/auth/register",
                    None,
                    body.clone(),
                    key.as_deref(),
                )
                .await
            {
                Sent::Ok(b) => {
                    token = b["access_token"].as_str().map(String::from);
                    outcome = WriteOutcome::Acknowledged;
                    break;
                }
                Sent::Refused(400, b)
                    if attempts.len() > 1
                        && b["detail"].as_str() == Some("Email already registered") =>
                {
                    // An earlier attempt was stored after all.
                    outcome = WriteOutcome::FoundAfterError;
                    break;
                }
                Sent::Refused(..) => {
                    outcome = WriteOutcome::Rejected;
                    break;
                }
                Sent::Ambiguous(retry) => {
                    failures += 1;
                    if !self.back_off(retry, failures).await {
                        break;
                    }
                }
            }
        }
        if !attempts.is_empty() {
            log.writes.push(WriteRecord {
                kind: WriteKind::User,
                marker: email.clone(),
                owner: email.clone(),
                attempts,
                outcome,
            });
        }
        let mut account = Account {
            email,
            token,
            persons: Vec::new(),
            linked: HashSet::new(),
        };
        if outcome == WriteOutcome::FoundAfterError {
            self.login(log, user, &mut account).await;
        }
        (account.token.is_some()).then_some(account)
    }

    async fn login(&self, log: &mut UserLog, user: u32, account: &mut Account) {
        let r = self
            .send(
                log,
                user,
                "POST /api/auth/login",
                "/api/auth/login",
                None,
                Some(json!({"email": account.email, "password": PASSWORD})),
            )
            .await;
        if let Some(t) = r.body["access_token"].as_str() {
            account.token = Some(t.to_string());
        }
    }

    /// One write with read-back before any resend. `find` looks for the marker in the
    /// list read back and returns the stored item's id.
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        log: &mut UserLog,
        user: u32,
        token: &str,
        kind: WriteKind,
        marker: String,
        owner: &str,
        route: &'static str,
        path: &str,
        body: Value,
        list: (&'static str, &str),
        find: impl Fn(&Value) -> Option<String>,
    ) -> Option<String> {
        let mut attempts = Vec::new();
        let give_up = Instant::now() + self.cfg.write_patience;
        let mut failures = 0;
        let mut outcome = WriteOutcome::Unconfirmed;
        let mut id = None;
        let key = self.new_key();
        'write: while (attempts.is_empty() || Instant::now() < give_up) && !self.stopping() {
            match self
                .send_write(
                    log,
                    user,
                    &mut attempts,
                    route,
                    path,
                    Some(token),
                    body.clone(),
                    key.as_deref(),
                )
                .await
            {
                Sent::Ok(b) => {
                    id = b["id"].as_str().map(String::from);
                    outcome = WriteOutcome::Acknowledged;
                    break;
                }
                Sent::Refused(..) => {
                    outcome = WriteOutcome::Rejected;
                    break;
                }
                Sent::Ambiguous(retry) if key.is_some() => {
                    // Blind retry with the same key: the service applies it at most once.
                    failures += 1;
                    if Instant::now() >= give_up || !self.back_off(retry, failures).await {
                        break 'write;
                    }
                    self.pacer.tick().await;
                }
                Sent::Ambiguous(mut retry) => loop {
                    // Read back before sending again.
                    failures += 1;
                    if Instant::now() >= give_up || !self.back_off(retry, failures).await {
                        break 'write;
                    }
                    self.pacer.tick().await;
                    let r = self
                        .send(log, user, list.0, list.1, Some(token), None)
                        .await;
                    if (200..300).contains(&r.status) {
                        if let Some(found) = r
                            .body
                            .as_array()
                            .and_then(|items| items.iter().find_map(&find))
                        {
                            id = Some(found);
                            outcome = WriteOutcome::FoundAfterError;
                            break 'write;
                        }
                        // Not stored: send it again.
                        self.pacer.tick().await;
                        continue 'write;
                    }
                    retry = r.retry_after;
                },
            }
        }
        // A write the load stopped before sending is no write at all.
        if !attempts.is_empty() {
            log.writes.push(WriteRecord {
                kind,
                marker,
                owner: owner.to_string(),
                attempts,
                outcome,
            });
        }
        id
    }

    /// One virtual user until the load stops.
    pub async fn run_user(self: Arc<Self>, user: u32) -> UserLog {
        let mut log = UserLog::default();
        let mut rng = StdRng::seed_from_u64(self.cfg.seed.wrapping_add(u64::from(user)));
        let mut seq = 0u64;
        let mut email_seq = 0u32;
        let mut new_email = |user: u32| {
            email_seq += 1;
            format!("chaos-{}-u{user}-{email_seq}@example.org", self.cfg.run_id)
        };
        // The first account, before anything else.
        let mut current: Option<usize> = None;
        while current.is_none() && !self.stopping() {
            if let Some(a) = self.register(&mut log, user, new_email(user)).await {
                log.accounts.push(a);
                current = Some(log.accounts.len() - 1);
            }
        }
        let Some(mut current) = current else {
            return log;
        };
        // Spread the users' logins over the interval.
        let spread = self.cfg.auth_interval.mul_f64(rng.random_range(0.2..1.0));
        let mut next_auth = Instant::now() + spread;
        let mut auth_count = 0u32;
        while !self.stopping() {
            self.pacer.tick().await;
            if self.stopping() {
                break;
            }
            let action = if Instant::now() >= next_auth {
                next_auth += self.cfg.auth_interval;
                auth_count += 1;
                if auth_count % 2 == 1 {
                    Action::Login
                } else {
                    Action::Register
                }
            } else {
                pick(&mut rng)
            };
            let acct = log.accounts[current].clone();
            let token = acct.token.clone().unwrap_or_default();
            match action {
                Action::Register => {
                    if let Some(a) = self.register(&mut log, user, new_email(user)).await {
                        log.accounts.push(a);
                        current = log.accounts.len() - 1;
                    }
                }
                Action::Login => {
                    let mut a = acct;
                    self.login(&mut log, user, &mut a).await;
                    log.accounts[current].token = a.token;
                }
                Action::CreatePerson => {
                    if acct.persons.len() >= MAX_PERSONS_PER_ACCOUNT {
                        if let Some(a) = self.register(&mut log, user, new_email(user)).await {
                            log.accounts.push(a);
                            current = log.accounts.len() - 1;
                        }
                        continue;
                    }
                    seq += 1;
                    let marker = format!("chaos-{}-u{user}-p{seq}", self.cfg.run_id);
                    let gender = ["male", "female", "unknown"][rng.random_range(0..3)];
                    let body = json!({
                        "first_name": format!("Person{seq}"),
                        "last_name": format!("User{user}"),
                        "gender": gender,
                        "birth_date": format!("{}", 1900 + rng.random_range(0..120)),
                        "birth_place": "Alger",
                        "notes": marker,
                    });
                    let wanted = marker.clone();
                    let id = self
                        .write(
                            &mut log,
                            user,
                            &token,
                            WriteKind::Person,
                            marker,
                            &acct.email,
                            "POST /api/persons",
                            "/api/persons",
                            body,
                            ("GET /api/persons", "/api/persons"),
                            move |p| {
                                (p["notes"].as_str() == Some(wanted.as_str()))
                                    .then(|| p["id"].as_str().map(String::from))
                                    .flatten()
                            },
                        )
                        .await;
                    if let Some(id) = id {
                        log.accounts[current].persons.push(id);
                    }
                }
                Action::CreateLink => {
                    let n = acct.persons.len();
                    if n < 2 {
                        continue;
                    }
                    let mut pair = None;
                    for _ in 0..10 {
                        let (i, j) = (rng.random_range(0..n), rng.random_range(0..n));
                        let p = (acct.persons[i].clone(), acct.persons[j].clone());
                        if i != j && !acct.linked.contains(&p) {
                            pair = Some(p);
                            break;
                        }
                    }
                    let Some((p1, p2)) = pair else { continue };
                    log.accounts[current]
                        .linked
                        .insert((p1.clone(), p2.clone()));
                    let link_type =
                        LinkType::ALL[rng.random_range(0..LinkType::ALL.len())].as_str();
                    let marker = link_marker(&p1, &p2, link_type);
                    let wanted = marker.clone();
                    self.write(
                        &mut log,
                        user,
                        &token,
                        WriteKind::Link,
                        marker,
                        &acct.email,
                        "POST /api/links",
                        "/api/links",
                        json!({"person_id_1": p1, "person_id_2": p2, "link_type": link_type}),
                        ("GET /api/links", "/api/links"),
                        move |l| {
                            (link_marker_of(l).as_deref() == Some(wanted.as_str()))
                                .then(|| l["id"].as_str().map(String::from))
                                .flatten()
                        },
                    )
                    .await;
                }
                Action::ReadTree => {
                    self.send(
                        &mut log,
                        user,
                        "GET /api/tree",
                        "/api/tree",
                        Some(&token),
                        None,
                    )
                    .await;
                }
                Action::ReadNotifications => {
                    self.send(
                        &mut log,
                        user,
                        "GET /api/notifications",
                        "/api/notifications",
                        Some(&token),
                        None,
                    )
                    .await;
                }
                Action::UnreadCount => {
                    self.send(
                        &mut log,
                        user,
                        "GET /api/notifications/unread-count",
                        "/api/notifications/unread-count",
                        Some(&token),
                        None,
                    )
                    .await;
                }
                Action::Me => {
                    self.send(
                        &mut log,
                        user,
                        "GET /api/auth/me",
                        "/api/auth/me",
                        Some(&token),
                        None,
                    )
                    .await;
                }
                Action::ListPersons => {
                    self.send(
                        &mut log,
                        user,
                        "GET /api/persons",
                        "/api/persons",
                        Some(&token),
                        None,
                    )
                    .await;
                }
            }
        }
        log
    }
}

/// `person_id_1|person_id_2|link_type`.
pub fn link_marker(p1: &str, p2: &str, link_type: &str) -> String {
    format!("{p1}|{p2}|{link_type}")
}

fn link_marker_of(link: &Value) -> Option<String> {
    Some(link_marker(
        link["person_id_1"].as_str()?,
        link["person_id_2"].as_str()?,
        link["link_type"].as_str()?,
    ))
}

fn error_text(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text.chars().take(300).collect()
}

/// Counts, for every account, how often each marker is stored: persons (by `notes`) and
/// links (by their pair and type) through `GET /api/tree`, accounts through
/// `GET /api/auth/me` (or a login when the registration was never confirmed). Retries each
/// read until `deadline`; an account still unreadable then is listed as such.
pub async fn verify(
    url: &str,
    run_id: &str,
    accounts: &[Account],
    writes: &[WriteRecord],
    deadline: Instant,
) -> Observed {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let prefix = format!("chaos-{run_id}-");
    let mut counts: HashMap<(WriteKind, String), usize> = HashMap::new();
    let mut unreadable = Vec::new();
    let get = |path: String, token: String| {
        let http = http.clone();
        let url = format!("{url}{path}");
        async move {
            loop {
                let r = http.get(&url).bearer_auth(&token).send().await;
                if let Ok(r) = r {
                    let status = r.status().as_u16();
                    if status != 503 {
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        return Some((status, body));
                    }
                }
                if Instant::now() > deadline {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let with_token: HashSet<&str> = accounts
        .iter()
        .filter(|a| a.token.is_some())
        .map(|a| a.email.as_str())
        .collect();
    for a in accounts {
        let Some(token) = a.token.clone() else {
            continue;
        };
        match get("/api/auth/me".into(), token.clone()).await {
            Some((200, b)) if b["email"].as_str() == Some(a.email.as_str()) => {
                *counts
                    .entry((WriteKind::User, a.email.clone()))
                    .or_default() += 1;
            }
            Some((401, _)) => {}
            _ => {
                unreadable.push(a.email.clone());
                continue;
            }
        }
        match get("/api/tree".into(), token).await {
            Some((200, tree)) => {
                for p in tree["persons"].as_array().into_iter().flatten() {
                    if let Some(m) = p["notes"].as_str().filter(|m| m.starts_with(&prefix)) {
                        *counts
                            .entry((WriteKind::Person, m.to_string()))
                            .or_default() += 1;
                    }
                }
                for l in tree["links"].as_array().into_iter().flatten() {
                    if let Some(m) = link_marker_of(l) {
                        *counts.entry((WriteKind::Link, m)).or_default() += 1;
                    }
                }
            }
            _ => unreadable.push(a.email.clone()),
        }
    }
    // Registrations never confirmed: is the account there? (A login answers 200 or 401.)
    for w in writes
        .iter()
        .filter(|w| w.kind == WriteKind::User && !with_token.contains(w.marker.as_str()))
    {
        let url = format!("{url}/api/auth/login");
        let body = json!({"email": w.marker, "password": PASSWORD});
        let mut status = None;
        while status.is_none() {
            match http.post(&url).json(&body).send().await {
                Ok(r) if r.status().as_u16() != 503 => status = Some(r.status().as_u16()),
                _ if Instant::now() > deadline => break,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        match status {
            Some(200) => {
                *counts
                    .entry((WriteKind::User, w.marker.clone()))
                    .or_default() += 1
            }
            Some(401) => {}
            _ => unreadable.push(w.marker.clone()),
        }
    }
    let mut counts: Vec<(WriteKind, String, usize)> =
        counts.into_iter().map(|((k, m), c)| (k, m, c)).collect();
    counts.sort();
    Observed {
        counts,
        unreadable_owners: unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_covers_every_action() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen = HashMap::new();
        for _ in 0..20_000 {
            *seen.entry(format!("{:?}", pick(&mut rng))).or_insert(0u32) += 1;
        }
        assert_eq!(seen.len(), MIX.len(), "{seen:?}");
        assert!(!seen.contains_key("Login") && !seen.contains_key("Register"));
        // Writes about 45 %, reads the rest.
        let share = |a: &str| f64::from(seen[a]) / 20_000.0;
        assert!((share("CreatePerson") - 0.30).abs() < 0.02);
        assert!((share("CreateLink") - 0.15).abs() < 0.02);
    }

    #[test]
    fn link_markers_name_the_pair_and_type() {
        let l = json!({"id": "x", "person_id_1": "a", "person_id_2": "b", "link_type": "spouse"});
        assert_eq!(link_marker_of(&l).unwrap(), link_marker("a", "b", "spouse"));
        assert_eq!(link_marker_of(&json!({"id": "x"})), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_spaces_requests_and_drops_missed_slots() {
        let pacer = Pacer::new(10.0);
        let start = Instant::now();
        for _ in 0..5 {
            pacer.tick().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(400));
        // Idle for a second: the next ticks do not burst to catch up.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let resumed = Instant::now();
        pacer.tick().await;
        pacer.tick().await;
        assert_eq!(resumed.elapsed(), Duration::from_millis(100));
    }
}
