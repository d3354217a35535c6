//! Person bodies: creation (names required) and partial update (only fields present).
//! Shared by `/api/persons`, the preview routes and contributions (whose `entity_data` is
//! parsed as one of these, so nothing else can be written into a tree).

use poem_openapi::Object;

use super::enums::Gender;

/// Longest free-text field (names, places, dates as typed).
pub const MAX_TEXT: usize = 200;
/// Longest notes.
pub const MAX_NOTES: usize = 10_000;
/// Longest photo (base64).
pub const MAX_PHOTO: usize = 7 * 1024 * 1024;

/// `POST /api/persons` body. Unknown fields are ignored (the front end sends some).
#[derive(Debug, Clone, Object, serde::Deserialize, serde::Serialize)]
pub struct PersonInput {
    /// First name (1 to 200 characters).
    #[oai(validator(min_length = 1, max_length = 200))]
    pub first_name: String,
    /// Last name (1 to 200 characters).
    #[oai(validator(min_length = 1, max_length = 200))]
    pub last_name: String,
    /// `male`, `female` or `unknown` (default `unknown`).
    pub gender: Option<Gender>,
    /// Birth date as the user typed it.
    #[oai(validator(max_length = 200))]
    pub birth_date: Option<String>,
    /// Birth place.
    #[oai(validator(max_length = 200))]
    pub birth_place: Option<String>,
    /// Death date as the user typed it.
    #[oai(validator(max_length = 200))]
    pub death_date: Option<String>,
    /// Death place.
    #[oai(validator(max_length = 200))]
    pub death_place: Option<String>,
    /// Photo, base64.
    #[oai(validator(max_length = 7340032))]
    pub photo: Option<String>,
    /// Free notes.
    #[oai(validator(max_length = 10000))]
    pub notes: Option<String>,
    /// Geographic branch.
    #[oai(validator(max_length = 200))]
    pub geographic_branch: Option<String>,
}

/// `PUT /api/persons/{id}` body: only the fields present change.
#[derive(Debug, Clone, Default, Object, serde::Deserialize, serde::Serialize)]
pub struct PersonUpdate {
    /// First name.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub first_name: Option<String>,
    /// Last name.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub last_name: Option<String>,
    /// Gender.
    pub gender: Option<Gender>,
    /// Birth date.
    #[oai(validator(max_length = 200))]
    pub birth_date: Option<String>,
    /// Birth place.
    #[oai(validator(max_length = 200))]
    pub birth_place: Option<String>,
    /// Death date.
    #[oai(validator(max_length = 200))]
    pub death_date: Option<String>,
    /// Death place.
    #[oai(validator(max_length = 200))]
    pub death_place: Option<String>,
    /// Photo, base64.
    #[oai(validator(max_length = 7340032))]
    pub photo: Option<String>,
    /// Notes.
    #[oai(validator(max_length = 10000))]
    pub notes: Option<String>,
    /// Geographic branch.
    #[oai(validator(max_length = 200))]
    pub geographic_branch: Option<String>,
}

impl PersonInput {
    /// Names trimmed; an all-blank name is refused with the field's name.
    pub fn normalized(mut self) -> Result<PersonInput, String> {
        self.first_name = self.first_name.trim().to_string();
        self.last_name = self.last_name.trim().to_string();
        if self.first_name.is_empty() {
            return Err("first_name must not be blank".into());
        }
        if self.last_name.is_empty() {
            return Err("last_name must not be blank".into());
        }
        Ok(self)
    }
}

impl PersonUpdate {
    /// True when no field is present.
    pub fn is_empty(&self) -> bool {
        self.first_name.is_none()
            && self.last_name.is_none()
            && self.gender.is_none()
            && self.birth_date.is_none()
            && self.birth_place.is_none()
            && self.death_date.is_none()
            && self.death_place.is_none()
            && self.photo.is_none()
            && self.notes.is_none()
            && self.geographic_branch.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_names_are_refused() {
        let p = PersonInput {
            first_name: "  ".into(),
            last_name: "X".into(),
            gender: None,
            birth_date: None,
            birth_place: None,
            death_date: None,
            death_place: None,
            photo: None,
            notes: None,
            geographic_branch: None,
        };
        assert_eq!(p.normalized().unwrap_err(), "first_name must not be blank");
    }

    #[test]
    fn an_empty_update_is_empty() {
        assert!(PersonUpdate::default().is_empty());
        assert!(
            !PersonUpdate {
                notes: Some(String::new()),
                ..Default::default()
            }
            .is_empty()
        );
    }
}
