//! Gray faults of the database's network: Toxiproxy between the service and the database
//! (local back-end). The service's `MONGO_URL` names the proxy; each fault is a set of
//! toxics added when it starts and removed when it ends.

use std::path::Path;

use aila_testkit::toxiproxy::{Client, Server, Stream, Toxic};

use crate::schedule::{FaultKind, FaultSpec};

/// The proxy's name in Toxiproxy.
const PROXY: &str = "database";

/// Toxiproxy and its one proxy in front of the database.
pub struct NetworkFaults {
    server: Server,
    port: u16,
}

/// The toxics that make `spec` (empty for a kind Toxiproxy does not make).
pub fn toxics(spec: &FaultSpec) -> Vec<Toxic> {
    let both = [Stream::Upstream, Stream::Downstream];
    let amount = spec.amount.or(spec.kind.default_amount()).unwrap_or(0);
    match spec.kind {
        FaultKind::Latency => both
            .map(|s| Toxic::latency(s, std::time::Duration::from_millis(amount)))
            .to_vec(),
        FaultKind::Timeout => both.map(Toxic::blackhole).to_vec(),
        FaultKind::ResetPeer => both.map(Toxic::reset_peer).to_vec(),
        FaultKind::Bandwidth => both.map(|s| Toxic::bandwidth(s, amount)).to_vec(),
        FaultKind::Slicer => vec![Toxic::slicer(
            Stream::Downstream,
            amount,
            std::time::Duration::from_millis(1),
        )],
        FaultKind::Kill | FaultKind::Freeze | FaultKind::Restart | FaultKind::Burst => Vec::new(),
    }
}

impl NetworkFaults {
    /// Starts `toxiproxy-server` (its output to `log`) with a proxy to `upstream`
    /// (`127.0.0.1:PORT`) listening on `listen_port` (0: a free one).
    pub fn start(
        binary: &Path,
        upstream: &str,
        listen_port: u16,
        log: &Path,
    ) -> Result<NetworkFaults, String> {
        let server = Server::start(binary, Some(log), crate::backend::die_with_parent)?;
        let proxy =
            server
                .client()
                .create_proxy(PROXY, &format!("127.0.0.1:{listen_port}"), upstream)?;
        Ok(NetworkFaults {
            port: proxy.port()?,
            server,
        })
    }

    /// `mongodb://127.0.0.1:PORT` of the proxy: what the service connects to.
    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }

    /// What runs, for the record.
    pub fn describe(&self) -> String {
        format!(
            "Toxiproxy (pid {}, API {}) proxy 127.0.0.1:{}",
            self.server.pid(),
            self.server.client().url(),
            self.port
        )
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce(Client) -> Result<T, String> + Send + 'static,
        client: Client,
    ) -> Result<T, String> {
        tokio::task::spawn_blocking(move || f(client))
            .await
            .map_err(|e| format!("the Toxiproxy call panicked: {e}"))?
    }

    /// Adds the fault's toxics.
    pub async fn inject(&self, spec: &FaultSpec) -> Result<Vec<String>, String> {
        let toxics = toxics(spec);
        Self::blocking(
            move |api| {
                toxics
                    .iter()
                    .map(|t| {
                        api.add_toxic(PROXY, t).map(|_| {
                            format!(
                                "toxiproxy: add {} {} {}",
                                t.kind,
                                t.stream.as_str(),
                                t.attributes
                            )
                        })
                    })
                    .collect()
            },
            self.server.client(),
        )
        .await
    }

    /// Removes them.
    pub async fn restore(&self, spec: &FaultSpec) -> Result<Vec<String>, String> {
        let toxics = toxics(spec);
        Self::blocking(
            move |api| {
                toxics
                    .iter()
                    .map(|t| {
                        api.remove_toxic(PROXY, &t.name)
                            .map(|()| format!("toxiproxy: remove {}", t.name))
                    })
                    .collect()
            },
            self.server.client(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_gray_fault_becomes_its_toxics() {
        let f = |text: &str| crate::schedule::parse_schedule(text).unwrap()[0];
        let names = |spec: FaultSpec| -> Vec<String> {
            toxics(&spec).into_iter().map(|t| t.name).collect()
        };
        assert_eq!(
            names(f("latency:150ms@1s")),
            ["latency_upstream", "latency_downstream"]
        );
        assert_eq!(toxics(&f("latency:150ms@1s"))[0].attributes["latency"], 150);
        assert_eq!(
            names(f("timeout@1s")),
            ["timeout_upstream", "timeout_downstream"]
        );
        assert_eq!(
            names(f("reset_peer@1s")),
            ["reset_peer_upstream", "reset_peer_downstream"]
        );
        assert_eq!(toxics(&f("bandwidth:32@1s"))[1].attributes["rate"], 32);
        assert_eq!(names(f("slicer@1s")), ["slicer_downstream"]);
        assert!(toxics(&f("kill@1s")).is_empty() && toxics(&f("burst@1s")).is_empty());
    }
}
