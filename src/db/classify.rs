//! Which driver errors mean "the database is in trouble" (they feed the breaker) and which
//! are the caller's problem (they never open it).
//!
//! Classified by error kind and server code, never by error labels: a standalone server,
//! and FerretDB, attach none.

use mongodb::error::{Error, ErrorKind, WriteFailure};

/// Not-primary and node-recovering codes (the server cannot serve this now).
const UNAVAILABLE_CODES: &[i32] = &[10107, 13435, 10058, 11600, 11602, 13436, 189, 91];
/// The driver's retryable network codes: HostUnreachable, HostNotFound, NetworkTimeout,
/// SocketException, ExceededTimeLimit.
const NETWORK_CODES: &[i32] = &[6, 7, 89, 9001, 262];
/// Duplicate key.
pub const DUPLICATE_KEY: i32 = 11000;

/// What an error means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The database is unreachable or cannot serve: counts against the breaker. The text is
    /// the OpenTelemetry `error.type`.
    DatabaseFailure(&'static str),
    /// A unique index refused the write: the caller's conflict.
    DuplicateKey,
    /// Anything else the server refused (validation, unsupported command, bad query): the
    /// caller's problem, not the database's health.
    Rejected(&'static str),
}

/// A short description of a driver error, without the raw server reply the driver's own
/// `Display` includes (callers still redact it).
pub fn describe(err: &Error) -> String {
    match err.kind.as_ref() {
        ErrorKind::Command(c) => {
            format!("server error {} ({}): {}", c.code, c.code_name, c.message)
        }
        ErrorKind::Write(WriteFailure::WriteError(w)) => {
            format!("write error {}: {}", w.code, w.message)
        }
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => {
            format!("write concern error {}: {}", w.code, w.message)
        }
        other => other.to_string(),
    }
}

/// Classifies a driver error.
pub fn classify(err: &Error) -> ErrorClass {
    match err.kind.as_ref() {
        ErrorKind::Io(_) => ErrorClass::DatabaseFailure("io"),
        ErrorKind::ConnectionPoolCleared { .. } => ErrorClass::DatabaseFailure("pool_cleared"),
        ErrorKind::InvalidResponse { .. } => ErrorClass::DatabaseFailure("invalid_response"),
        ErrorKind::ServerSelection { .. } => ErrorClass::DatabaseFailure("server_selection"),
        ErrorKind::DnsResolve { .. } => ErrorClass::DatabaseFailure("dns"),
        ErrorKind::Shutdown => ErrorClass::DatabaseFailure("shutdown"),
        ErrorKind::Authentication { .. } => ErrorClass::DatabaseFailure("authentication"),
        ErrorKind::Command(c) => by_code(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => by_code(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => by_code(w.code),
        ErrorKind::InsertMany(m) => {
            if let Some(errors) = &m.write_errors {
                if errors.iter().any(|e| e.code == DUPLICATE_KEY) {
                    return ErrorClass::DuplicateKey;
                }
                if let Some(e) = errors.first() {
                    return by_code(e.code);
                }
            }
            match &m.write_concern_error {
                Some(w) => by_code(w.code),
                None => ErrorClass::Rejected("insert_many"),
            }
        }
        ErrorKind::BulkWrite(_) => ErrorClass::Rejected("bulk_write"),
        ErrorKind::InvalidArgument { .. } => ErrorClass::Rejected("invalid_argument"),
        ErrorKind::BsonDeserialization(_) => ErrorClass::Rejected("bson_deserialization"),
        ErrorKind::BsonSerialization(_) => ErrorClass::Rejected("bson_serialization"),
        _ => ErrorClass::Rejected("driver"),
    }
}

fn by_code(code: i32) -> ErrorClass {
    if code == DUPLICATE_KEY {
        ErrorClass::DuplicateKey
    } else if UNAVAILABLE_CODES.contains(&code) {
        ErrorClass::DatabaseFailure("not_primary")
    } else if NETWORK_CODES.contains(&code) {
        ErrorClass::DatabaseFailure("network")
    } else {
        ErrorClass::Rejected("server_error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command_error(code: i32) -> Error {
        // The driver's error types are non-exhaustive; build them from the server's reply shape.
        let reply = bson::doc! { "ok": 0, "code": code, "codeName": "X", "errmsg": "m" };
        let ce: mongodb::error::CommandError = bson::from_document(reply).unwrap();
        Error::from(ErrorKind::Command(ce))
    }

    #[test]
    fn duplicate_key_is_the_callers_problem() {
        assert_eq!(classify(&command_error(11000)), ErrorClass::DuplicateKey);
    }

    #[test]
    fn not_primary_and_recovering_codes_are_database_failures() {
        for code in [10107, 13435, 10058, 11600, 11602, 13436, 189, 91] {
            assert!(
                matches!(
                    classify(&command_error(code)),
                    ErrorClass::DatabaseFailure(_)
                ),
                "{code}"
            );
        }
    }

    /// Defect 7: the retryable network codes used to count as the caller's problem.
    #[test]
    fn network_codes_and_invalid_responses_are_database_failures() {
        for code in [6, 7, 89, 9001, 262] {
            assert_eq!(
                classify(&command_error(code)),
                ErrorClass::DatabaseFailure("network"),
                "{code}"
            );
        }
        // `ErrorKind::InvalidResponse` cannot be built outside the driver (non-exhaustive,
        // private constructor); its arm in `classify` is one line next to `Io`'s.
    }

    #[test]
    fn unsupported_and_validation_codes_never_count() {
        for code in [121, 238, 59, 9, 2, 1] {
            assert!(
                matches!(classify(&command_error(code)), ErrorClass::Rejected(_)),
                "{code}"
            );
        }
    }

    #[test]
    fn io_errors_are_database_failures() {
        let io = Error::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert_eq!(classify(&io), ErrorClass::DatabaseFailure("io"));
    }
}
