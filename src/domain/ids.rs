//! ObjectId parsing. A malformed id in a path means "no such resource" (404); in a body it
//! is invalid input (422). Never a 500.

use bson::oid::ObjectId;

/// The ObjectId spelled by `s` (24 hex digits), if it is one.
pub fn parse_object_id(s: &str) -> Option<ObjectId> {
    if s.len() != 24 {
        return None;
    }
    ObjectId::parse_str(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_24_hex_digits_parse() {
        assert!(parse_object_id("6574a5b2c3d4e5f60718293a").is_some());
        assert!(parse_object_id("not-an-id").is_none());
        assert!(parse_object_id("6574a5b2c3d4e5f60718293").is_none());
        assert!(parse_object_id("6574a5b2c3d4e5f60718293g").is_none());
    }
}
