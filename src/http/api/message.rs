//! The `{message}` body that acknowledging routes answer (deletes, role changes, ...).

use poem_openapi::Object;
use poem_openapi::payload::Json;

/// A one-sentence acknowledgement.
#[derive(Debug, Clone, Object)]
pub struct Message {
    /// What was done.
    pub message: String,
}

impl Message {
    /// `{"message": text}` as a JSON payload.
    pub fn json(text: impl Into<String>) -> Json<Message> {
        Json(Message {
            message: text.into(),
        })
    }
}
