//! The deployment as the driver's monitor sees it, member by member: health comes from the
//! topology, never from one member's heartbeat.
//!
//! The driver monitors every member of a replica set on its own connections (not the
//! request pool) and reports each one's heartbeats and description separately. [`Topology`]
//! keeps one [`Member`] per address from those events and answers the only question the
//! supervisor needs: can some member serve ([`Verdict`])? A secondary away is a change in
//! `/health` (`members`), in `/metrics` (`aila_db_members{state}`) and one log line; only
//! "no member answers", or "no primary for longer than an election", is an outage. A
//! standalone server is a one-member topology: its failed heartbeat is "no member answers".

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mongodb::ServerType;
use mongodb::event::sdam::SdamEvent;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::client::DriverSignal;
use super::state::DbState;
use crate::metrics::{Metrics, StateLabels};
use crate::redact::Redactor;

/// One member as the service reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// `host:port`.
    pub address: String,
    /// `primary`, `secondary`, `standalone`, `mongos`, `load_balancer`, `arbiter`, `other` or
    /// `unknown`.
    pub kind: &'static str,
    /// `up` (answers), `down` (its last check failed) or `unknown` (not checked yet).
    pub state: &'static str,
    /// Heartbeats failed in a row.
    pub failed_heartbeats: u32,
    /// Why it is down, redacted.
    pub last_error: Option<String>,
}

impl Member {
    fn new(address: String) -> Self {
        Self {
            address,
            kind: "unknown",
            state: "unknown",
            failed_heartbeats: 0,
            last_error: None,
        }
    }

    fn is_up(&self) -> bool {
        self.state == "up"
    }

    /// Serves writes: a primary, a standalone server, a router or a load balancer.
    fn is_writable(&self) -> bool {
        self.is_up()
            && matches!(
                self.kind,
                "primary" | "standalone" | "mongos" | "load_balancer"
            )
    }
}

/// Whether the deployment can serve, as far as the monitor knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing known yet (no member described).
    Unknown,
    /// A member serves writes.
    Serving,
    /// Members answer, none serves writes (an election, or members still being checked),
    /// since then.
    NoPrimary(Instant),
    /// No member answers.
    Unreachable,
}

/// A change worth one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A member that answered stopped answering.
    Down(Member),
    /// A member answers again (or for the first time after being down).
    Up(Member),
    /// Another member is primary now.
    NewPrimary(Option<String>),
}

/// The members the driver describes, and since when no member has served writes.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    members: BTreeMap<String, Member>,
    no_primary_since: Option<Instant>,
    primary: Option<String>,
}

fn kind(t: ServerType) -> &'static str {
    match t {
        ServerType::RsPrimary => "primary",
        ServerType::RsSecondary => "secondary",
        ServerType::Standalone => "standalone",
        ServerType::Mongos => "mongos",
        ServerType::RsArbiter => "arbiter",
        ServerType::LoadBalancer => "load_balancer",
        ServerType::Unknown => "unknown",
        _ => "other",
    }
}

impl Topology {
    /// Takes in one driver event; `scrub` describes and redacts an error. Returns the
    /// changes worth a log line.
    pub fn apply(
        &mut self,
        event: &SdamEvent,
        scrub: impl Fn(&mongodb::error::Error) -> String,
    ) -> Vec<Change> {
        match event {
            SdamEvent::TopologyDescriptionChanged(e) => {
                let servers: Vec<(String, ServerType, Option<String>)> = e
                    .new_description
                    .servers()
                    .into_iter()
                    .map(|(a, info)| (a.to_string(), info.server_type(), info.error().map(&scrub)))
                    .collect();
                self.described(servers)
            }
            SdamEvent::ServerHeartbeatFailed(e) => {
                self.heartbeat_failed(&e.server_address.to_string(), scrub(&e.failure))
            }
            SdamEvent::ServerHeartbeatSucceeded(e) => {
                self.heartbeat_succeeded(&e.server_address.to_string())
            }
            _ => Vec::new(),
        }
    }

    /// The driver's new description of the deployment: every member, its type, and the
    /// error that made it `Unknown`.
    pub fn described(&mut self, servers: Vec<(String, ServerType, Option<String>)>) -> Vec<Change> {
        let before = self.states();
        self.members
            .retain(|a, _| servers.iter().any(|(s, _, _)| s == a));
        for (address, server_type, error) in servers {
            let m = self
                .members
                .entry(address.clone())
                .or_insert_with(|| Member::new(address));
            m.kind = kind(server_type);
            if server_type != ServerType::Unknown {
                m.state = "up";
                m.failed_heartbeats = 0;
                m.last_error = None;
            } else if let Some(err) = error {
                m.state = "down";
                m.last_error = Some(err);
            } else if m.failed_heartbeats == 0 {
                m.state = "unknown";
            }
        }
        self.changes_since(before)
    }

    /// A heartbeat of `address` failed: it is down until one succeeds.
    pub fn heartbeat_failed(&mut self, address: &str, error: String) -> Vec<Change> {
        let before = self.states();
        let m = self
            .members
            .entry(address.to_string())
            .or_insert_with(|| Member::new(address.to_string()));
        m.state = "down";
        m.failed_heartbeats = m.failed_heartbeats.saturating_add(1);
        m.last_error = Some(error);
        self.changes_since(before)
    }

    /// A heartbeat of `address` succeeded.
    pub fn heartbeat_succeeded(&mut self, address: &str) -> Vec<Change> {
        let before = self.states();
        if let Some(m) = self.members.get_mut(address) {
            m.failed_heartbeats = 0;
            if m.kind != "unknown" {
                m.state = "up";
                m.last_error = None;
            }
        }
        self.changes_since(before)
    }

    fn states(&self) -> BTreeMap<String, &'static str> {
        self.members
            .iter()
            .map(|(a, m)| (a.clone(), m.state))
            .collect()
    }

    fn changes_since(&mut self, before: BTreeMap<String, &'static str>) -> Vec<Change> {
        let mut changes = Vec::new();
        for m in self.members.values() {
            match (before.get(&m.address).copied(), m.state) {
                (Some("up"), "down") => changes.push(Change::Down(m.clone())),
                (Some("down"), "up") => changes.push(Change::Up(m.clone())),
                _ => {}
            }
        }
        let primary = self
            .members
            .values()
            .find(|m| m.is_writable())
            .map(|m| m.address.clone());
        if primary.is_some() {
            self.no_primary_since = None;
        } else if self.no_primary_since.is_none() {
            self.no_primary_since = Some(Instant::now());
        }
        if primary != self.primary && self.members.len() > 1 {
            changes.push(Change::NewPrimary(primary.clone()));
        }
        self.primary = primary;
        changes
    }

    /// Can some member serve?
    pub fn verdict(&self) -> Verdict {
        if self.members.is_empty() {
            return Verdict::Unknown;
        }
        if self.members.values().any(Member::is_writable) {
            return Verdict::Serving;
        }
        if self.members.values().all(|m| m.state == "down") {
            return Verdict::Unreachable;
        }
        Verdict::NoPrimary(self.no_primary_since.unwrap_or_else(Instant::now))
    }

    /// The members, by address.
    pub fn members(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    /// How many members are in each state, for `aila_db_members{state}`: `primary`,
    /// `secondary`, `other` (up, any other kind), `down`, `unknown`.
    pub fn counts(&self) -> [(&'static str, i64); 5] {
        let mut counts = [
            ("primary", 0),
            ("secondary", 0),
            ("other", 0),
            ("down", 0),
            ("unknown", 0),
        ];
        for m in self.members.values() {
            let slot = match (m.state, m.kind) {
                ("down", _) => 3,
                ("unknown", _) => 4,
                (_, "primary" | "standalone" | "mongos" | "load_balancer") => 0,
                (_, "secondary") => 1,
                _ => 2,
            };
            counts[slot].1 += 1;
        }
        counts
    }

    /// One sentence naming the members that are down and why, for the supervisor's log.
    pub fn describe_down(&self) -> String {
        let down: Vec<String> = self
            .members
            .values()
            .filter(|m| m.state == "down")
            .map(|m| match &m.last_error {
                Some(e) => format!("{} ({e})", m.address),
                None => m.address.clone(),
            })
            .collect();
        if down.is_empty() {
            "no member serves writes".into()
        } else {
            format!("members down: {}", down.join(", "))
        }
    }
}

/// The driver's SDAM event handler: keeps the [`Topology`], publishes its members into the
/// [`DbState`] and `aila_db_members`, logs each member going down or coming back once, and
/// wakes the supervisor. Runs on the driver's event task: a lock and a few copies, no waits.
#[derive(Clone)]
pub struct Monitor {
    topology: Arc<Mutex<Topology>>,
    state: watch::Sender<DbState>,
    metrics: Arc<Metrics>,
    redactor: Redactor,
    wake: mpsc::Sender<DriverSignal>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

impl Monitor {
    /// A monitor publishing into `state` and `metrics`, waking the supervisor on `wake`.
    pub fn new(
        state: watch::Sender<DbState>,
        metrics: Arc<Metrics>,
        redactor: Redactor,
        wake: mpsc::Sender<DriverSignal>,
    ) -> Self {
        Self {
            topology: Arc::new(Mutex::new(Topology::default())),
            state,
            metrics,
            redactor,
            wake,
        }
    }

    fn topology(&self) -> std::sync::MutexGuard<'_, Topology> {
        self.topology.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in one driver event.
    pub fn handle(&self, event: &SdamEvent) {
        let relevant = matches!(
            event,
            SdamEvent::TopologyDescriptionChanged(_)
                | SdamEvent::ServerHeartbeatFailed(_)
                | SdamEvent::ServerHeartbeatSucceeded(_)
        );
        if !relevant {
            return;
        }
        let scrub = |e: &mongodb::error::Error| self.redactor.scrub(&super::classify::describe(e));
        let (changes, members, counts) = {
            let mut topology = self.topology();
            let changes = topology.apply(event, scrub);
            (changes, topology.members(), topology.counts())
        };
        for change in &changes {
            match change {
                Change::Down(m) => tracing::warn!(
                    member = %m.address,
                    "MongoDB member {} is down: {}",
                    m.address,
                    m.last_error.as_deref().unwrap_or("no answer")
                ),
                Change::Up(m) => {
                    tracing::info!(member = %m.address, "MongoDB member {} is back ({})", m.address, m.kind)
                }
                Change::NewPrimary(Some(p)) => {
                    tracing::info!(primary = %p, "MongoDB primary is {p}")
                }
                Change::NewPrimary(None) => tracing::warn!("MongoDB replica set has no primary"),
            }
        }
        self.state.send_if_modified(|s| {
            let changed = s.members != members;
            if changed {
                s.members = members;
            }
            changed
        });
        for (state, n) in counts {
            self.metrics
                .db_members
                .get_or_create(&StateLabels { state })
                .set(n);
        }
        // A full queue only drops a wake-up: the supervisor reads the verdict, not the signal.
        let _ = self.wake.try_send(DriverSignal::TopologyChanged);
    }

    /// Can some member serve, as of the last event?
    pub fn verdict(&self) -> Verdict {
        self.topology().verdict()
    }

    /// The members that are down and why, in one sentence.
    pub fn describe_down(&self) -> String {
        self.topology().describe_down()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "127.0.0.1:1";
    const B: &str = "127.0.0.1:2";
    const C: &str = "127.0.0.1:3";

    fn set(primary: Option<&str>) -> Topology {
        let mut t = Topology::default();
        t.described(
            [A, B, C]
                .iter()
                .map(|a| {
                    let kind = if Some(*a) == primary {
                        ServerType::RsPrimary
                    } else {
                        ServerType::RsSecondary
                    };
                    (a.to_string(), kind, None)
                })
                .collect(),
        );
        t
    }

    #[test]
    fn a_secondary_failing_heartbeats_is_a_member_down_not_an_outage() {
        let mut t = set(Some(A));
        assert_eq!(t.verdict(), Verdict::Serving);
        let changes = t.heartbeat_failed(C, "connection refused".into());
        assert!(matches!(&changes[..], [Change::Down(m)] if m.address == C));
        // The second failure is not a new event worth a line.
        assert!(
            t.heartbeat_failed(C, "connection refused".into())
                .is_empty()
        );
        assert_eq!(t.verdict(), Verdict::Serving);
        let c = t.members().into_iter().find(|m| m.address == C).unwrap();
        assert_eq!((c.state, c.failed_heartbeats), ("down", 2));
        assert_eq!(c.last_error.as_deref(), Some("connection refused"));
        assert_eq!(
            t.counts(),
            [
                ("primary", 1),
                ("secondary", 1),
                ("other", 0),
                ("down", 1),
                ("unknown", 0)
            ]
        );
        // The driver marks it unknown with the error; then it answers again.
        t.described(vec![
            (A.into(), ServerType::RsPrimary, None),
            (B.into(), ServerType::RsSecondary, None),
            (
                C.into(),
                ServerType::Unknown,
                Some("connection refused".into()),
            ),
        ]);
        assert_eq!(t.verdict(), Verdict::Serving);
        let changes = t.described(vec![
            (A.into(), ServerType::RsPrimary, None),
            (B.into(), ServerType::RsSecondary, None),
            (C.into(), ServerType::RsSecondary, None),
        ]);
        assert!(matches!(&changes[..], [Change::Up(m)] if m.address == C));
    }

    #[test]
    fn a_primary_gone_with_members_answering_is_no_primary_then_a_new_primary() {
        let mut t = set(Some(A));
        t.described(vec![
            (A.into(), ServerType::Unknown, Some("not primary".into())),
            (B.into(), ServerType::RsSecondary, None),
            (C.into(), ServerType::RsSecondary, None),
        ]);
        assert!(matches!(t.verdict(), Verdict::NoPrimary(_)));
        let changes = t.described(vec![
            (A.into(), ServerType::RsSecondary, None),
            (B.into(), ServerType::RsPrimary, None),
            (C.into(), ServerType::RsSecondary, None),
        ]);
        assert!(changes.contains(&Change::NewPrimary(Some(B.into()))));
        assert_eq!(t.verdict(), Verdict::Serving);
    }

    #[test]
    fn no_member_answering_is_unreachable_and_a_standalone_is_one_member() {
        let mut t = set(Some(A));
        for m in [A, B, C] {
            t.heartbeat_failed(m, "refused".into());
        }
        assert_eq!(t.verdict(), Verdict::Unreachable);
        assert!(t.describe_down().contains("127.0.0.1:2 (refused)"));

        let mut single = Topology::default();
        assert_eq!(single.verdict(), Verdict::Unknown);
        single.described(vec![(A.into(), ServerType::Standalone, None)]);
        assert_eq!(single.verdict(), Verdict::Serving);
        single.heartbeat_failed(A, "refused".into());
        assert_eq!(single.verdict(), Verdict::Unreachable);
        single.heartbeat_succeeded(A);
        assert_eq!(single.verdict(), Verdict::Serving);
    }

    #[test]
    fn seeds_not_checked_yet_are_unknown_not_down() {
        let mut t = Topology::default();
        t.described(
            [A, B, C]
                .iter()
                .map(|a| (a.to_string(), ServerType::Unknown, None))
                .collect(),
        );
        assert!(matches!(t.verdict(), Verdict::NoPrimary(_)));
        assert_eq!(t.counts()[4], ("unknown", 3));
    }
}
