//! Mail against a real mail server: every test here starts its own Mailpit (built by
//! `scripts/build-tools.sh mailpit`), points `SMTP_URL` at it, reads the mails through
//! Mailpit's HTTP API and follows their links like a person would (`PUBLIC_BASE_URL` is
//! the service's own address). Covers issue 15: an invitation is claimed only by a
//! verified address, the password reset, a mail server that is down or slow, and secrets.

use std::time::{Duration, Instant};

use aila_testkit::mailpit::{self, Mail, Mailpit};
use serde_json::{Value, json};

use crate::common::{Database, TestApp, free_port, spawn_app_with};
use crate::create_person;
use crate::support::invite;

/// How long a test waits for a mail.
const MAIL_DEADLINE: Duration = Duration::from_secs(30);

struct Stack {
    _db: Database,
    mailpit: Mailpit,
    app: TestApp,
}

fn start_mailpit() -> Mailpit {
    Mailpit::start(&mailpit::binary(), None).expect("mailpit starts")
}

/// A database, a Mailpit and a service whose links point at itself.
async fn start_with(mailpit: Mailpit, smtp_url: &str, extra: &[(&str, &str)]) -> Stack {
    let db = Database::start().await;
    let port = free_port().to_string();
    let base = format!("http://127.0.0.1:{port}");
    let mut overrides = vec![
        ("PORT", port.as_str()),
        ("PUBLIC_BASE_URL", base.as_str()),
        ("SMTP_URL", smtp_url),
        ("MAIL_RETRY_INITIAL_MS", "100"),
    ];
    overrides.extend_from_slice(extra);
    let app = spawn_app_with(&db.url(), &overrides).await;
    app.wait_ready().await;
    Stack {
        _db: db,
        mailpit,
        app,
    }
}

async fn start(extra: &[(&str, &str)]) -> Stack {
    let mp = start_mailpit();
    let url = mp.smtp_url();
    start_with(mp, &url, extra).await
}

/// Waits until `to` has received `n` mails; returns them, oldest first.
async fn wait_mails(mp: &Mailpit, to: &str, n: usize) -> Vec<Mail> {
    let until = Instant::now() + MAIL_DEADLINE;
    loop {
        let list = mp.messages_to(to).expect("mailpit lists its mails");
        if list.len() >= n {
            let mut mails: Vec<Mail> = list
                .iter()
                .map(|s| mp.message(&s.id).expect("mailpit shows a mail"))
                .collect();
            mails.reverse();
            return mails;
        }
        assert!(
            Instant::now() < until,
            "timed out after {MAIL_DEADLINE:?} waiting for {n} mail(s) to {to} (have {})",
            list.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The link of `mail` to `path` on the service (`PUBLIC_BASE_URL` + path).
fn link(app: &TestApp, mail: &Mail, path: &str) -> String {
    let prefix = format!("{}{path}", app.address);
    let link = mail
        .link(&prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in:\n{}", mail.text));
    assert!(
        mail.html.contains(&link.replace('&', "&amp;")),
        "the HTML part carries the same link"
    );
    link
}

/// Opens `url` as a browser would: status and page text.
async fn open(app: &TestApp, url: &str) -> (u16, String) {
    let r = app.http.get(url).send().await.expect("the service answers");
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The `token=` of a link.
fn token_of(link: &str) -> String {
    link.split_once("token=")
        .expect("a token in the link")
        .1
        .to_string()
}

async fn shared_with_me(app: &TestApp, token: &str) -> Vec<Value> {
    let r = app
        .get("/api/collaborators/shared-with-me", Some(token))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body.as_array().unwrap().clone()
}

async fn login(app: &TestApp, email: &str, password: &str) -> crate::common::Reply {
    app.post(
        "/api/auth/login",
        json!({ "email": email, "password": password }),
        None,
    )
    .await
}

#[tokio::test]
async fn registering_an_invited_address_opens_nothing_until_its_owner_follows_the_mailed_link() {
    let s = start(&[]).await;
    let app = &s.app;
    let (alice, alice_user) = app.register("alice@example.org").await;
    let alice_id = alice_user["id"].as_str().unwrap().to_string();
    create_person(app, &alice, "Grand-mère").await;
    let answer = invite(app, &alice, "bob@example.org", "editor").await;
    assert_eq!(answer["status"], "pending");
    // Bob has no account: he is mailed a link to the app to register.
    let mails = wait_mails(&s.mailpit, "bob@example.org", 1).await;
    assert!(
        mails[0].subject.contains("vous invite"),
        "{}",
        mails[0].subject
    );
    assert!(
        mails[0].text.contains(&format!("{}/", app.address)),
        "{}",
        mails[0].text
    );

    // The attack: anyone registers bob@example.org (nothing proves they own it).
    let (intruder, user) = app.register("bob@example.org").await;
    assert_eq!(user["email_verified"], false);
    assert_eq!(shared_with_me(app, &intruder).await, Vec::<Value>::new());
    let tree = format!("/api/tree/shared/{alice_id}");
    let r = app.get(&tree, Some(&intruder)).await;
    assert_eq!(r.status, 403, "the shared tree is refused: {}", r.body);
    let r = app
        .post(
            &format!("/api/contributions?owner_id={alice_id}"),
            json!({ "action": "add", "entity_type": "person", "entity_data": {"first_name": "X", "last_name": "Y"} }),
            Some(&intruder),
        )
        .await;
    assert_eq!(r.status, 403, "no contribution either: {}", r.body);
    // Logging in again claims nothing either.
    let r = login(app, "bob@example.org", "Password123!").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let relogged = r.str("access_token").to_string();
    assert_eq!(shared_with_me(app, &relogged).await, Vec::<Value>::new());
    let r = app.get("/api/collaborators", Some(&alice)).await;
    assert_eq!(r.body[0]["status"], "pending", "{}", r.body);

    // The owner of the address reads the verification mail and follows its link.
    let mails = wait_mails(&s.mailpit, "bob@example.org", 2).await;
    let verify = mails
        .iter()
        .find(|m| m.subject.contains("Confirmez"))
        .expect("the verification mail");
    let url = link(app, verify, "/verify-email?token=");
    let (status, page) = open(app, &url).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Adresse e-mail confirmée"), "{page}");
    assert!(page.contains("Partagés avec moi"), "{page}");
    let shared = shared_with_me(app, &relogged).await;
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert_eq!(shared[0]["owner_id"], alice_id.as_str());
    let r = app.get(&tree, Some(&relogged)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["persons"][0]["first_name"], "Grand-mère");
    let me = app.get("/api/auth/me", Some(&relogged)).await;
    assert_eq!(me.body["email_verified"], true, "{}", me.body);
    // Opened again (its owner, after a mail scanner fetched it first): the address is
    // confirmed already, nothing more happens.
    let (status, page) = open(app, &url).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("déjà confirmée"), "{page}");
    assert!(!page.contains("Partagés avec moi"), "{page}");
    assert_eq!(shared_with_me(app, &relogged).await.len(), 1);
}

#[tokio::test]
async fn invitations_mail_unverified_accounts_a_link_that_accepts_and_verified_ones_a_notice() {
    let s = start(&[]).await;
    let app = &s.app;
    let (alice, alice_user) = app.register("alice@example.org").await;
    let alice_id = alice_user["id"].as_str().unwrap().to_string();
    // An account made before verification existed: registered, never verified.
    let (bob, _) = app.register("bob@example.org").await;
    wait_mails(&s.mailpit, "bob@example.org", 1).await;
    let answer = invite(app, &alice, "bob@example.org", "viewer").await;
    assert_eq!(answer["status"], "pending");
    assert_eq!(answer["user_id"], Value::Null);
    assert_eq!(shared_with_me(app, &bob).await, Vec::<Value>::new());
    let mails = wait_mails(&s.mailpit, "bob@example.org", 2).await;
    let invitation = &mails[1];
    assert!(
        invitation.subject.contains("partage"),
        "{}",
        invitation.subject
    );
    let url = link(app, invitation, "/verify-email?token=");
    assert_eq!(open(app, &url).await.0, 200);
    let shared = shared_with_me(app, &bob).await;
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert_eq!(shared[0]["owner_id"], alice_id.as_str());

    // A verified account is given the invitation at once, and told by mail.
    let (carol_owner, _) = app.register("carol@example.org").await;
    let answer = invite(app, &carol_owner, "bob@example.org", "editor").await;
    assert_eq!(answer["status"], "pending", "the answer never tells");
    assert_eq!(shared_with_me(app, &bob).await.len(), 2);
    let mails = wait_mails(&s.mailpit, "bob@example.org", 3).await;
    assert!(
        mails[2].text.contains("a partagé son arbre"),
        "{}",
        mails[2].text
    );
}

#[tokio::test]
async fn a_password_reset_works_once_and_revokes_every_earlier_token() {
    let s = start(&[]).await;
    let app = &s.app;
    let (registered, _) = app.register("dora@example.org").await;
    let r = login(app, "dora@example.org", "Password123!").await;
    let logged_in = r.str("access_token").to_string();

    // The same answer whether the email has an account or not.
    let unknown = app
        .post(
            "/api/auth/password-reset/request",
            json!({"email": "nobody@example.org"}),
            None,
        )
        .await;
    let known = app
        .post(
            "/api/auth/password-reset/request",
            json!({"email": "Dora@Example.org"}),
            None,
        )
        .await;
    assert_eq!(unknown.status, 200, "{}", unknown.body);
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));

    let mails = wait_mails(&s.mailpit, "dora@example.org", 2).await;
    let reset = mails
        .iter()
        .find(|m| m.subject.contains("mot de passe"))
        .expect("the reset mail");
    assert!(reset.text.contains("30 minutes"), "{}", reset.text);
    let url = link(app, reset, "/reset-password?token=");
    let (status, form) = open(app, &url).await;
    assert_eq!(status, 200, "{form}");
    assert!(
        form.contains("<form") && form.contains("/api/auth/password-reset/confirm"),
        "{form}"
    );
    let token = token_of(&url);

    let r = app
        .post(
            "/api/auth/password-reset/confirm",
            json!({"token": token, "password": "12"}),
            None,
        )
        .await;
    assert_eq!(r.status, 422, "too short: {}", r.body);
    let r = app
        .post(
            "/api/auth/password-reset/confirm",
            json!({"token": token, "password": "NewPassword456!"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Every token issued before is revoked; the new password works, the old one not.
    for old in [&registered, &logged_in] {
        let r = app.get("/api/auth/me", Some(old)).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    assert_eq!(
        login(app, "dora@example.org", "Password123!").await.status,
        401
    );
    let r = login(app, "dora@example.org", "NewPassword456!").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        app.get("/api/auth/me", Some(r.str("access_token")))
            .await
            .status,
        200
    );

    // Once only.
    let r = app
        .post(
            "/api/auth/password-reset/confirm",
            json!({"token": token, "password": "Another789!"}),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.detail().contains("invalid, expired or already used"),
        "{}",
        r.body
    );
    assert_eq!(open(app, &url).await.0, 400);
    assert_eq!(
        login(app, "dora@example.org", "Another789!").await.status,
        401
    );
    // No mail ever went to the unknown address.
    assert!(
        s.mailpit
            .messages_to("nobody@example.org")
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_reset_link_expires() {
    // Valid one millisecond: expired by the time the mail is read.
    let s = start(&[("PASSWORD_RESET_TTL_MS", "1")]).await;
    let app = &s.app;
    app.register("eve@example.org").await;
    let r = app
        .post(
            "/api/auth/password-reset/request",
            json!({"email": "eve@example.org"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mails = wait_mails(&s.mailpit, "eve@example.org", 2).await;
    let reset = mails
        .iter()
        .find(|m| m.subject.contains("mot de passe"))
        .unwrap();
    let url = link(app, reset, "/reset-password?token=");
    let (status, page) = open(app, &url).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("expiré"), "{page}");
    let r = app
        .post(
            "/api/auth/password-reset/confirm",
            json!({"token": token_of(&url), "password": "NewPassword456!"}),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        login(app, "eve@example.org", "Password123!").await.status,
        200
    );
}

/// The median time of `n` verification resends of `token`.
async fn resend_times(app: &TestApp, token: &str, n: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let r = app
            .post("/api/auth/verify-email/resend", json!({}), Some(token))
            .await;
        took.push(started.elapsed());
        assert_eq!(r.status, 200, "{}", r.body);
    }
    took.sort();
    took
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics(app: &TestApp) -> String {
    app.http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_mail_server_that_is_down_or_silent_costs_a_request_nothing() {
    // Silent: accepts connections and never says a word (each attempt waits its 5 s).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("smtp://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = silent.accept().await {
            keep.lock().unwrap().push(conn);
        }
    });
    let s = start_with(
        start_mailpit(),
        &silent_url,
        &[("MAIL_ATTEMPT_TIMEOUT_MS", "5000")],
    )
    .await;
    let app = &s.app;
    let (token, _) = app.register("slow@example.org").await;
    let took = resend_times(app, &token, 10).await;
    let m = metrics(app).await;
    // Every request answered while its mail still waits on the silent server.
    assert!(metric(&m, "aila_mail_queued ") >= 10.0, "{m}");
    assert_eq!(metric(&m, "aila_mail_sent_total"), 0.0);
    let median = took[took.len() / 2];
    assert!(
        took[took.len() - 1] < Duration::from_millis(1000),
        "{took:?}"
    );
    eprintln!(
        "silent mail server: resend median {median:?}, max {:?}",
        took[took.len() - 1]
    );

    // Down: nothing listens on the SMTP port; attempts fail and are retried, the requests
    // answer at once, and the mail goes out once the server is back.
    let mut s = start(&[]).await;
    let app = &s.app;
    let (token, _) = app.register("down@example.org").await;
    // The same route with the mail server up, for comparison (printed, not asserted: the
    // machine is shared).
    let up = resend_times(app, &token, 10).await;
    wait_mails(&s.mailpit, "down@example.org", 11).await;
    s.mailpit.clear().unwrap();
    s.mailpit.stop();
    let app = &s.app;
    let took = resend_times(app, &token, 10).await;
    eprintln!(
        "mail server up: resend median {:?}, max {:?}",
        up[up.len() / 2],
        up[up.len() - 1]
    );
    assert!(
        took[took.len() - 1] < Duration::from_millis(1000),
        "{took:?}"
    );
    eprintln!(
        "mail server down: resend median {:?}, max {:?}",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    let deadline = Instant::now() + MAIL_DEADLINE;
    while metric(&metrics(app).await, "aila_mail_retries_total") < 1.0 {
        assert!(Instant::now() < deadline, "no retry counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.mailpit.restart().unwrap();
    let mails = wait_mails(&s.mailpit, "down@example.org", 10).await;
    assert!(mails.iter().all(|m| m.subject.contains("Confirmez")));
    // Mailpit may show a mail before the sender has read its final answer: wait for the
    // counters to catch up.
    let deadline = Instant::now() + MAIL_DEADLINE;
    loop {
        let m = metrics(app).await;
        if metric(&m, "aila_mail_sent_total") == 21.0 && metric(&m, "aila_mail_queued ") == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sent and queued never settled:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// At shutdown, mail waiting for its next attempt is sent before the process stops (within
/// the drain time), not dropped: a registration just before a rolling update still gets its
/// verification mail.
#[tokio::test]
async fn mail_waiting_for_a_retry_is_flushed_at_shutdown() {
    // A long backoff: without the flush, the mail's next attempt would be a minute away.
    let mut s = start(&[
        ("MAIL_RETRY_INITIAL_MS", "60000"),
        ("HTTP_SHUTDOWN_TIMEOUT_MS", "10000"),
    ])
    .await;
    s.mailpit.stop();
    s.app.register("flush@example.org").await;
    let deadline = Instant::now() + MAIL_DEADLINE;
    while metric(&metrics(&s.app).await, "aila_mail_retries_total") < 1.0 {
        assert!(Instant::now() < deadline, "the first attempt never failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.mailpit.restart().unwrap();
    assert!(
        s.mailpit
            .messages_to("flush@example.org")
            .unwrap()
            .is_empty(),
        "sent before the shutdown: the test proves nothing"
    );
    let stopping = Instant::now();
    s.app.stop().await;
    eprintln!(
        "shutdown with one mail to flush took {:?}",
        stopping.elapsed()
    );
    let mails = wait_mails(&s.mailpit, "flush@example.org", 1).await;
    assert!(
        mails[0].subject.contains("Confirmez"),
        "{}",
        mails[0].subject
    );
}

#[tokio::test]
async fn without_smtp_url_the_mail_routes_answer_503_and_invitations_stay_pending() {
    let db = Database::start().await;
    let app = spawn_app_with(&db.url(), &[]).await;
    app.wait_ready().await;
    let h = app.get("/health", None).await;
    assert_eq!(h.body["mail"], "not_configured", "{}", h.body);
    let warnings = h.body["warnings"].to_string();
    assert!(warnings.contains("SMTP_URL is not set"), "{warnings}");
    let (alice, _) = app.register("alice@example.org").await;
    invite(&app, &alice, "bob@example.org", "viewer").await;
    let (bob, _) = app.register("bob@example.org").await;
    assert_eq!(shared_with_me(&app, &bob).await, Vec::<Value>::new());
    for (method, path, body, token) in [
        ("GET", "/verify-email?token=abc", None, None),
        ("GET", "/reset-password?token=abc", None, None),
        (
            "POST",
            "/api/auth/verify-email/resend",
            Some(json!({})),
            Some(bob.as_str()),
        ),
        (
            "POST",
            "/api/auth/password-reset/request",
            Some(json!({"email": "bob@example.org"})),
            None,
        ),
        (
            "POST",
            "/api/auth/password-reset/confirm",
            Some(json!({"token": "abc", "password": "Password456!"})),
            None,
        ),
    ] {
        let r = app.request(method, path, body, token).await;
        assert_eq!(r.status, 503, "{method} {path}: {}", r.body);
        assert!(
            r.detail().contains("Mail is not configured"),
            "{method} {path}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn resends_and_reset_requests_are_rate_limited() {
    let s = start(&[
        ("RATE_LIMIT_VERIFY_RESEND_PER_ACCOUNT", "2/1h"),
        ("RATE_LIMIT_PASSWORD_RESET_PER_ACCOUNT", "2/1h"),
    ])
    .await;
    let app = &s.app;
    let (token, _) = app.register("gina@example.org").await;
    for _ in 0..2 {
        let r = app
            .post("/api/auth/verify-email/resend", json!({}), Some(&token))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = app
        .post("/api/auth/verify-email/resend", json!({}), Some(&token))
        .await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    // Per email, whether it has an account or not (429 tells nothing about accounts).
    for email in ["gina@example.org", "nobody@example.org"] {
        for _ in 0..2 {
            let r = app
                .post(
                    "/api/auth/password-reset/request",
                    json!({ "email": email }),
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let r = app
            .post(
                "/api/auth/password-reset/request",
                json!({ "email": email }),
                None,
            )
            .await;
        assert_eq!(r.status, 429, "{email}: {}", r.body);
    }
}
