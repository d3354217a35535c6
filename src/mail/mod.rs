//! Outgoing mail: a bounded queue in front of one background sender.
//!
//! A handler builds an [`Outgoing`] mail (French text and HTML, [`templates`]) and hands it
//! to [`Mailer::send`], which never waits: the mail goes into a bounded queue
//! (`MAIL_QUEUE_LENGTH`), or, when the queue is full, is dropped at once (logged, counted
//! `aila_mail_failed_total{reason="queue_full"}`) and the request goes on. The sender
//! delivers up to [`CONCURRENCY`] mails at a time over SMTP (lettre, tokio, rustls), each
//! attempt bounded by `MAIL_ATTEMPT_TIMEOUT_MS`; a failed attempt is retried with
//! exponential backoff (backon, jittered, from `MAIL_RETRY_INITIAL_MS` up to 60 s) until it
//! succeeds, the server refuses the mail for good (a permanent SMTP error), or
//! `MAIL_DEADLINE_MS` has passed since it was queued. So a mail server that is down or slow
//! costs a request nothing: the mail waits in memory and is retried.
//!
//! Each mail is one `mail.send` span (kind, attempts, outcome); the metrics are
//! `aila_mail_sent_total`, `aila_mail_failed_total`, `aila_mail_retries_total` (by kind)
//! and `aila_mail_queued`. No span, log line or metric holds the recipient's address, a
//! link's token or the `SMTP_URL` credentials (the server is logged as `scheme://host:port`).
//!
//! The queue lives in the process. At shutdown, once the HTTP server has drained (no request
//! can queue more), the sender flushes: what is queued or being retried is sent at once
//! (retries without backoff) until the drain time (`HTTP_SHUTDOWN_TIMEOUT_MS`, counted from
//! the shutdown's start) is over. Mail still unsent then is lost (counted
//! `reason="shutdown"`); links in mails expire anyway, and each can be asked for again
//! (verification resend, a new reset request).

pub mod templates;

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::MailSettings;
use crate::metrics::{MailFailedLabels, MailLabels, Metrics};

/// Mails delivered at the same time, at most.
pub const CONCURRENCY: usize = 4;

/// Longest delay between two attempts at one mail.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// Delay between two attempts at one mail while flushing at shutdown.
const FLUSH_RETRY_DELAY: Duration = Duration::from_millis(200);

/// `None` while the service serves; at shutdown, the instant by which the sender's flush
/// must end (`Application::shutdown` sends it once the HTTP server has drained).
pub type FlushDeadline = watch::Receiver<Option<Instant>>;

/// What a mail is for (its metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// The link that verifies a new account's address.
    VerifyEmail,
    /// An invitation to an address with no account: a link to the app to register.
    InviteRegister,
    /// An invitation to an account not yet verified: a verification link that accepts it.
    InviteVerify,
    /// An invitation to a verified account: a notice.
    InviteNotice,
    /// A password-reset link.
    PasswordReset,
}

impl MailKind {
    /// Every kind (metrics start at 0 for each).
    pub const ALL: [MailKind; 5] = [
        MailKind::VerifyEmail,
        MailKind::InviteRegister,
        MailKind::InviteVerify,
        MailKind::InviteNotice,
        MailKind::PasswordReset,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::VerifyEmail => "verify_email",
            MailKind::InviteRegister => "invite_register",
            MailKind::InviteVerify => "invite_verify",
            MailKind::InviteNotice => "invite_notice",
            MailKind::PasswordReset => "password_reset",
        }
    }
}

/// One mail to send.
#[derive(Clone)]
pub struct Outgoing {
    /// What it is for.
    pub kind: MailKind,
    /// The recipient's address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

impl std::fmt::Debug for Outgoing {
    // Never the address or the bodies (they hold links with tokens).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why a mail was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// `SMTP_URL` is unset.
    #[error("mail is not configured on this server (SMTP_URL is unset)")]
    NotConfigured,
    /// `MAIL_QUEUE_LENGTH` mails are waiting already.
    #[error("the mail queue is full")]
    QueueFull,
}

/// A queued mail and its place in the metrics: when it is dropped without an outcome
/// (shutdown), it is counted as failed.
struct Job {
    mail: Outgoing,
    queued_at: Instant,
    metrics: Arc<Metrics>,
    done: bool,
}

impl Job {
    fn labels(&self) -> MailLabels {
        MailLabels {
            kind: self.mail.kind.as_str(),
        }
    }

    fn sent(mut self) {
        self.metrics.mail_sent.get_or_create(&self.labels()).inc();
        self.done = true;
    }

    fn failed(mut self, reason: &'static str) {
        self.count_failed(reason);
        self.done = true;
    }

    fn count_failed(&self, reason: &'static str) {
        self.metrics
            .mail_failed
            .get_or_create(&MailFailedLabels {
                kind: self.mail.kind.as_str(),
                reason,
            })
            .inc();
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if !self.done {
            self.count_failed("shutdown");
        }
        self.metrics.mail_queued.dec();
    }
}

/// The handle handlers use: queue a mail, never wait.
#[derive(Clone)]
pub struct Mailer {
    tx: Option<mpsc::Sender<Job>>,
    metrics: Arc<Metrics>,
    public_base_url: String,
    server: Option<String>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// What the sender needs.
struct SenderConfig {
    from: Mailbox,
    attempt_timeout: Duration,
    retry_initial: Duration,
    deadline: Duration,
}

impl Mailer {
    /// A mailer that sends nothing (`SMTP_URL` unset): every [`Mailer::send`] answers
    /// [`MailError::NotConfigured`].
    pub fn disabled(metrics: Arc<Metrics>, public_base_url: &str) -> Mailer {
        Mailer {
            tx: None,
            metrics,
            public_base_url: public_base_url.to_string(),
            server: None,
        }
    }

    /// The mailer of `settings`, and its sender task when mail is configured (it flushes
    /// and stops when `flush` names a deadline; mail unsent by then is counted as failed).
    pub fn start(
        settings: &MailSettings,
        metrics: Arc<Metrics>,
        flush: FlushDeadline,
    ) -> (Mailer, Option<JoinHandle<()>>) {
        for kind in MailKind::ALL {
            let labels = MailLabels {
                kind: kind.as_str(),
            };
            let _ = metrics.mail_sent.get_or_create(&labels);
            let _ = metrics.mail_retries.get_or_create(&labels);
        }
        let Some(url) = &settings.smtp_url else {
            return (Mailer::disabled(metrics, &settings.public_base_url), None);
        };
        let server = url.redacted();
        // The URL was checked at start-up; lettre's own refusal (an unsupported TLS mode)
        // is logged without the URL.
        let transport = match AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose()) {
            Ok(b) => b.timeout(Some(settings.attempt_timeout)).build(),
            Err(e) => {
                tracing::error!(mail.server = %server, "SMTP_URL cannot be used ({e}): mail is off");
                return (Mailer::disabled(metrics, &settings.public_base_url), None);
            }
        };
        let from: Mailbox = settings
            .from
            .parse()
            .expect("MAIL_FROM is checked when the settings load");
        let config = Arc::new(SenderConfig {
            from,
            attempt_timeout: settings.attempt_timeout,
            retry_initial: settings.retry_initial,
            deadline: settings.deadline,
        });
        let (tx, rx) = mpsc::channel(settings.queue_length.max(1));
        tracing::info!(mail.server = %server, "mail: sending through {server}");
        let task = tokio::spawn(run(rx, transport, config, flush));
        (
            Mailer {
                tx: Some(tx),
                metrics,
                public_base_url: settings.public_base_url.clone(),
                server: Some(server),
            },
            Some(task),
        )
    }

    /// True when mail is configured.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// `scheme://host:port` of the mail server, when configured (no credentials).
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// `PUBLIC_BASE_URL` (no trailing `/`).
    pub fn public_base_url(&self) -> &str {
        &self.public_base_url
    }

    /// `PUBLIC_BASE_URL` + `path` (which starts with `/`).
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.public_base_url)
    }

    /// Queues `mail` without waiting. A full queue drops it (logged and counted).
    pub fn send(&self, mail: Outgoing) -> Result<(), MailError> {
        let Some(tx) = &self.tx else {
            return Err(MailError::NotConfigured);
        };
        let kind = mail.kind;
        self.metrics.mail_queued.inc();
        let job = Job {
            mail,
            queued_at: Instant::now(),
            metrics: self.metrics.clone(),
            done: false,
        };
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                tracing::warn!(
                    mail.kind = kind.as_str(),
                    "mail queue full (MAIL_QUEUE_LENGTH): this mail is dropped"
                );
                job.failed("queue_full");
                Err(MailError::QueueFull)
            }
        }
    }
}

/// The sender: takes mails off the queue, up to [`CONCURRENCY`] at a time; at shutdown,
/// flushes what is left until the deadline `flush` names.
async fn run(
    mut rx: mpsc::Receiver<Job>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    config: Arc<SenderConfig>,
    mut flush: FlushDeadline,
) {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut deliveries = JoinSet::new();
    let flush_of_deliveries = flush.clone();
    let spawn = |deliveries: &mut JoinSet<()>, job: Job, permit| {
        let (transport, config) = (transport.clone(), config.clone());
        let flush = flush_of_deliveries.clone();
        deliveries.spawn(async move {
            deliver(job, &transport, &config, flush).await;
            drop(permit);
        });
    };
    let flush_by = loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            by = flush.wait_for(Option::is_some) => break by.ok().and_then(|by| *by),
        };
        let job = tokio::select! {
            job = rx.recv() => job,
            by = flush.wait_for(Option::is_some) => break by.ok().and_then(|by| *by),
        };
        let Some(job) = job else { break None };
        spawn(&mut deliveries, job, permit);
        while deliveries.try_join_next().is_some() {}
    };
    // Shutting down: nothing new is accepted; what is queued and in flight is sent until
    // the deadline (retries without backoff, see `deliver`).
    rx.close();
    let flush_by = flush_by.unwrap_or_else(Instant::now);
    let flushed = tokio::time::timeout_at(flush_by, async {
        while let Some(job) = rx.recv().await {
            let permit = slots.clone().acquire_owned().await;
            spawn(
                &mut deliveries,
                job,
                permit.expect("the semaphore is never closed"),
            );
        }
        while deliveries.join_next().await.is_some() {}
    })
    .await;
    if flushed.is_err() {
        // Mail not delivered by then is dropped (and counted) with the process.
        deliveries.abort_all();
        while deliveries.join_next().await.is_some() {}
        while rx.try_recv().is_ok() {}
    }
}

/// Delivers one mail: attempts bounded by the attempt timeout, retried with backoff until
/// the deadline. One `mail.send` span.
async fn deliver(
    job: Job,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    config: &SenderConfig,
    mut flush: FlushDeadline,
) {
    let span = tracing::info_span!(
        "mail.send",
        otel.kind = "client",
        mail.kind = job.mail.kind.as_str(),
        mail.attempts = tracing::field::Empty,
        mail.outcome = tracing::field::Empty,
        mail.queued_ms = job.queued_at.elapsed().as_millis() as u64,
    );
    async move {
        let message = match build(&job.mail, &config.from) {
            Ok(m) => m,
            Err(e) => {
                tracing::Span::current().record("mail.outcome", "rejected");
                tracing::warn!("mail not sent: it cannot be built ({e})");
                job.failed("rejected");
                return;
            }
        };
        let deadline = job.queued_at + config.deadline;
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(config.retry_initial)
            .with_max_delay(MAX_RETRY_DELAY.max(config.retry_initial))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build();
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            tracing::Span::current().record("mail.attempts", attempts);
            let outcome =
                tokio::time::timeout(config.attempt_timeout, transport.send(message.clone())).await;
            let error = match outcome {
                Ok(Ok(_)) => {
                    tracing::Span::current().record("mail.outcome", "sent");
                    tracing::info!(mail.attempts = attempts, "mail sent");
                    job.sent();
                    return;
                }
                Ok(Err(e)) if e.is_permanent() => {
                    tracing::Span::current().record("mail.outcome", "rejected");
                    tracing::warn!(
                        mail.attempts = attempts,
                        "mail refused by the mail server for good: {e}"
                    );
                    job.failed("rejected");
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!(
                    "no answer within {} ms (MAIL_ATTEMPT_TIMEOUT_MS)",
                    config.attempt_timeout.as_millis()
                ),
            };
            let flushing = flush.borrow().is_some();
            let delay = match backoff.next().unwrap_or(MAX_RETRY_DELAY) {
                d if flushing => d.min(FLUSH_RETRY_DELAY),
                d => d,
            };
            if Instant::now() + delay > deadline {
                tracing::Span::current().record("mail.outcome", "deadline");
                tracing::warn!(
                    mail.attempts = attempts,
                    "mail given up after {attempts} attempts (MAIL_DEADLINE_MS): {error}"
                );
                job.failed("deadline");
                return;
            }
            job.metrics.mail_retries.get_or_create(&job.labels()).inc();
            tracing::warn!(
                mail.attempts = attempts,
                "mail delivery failed, retrying in {} ms: {error}",
                delay.as_millis()
            );
            // A shutdown's flush cuts the wait short: the mail is tried again at once.
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = flush.wait_for(Option::is_some), if !flushing => {}
            }
        }
    }
    .instrument(span)
    .await
}

/// The MIME message: plain text and HTML alternatives, UTF-8.
fn build(mail: &Outgoing, from: &Mailbox) -> Result<Message, String> {
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| format!("the recipient is not an address lettre accepts: {e}"))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| e.to_string())
}
