//! Dates as the API sends them: ISO-8601, UTC, with microseconds and `Z`
//! (`2025-12-09T23:20:52.325381Z`). Stored as BSON dates.

use chrono::{DateTime, SecondsFormat, Utc};

/// `dt` as the API spells it.
pub fn iso(dt: bson::DateTime) -> String {
    iso_chrono(dt.to_chrono())
}

/// A chrono time as the API spells it.
pub fn iso_chrono(dt: DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Now, as a BSON date (millisecond precision, as MongoDB stores it).
pub fn now() -> bson::DateTime {
    bson::DateTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_is_utc_with_z() {
        let dt = bson::DateTime::from_millis(1_733_786_452_325);
        assert_eq!(iso(dt), "2024-12-09T23:20:52.325000Z");
    }
}
