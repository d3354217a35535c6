//! Building the `mongodb::Client` from the settings, without any I/O against the server.
//!
//! `Client::with_options` never connects; only `mongodb+srv://` URLs do DNS work inside
//! `ClientOptions::parse`, so a missing record fails here and the supervisor retries.
//! URL options written for Motor/pymongo that the Rust driver refuses (`socketTimeoutMS`,
//! `timeoutMS`, ...) are stripped with a warning rather than failing: the per-operation
//! deadline replaces them. The driver's monitoring events go to the topology
//! [`Monitor`], which wakes the supervisor with a [`DriverSignal`].

use mongodb::Client;
use mongodb::event::EventHandler;
use mongodb::event::sdam::SdamEvent;
use mongodb::options::{ClientOptions, ServerAddress};

use super::topology::Monitor;
use crate::config::MongoSettings;
use crate::redact::Redactor;

/// URL options the Rust driver refuses; stripped with a warning.
const REFUSED_URL_OPTIONS: &[&str] = &[
    "sockettimeoutms",
    "timeoutms",
    "waitqueuetimeoutms",
    "waitqueuemultiple",
];

/// A wake-up from the driver's monitor: the supervisor then asks the [`Monitor`] whether
/// some member can serve (one member's heartbeat says nothing about that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverSignal {
    /// A heartbeat or the topology's description changed what is known.
    TopologyChanged,
}

/// A client ready to use, and facts about it.
#[derive(Debug, Clone)]
pub struct BuiltClient {
    /// The client (no connection made yet).
    pub client: Client,
    /// `host:port` of the first seed, for `server.address` on spans.
    pub server_address: String,
    /// The first seed's port.
    pub server_port: Option<u16>,
    /// Warnings about the URL (options stripped).
    pub warnings: Vec<String>,
}

/// Why the client could not be built. The message is redacted.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ClientBuildError(pub String);

/// Removes URL options the Rust driver refuses. Returns the new URL and the names removed.
pub fn strip_refused_options(url: &str) -> (String, Vec<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut removed = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split('=').next().unwrap_or("");
        if REFUSED_URL_OPTIONS.contains(&key.to_ascii_lowercase().as_str()) {
            removed.push(key.to_string());
        } else {
            kept.push(pair);
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, removed)
}

/// Parses the URL (DNS for `+srv`) and builds a client with the configured driver settings.
pub async fn build_client(
    settings: &MongoSettings,
    redactor: &Redactor,
    monitor: Monitor,
) -> Result<BuiltClient, ClientBuildError> {
    let (url, removed) = strip_refused_options(settings.url.expose());
    let mut warnings = Vec::new();
    if !removed.is_empty() {
        warnings.push(format!(
            "MONGO_URL options not supported by the Rust driver were ignored: {} (every operation is bounded by MONGO_OPERATION_TIMEOUT_MS instead)",
            removed.join(", ")
        ));
    }
    let mut options = ClientOptions::parse(&url).await.map_err(|e| {
        ClientBuildError(format!(
            "MONGO_URL {} is not usable: {}",
            settings.url.redacted(),
            redactor.scrub(&super::classify::describe(&e))
        ))
    })?;
    options
        .app_name
        .get_or_insert_with(|| "aila-api".to_string());
    options.server_selection_timeout = Some(settings.server_selection_timeout);
    options.connect_timeout = Some(settings.connect_timeout);
    options.max_pool_size = Some(settings.max_pool_size);
    options.min_pool_size = Some(settings.min_pool_size);
    options.retry_reads = Some(settings.retry_reads);
    options.retry_writes = Some(settings.retry_writes);
    options.heartbeat_freq = Some(settings.heartbeat_freq);
    options.sdam_event_handler = Some(EventHandler::callback(move |event: SdamEvent| {
        monitor.handle(&event)
    }));
    let (server_address, server_port) = match options.hosts.first() {
        Some(ServerAddress::Tcp { host, port }) => (host.clone(), *port),
        Some(other) => (other.to_string(), None),
        None => (String::new(), None),
    };
    let client = Client::with_options(options).map_err(|e| {
        ClientBuildError(format!(
            "MongoDB client options refused: {}",
            redactor.scrub(&super::classify::describe(&e))
        ))
    })?;
    Ok(BuiltClient {
        client,
        server_address,
        server_port,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn motor_options_are_stripped() {
        let (url, removed) = strip_refused_options(
            "mongodb://h/?retryWrites=true&socketTimeoutMS=45000&timeoutMS=5",
        );
        assert_eq!(url, "mongodb://h/?retryWrites=true");
        assert_eq!(removed, ["socketTimeoutMS", "timeoutMS"]);
        assert_eq!(
            strip_refused_options("mongodb://h/?socketTimeoutMS=1").0,
            "mongodb://h/"
        );
        assert_eq!(strip_refused_options("mongodb://h").0, "mongodb://h");
    }
}
