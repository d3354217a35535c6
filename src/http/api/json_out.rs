//! [`JsonOut`] (and [`JsonBytes`], the same answer written before): a JSON answer described in the API description exactly as poem-openapi's
//! `Json` is (the schema of `T`), but written by serde straight into the body.
//!
//! poem-openapi's `Json` first builds a `serde_json::Value` of the whole answer (an ordered
//! map per object) and then prints it; for a tree of 500 persons that intermediate value is
//! five times the cost of the JSON itself (`cargo bench --bench micro -- payloads`). Types
//! answered this way derive both `Object` (their schema) and `serde::Serialize` (their
//! bytes), with no serde renames, so both spell the same JSON; the unit tests of each such
//! type check it with [`assert_same_json`].

use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use serde::Serialize;

use crate::http::error::json_error;

/// A 200 JSON answer written by serde (see the module doc).
#[derive(Debug, Clone)]
pub struct JsonOut<T>(pub T);

json_payload!(JsonOut);

impl<T: Serialize + Send> IntoResponse for JsonOut<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            // `Json`'s content type, the same for every `T`.
            Ok(body) => Response::builder()
                .content_type(<Json<bool> as Payload>::CONTENT_TYPE)
                .body(body),
            // Only a map with non-string keys can fail, and no answer type has one; if one
            // ever does, the cause is logged and the client gets the usual JSON 500.
            Err(err) => {
                tracing::error!("internal error: the answer could not be written as JSON: {err}");
                json_error(
                    poem::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error",
                )
            }
        }
    }
}

impl<T: Type + ToJSON + Serialize + Send> ApiResponse for JsonOut<T> {
    fn meta() -> MetaResponses {
        <Json<T> as ApiResponse>::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// A 200 JSON answer already written (by serde, from a `T`): described as `T` is, sent as
/// it is (a kept answer costs no copy).
#[derive(Debug, Clone)]
pub struct JsonBytes<T> {
    body: bytes::Bytes,
    of: std::marker::PhantomData<fn() -> T>,
}

json_payload!(JsonBytes);

impl<T: Serialize> JsonBytes<T> {
    /// Writes `value` (an error only for what serde cannot write: see [`JsonOut`]).
    pub fn write(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_vec(value).map(|body| Self::kept(body.into()))
    }
}

impl<T> JsonBytes<T> {
    /// An answer written before.
    pub fn kept(body: bytes::Bytes) -> Self {
        Self {
            body,
            of: std::marker::PhantomData,
        }
    }

    /// The JSON text.
    pub fn bytes(&self) -> &bytes::Bytes {
        &self.body
    }
}

impl<T: Send> IntoResponse for JsonBytes<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(<Json<bool> as Payload>::CONTENT_TYPE)
            .body(self.body)
    }
}

impl<T: Type + ToJSON + Serialize + Send> ApiResponse for JsonBytes<T> {
    fn meta() -> MetaResponses {
        <Json<T> as ApiResponse>::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// Asserts that serde writes `value` as poem-openapi's `ToJSON` does (same fields, same
/// values, same order), so switching an answer to [`JsonOut`] changes no byte of it.
#[cfg(test)]
pub fn assert_same_json<T: ToJSON + Serialize>(value: &T) {
    let by_serde = serde_json::to_string(value).expect("serde writes it");
    let by_poem = serde_json::to_string(&value.to_json()).expect("poem-openapi writes it");
    assert_eq!(by_serde, by_poem);
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::header;

    #[test]
    fn the_answer_is_the_serde_bytes_with_the_json_content_type() {
        let resp = JsonOut(vec!["a".to_string(), "é".to_string()]).into_response();
        assert_eq!(resp.status(), poem::http::StatusCode::OK);
        assert_eq!(
            resp.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json; charset=utf-8"
        );
        let body = futures::executor::block_on(resp.into_body().into_vec()).unwrap();
        assert_eq!(body, "[\"a\",\"é\"]".as_bytes());
    }

    #[test]
    fn an_answer_serde_cannot_write_is_the_json_500() {
        // A map with non-string keys is the one thing serde_json refuses.
        let unwritable = std::collections::BTreeMap::from([(vec![1u8], 1)]);
        let resp = JsonOut(unwritable).into_response();
        assert_eq!(resp.status(), poem::http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = futures::executor::block_on(resp.into_body().into_vec()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["detail"], "Internal server error");
    }

    #[test]
    fn the_description_is_the_one_of_json() {
        let ours = serde_json::to_value(format!("{:?}", JsonOut::<Vec<String>>::meta())).unwrap();
        let theirs = serde_json::to_value(format!("{:?}", Json::<Vec<String>>::meta())).unwrap();
        assert_eq!(ours, theirs);
        let written = format!("{:?}", JsonBytes::<Vec<String>>::meta());
        assert_eq!(serde_json::to_value(written).unwrap(), theirs);
    }

    #[test]
    fn an_answer_written_before_is_sent_as_jsonout_sends_it() {
        let value = vec!["a".to_string(), "é".to_string()];
        let written = JsonBytes::write(&value).unwrap().into_response();
        let direct = JsonOut(value).into_response();
        assert_eq!(written.status(), direct.status());
        assert_eq!(
            written.headers().get(header::CONTENT_TYPE),
            direct.headers().get(header::CONTENT_TYPE)
        );
        let a = futures::executor::block_on(written.into_body().into_vec()).unwrap();
        let b = futures::executor::block_on(direct.into_body().into_vec()).unwrap();
        assert_eq!(a, b);
    }
}
