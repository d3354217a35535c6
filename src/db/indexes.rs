//! The indexes of the contract (`shared/spec/aila-api.md`) and their creation.
//!
//! Names are the server's defaults (`email_1`, ...), as the old service made them, so an
//! existing database is left as it is. Unique indexes are required: readiness waits for
//! them. The TTL index on `preview_sessions.expires_at` is best effort: where the server
//! refuses it (FerretDB does), a warning is logged once and shown in `/health`, and the
//! service's own expiry takes over (expired sessions are refused on read and swept). The
//! same holds for `idempotency_keys.expires_at`.

use std::time::Duration;

use bson::Document;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use tracing::Instrument;

use super::gateway::{DbError, Gateway};
use super::state::IndexFailure;

/// One index the service needs.
#[derive(Debug, Clone)]
pub struct IndexSpec {
    /// Collection.
    pub collection: &'static str,
    /// Keys, in order, each ascending.
    pub keys: &'static [&'static str],
    /// Unique index.
    pub unique: bool,
    /// TTL (`expireAfterSeconds`), if any.
    pub ttl: Option<Duration>,
}

impl IndexSpec {
    /// The server's default name: `field_1[_field_1...]`.
    pub fn name(&self) -> String {
        self.keys
            .iter()
            .map(|k| format!("{k}_1"))
            .collect::<Vec<_>>()
            .join("_")
    }

    /// `collection.name`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.collection, self.name())
    }

    /// Readiness waits for unique indexes; the others are best effort.
    pub fn required(&self) -> bool {
        self.unique
    }

    fn keys_doc(&self) -> Document {
        let mut d = Document::new();
        for k in self.keys {
            d.insert(*k, 1);
        }
        d
    }
}

const fn ix(collection: &'static str, keys: &'static [&'static str]) -> IndexSpec {
    IndexSpec {
        collection,
        keys,
        unique: false,
        ttl: None,
    }
}

/// Every index of the contract.
pub const INDEXES: &[IndexSpec] = &[
    IndexSpec {
        collection: "users",
        keys: &["email"],
        unique: true,
        ttl: None,
    },
    ix("persons", &["user_id"]),
    ix("family_links", &["user_id"]),
    // A person's deletion removes its links by either end.
    ix("family_links", &["person_id_1"]),
    ix("family_links", &["person_id_2"]),
    IndexSpec {
        collection: "preview_sessions",
        keys: &["session_token"],
        unique: true,
        ttl: None,
    },
    IndexSpec {
        collection: "preview_sessions",
        keys: &["expires_at"],
        unique: false,
        ttl: Some(Duration::ZERO),
    },
    ix("collaborators", &["tree_owner_id"]),
    ix("collaborators", &["user_id"]),
    ix("collaborators", &["email"]),
    ix("contributions", &["tree_owner_id"]),
    ix("contributions", &["contributor_id"]),
    ix("contributions", &["status"]),
    ix("notifications", &["user_id"]),
    ix("notifications", &["user_id", "read"]),
    // Links mailed for email verification and password reset, found by their hash.
    IndexSpec {
        collection: "email_tokens",
        keys: &["token_hash"],
        unique: true,
        ttl: None,
    },
    ix("email_tokens", &["user_id"]),
    // Idempotency keys expire (`expires_at`); the service sweeps where TTL is refused.
    IndexSpec {
        collection: "idempotency_keys",
        keys: &["expires_at"],
        unique: false,
        ttl: Some(Duration::ZERO),
    },
];

/// What one ensure pass achieved.
#[derive(Debug, Clone, Default)]
pub struct IndexReport {
    /// Indexes that exist now.
    pub ensured: Vec<String>,
    /// Indexes that could not be created.
    pub failed: Vec<IndexFailure>,
    /// True when the database was unavailable for some of them (the supervisor retries).
    pub interrupted: bool,
}

/// Creates every index in `specs` (idempotent), each in its own span under `db.indexes`,
/// each under `deadline` (index creation may outlast a request's operation deadline).
/// Required indexes go first, and a failure never stops the pass: every index is tried.
pub async fn ensure_indexes(
    gateway: &Gateway,
    specs: &[IndexSpec],
    deadline: Duration,
) -> IndexReport {
    let mut ordered: Vec<&IndexSpec> = specs.iter().collect();
    ordered.sort_by_key(|s| !s.required());
    let mut report = IndexReport::default();
    let parent = tracing::info_span!(
        "db.indexes",
        indexes.count = specs.len() as i64,
        indexes.ensured = tracing::field::Empty,
        indexes.failed = tracing::field::Empty
    );
    async {
        for spec in ordered {
            let name = spec.name();
            let span = tracing::info_span!(
                "db.index",
                otel.name = format!("db.index {}", spec.qualified_name()),
                db.collection.name = spec.collection,
                index.name = %name,
                index.keys = %spec.keys_doc(),
                index.unique = spec.unique,
                index.ttl_seconds = spec.ttl.map(|d| d.as_secs() as i64),
                index.result = tracing::field::Empty,
            );
            let mut options = IndexOptions::builder().name(name.clone()).unique(spec.unique.then_some(true)).build();
            options.expire_after = spec.ttl;
            let model = IndexModel::builder().keys(spec.keys_doc()).options(options).build();
            let outcome = gateway
                .run_with_deadline("create_index", spec.collection, deadline, |c: Collection<Document>| async move { c.create_index(model).await })
                .instrument(span.clone())
                .await;
            match outcome {
                Ok(_) => {
                    span.record("index.result", "created");
                    report.ensured.push(spec.qualified_name());
                }
                Err(e) => {
                    let result = if e.is_unavailable() { "database_unavailable" } else { "refused" };
                    span.record("index.result", result);
                    let error = match &e {
                        DbError::Rejected { message, .. } if spec.ttl.is_some() => format!(
                            "TTL index refused by the server ({message}); expired {} are removed by the service's own sweep instead",
                            spec.collection.replace('_', " ")
                        ),
                        other => other.to_string(),
                    };
                    report.failed.push(IndexFailure { index: spec.qualified_name(), error, required: spec.required() });
                    if e.is_unavailable() {
                        report.interrupted = true;
                    }
                }
            }
        }
        let span = tracing::Span::current();
        span.record("indexes.ensured", report.ensured.len() as i64);
        span.record("indexes.failed", report.failed.len() as i64);
    }
    .instrument(parent)
    .await;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn names_are_the_server_defaults() {
        let names: Vec<String> = INDEXES.iter().map(IndexSpec::qualified_name).collect();
        assert!(names.contains(&"users.email_1".to_string()));
        assert!(names.contains(&"notifications.user_id_1_read_1".to_string()));
        assert!(names.contains(&"preview_sessions.expires_at_1".to_string()));
        assert!(names.contains(&"email_tokens.token_hash_1".to_string()));
        // users.email, preview_sessions.session_token, email_tokens.token_hash.
        assert_eq!(INDEXES.iter().filter(|s| s.required()).count(), 3);
    }

    /// Defect 5: readiness must wait for every required index, including one never tried.
    #[test]
    fn readiness_needs_every_required_index_even_one_never_tried() {
        let mut state = crate::db::state::DbState::initial();
        state.indexes_ensured = vec!["persons.user_id_1".into()];
        assert!(
            !state.required_indexes_ok(),
            "users.email_1 was never tried"
        );
        state.indexes_ensured = INDEXES
            .iter()
            .filter(|s| s.required())
            .map(IndexSpec::qualified_name)
            .collect();
        assert!(state.required_indexes_ok());
    }

    #[test]
    fn keys_keep_their_order() {
        let spec = ix("notifications", &["user_id", "read"]);
        assert_eq!(spec.keys_doc(), doc! { "user_id": 1, "read": 1 });
    }
}
