//! [`JsonBody`]: a JSON request body like poem-openapi's `Json`, whose parse errors name the
//! offending field.
//!
//! poem-openapi reports a wrong type or a missing field without the field's name
//! (`Expected input type "string", found null. (occurred while parsing "PersonInput")`), and
//! the contract wants a 422 whose `detail` names it. On a parse failure, `JsonBody` checks
//! the body against the type's own schema (the one published in `/openapi.json`): the first
//! required field that is missing or null, or the first field whose JSON type or enum value
//! does not fit, is named (`field `gender`: expected one of male, female, unknown, found
//! "other"`). Validator failures already name their field and pass through unchanged.
//! The API description is the same as with `Json`.

use std::ops::{Deref, DerefMut};

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::error::{ContentTypeError, ParseRequestPayloadError};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde_json::Value;

/// A JSON request body of type `T`; see the module doc.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T> Deref for JsonBody<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for JsonBody<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// Parses `value` as `T`; the error names the offending field as [`JsonBody`] does (for
/// JSON embedded in a body, such as a contribution's `entity_data`).
pub fn parse_value<T: ParseFromJSON>(value: Value) -> Result<T, String> {
    match T::parse_from_json(Some(value.clone())) {
        Ok(parsed) => Ok(parsed),
        Err(err) => {
            let message = err.into_message();
            if message.contains("field `") {
                Err(message)
            } else {
                Err(diagnose::<T>(&value).unwrap_or(message))
            }
        }
    }
}

json_payload!(JsonBody);

impl<T: ParseFromJSON> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = <Vec<u8> as FromRequest>::from_request(request, body).await?;
        let value = if data.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&data).map_err(|err| ParseRequestPayloadError {
                reason: format!("not valid JSON: {err}"),
            })?
        };
        parse_value(value)
            .map(JsonBody)
            .map_err(|reason| ParseRequestPayloadError { reason }.into())
    }
}

impl<'a, T: ParseFromJSON> ApiExtractor<'a> for JsonBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <Self as Payload>::CONTENT_TYPE,
                schema: <Self as Payload>::schema_ref(),
            }],
            required: <Self as ParsePayload>::IS_REQUIRED,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match request.content_type() {
            Some(content_type) if <Self as Payload>::check_content_type(content_type) => {
                <Self as ParsePayload>::from_request(request, body).await
            }
            Some(content_type) => Err(ContentTypeError::NotSupported {
                content_type: content_type.to_string(),
            }
            .into()),
            None => Err(ContentTypeError::ExpectContentType.into()),
        }
    }
}

/// Names the first field of `value` that does not fit `T`'s schema, with what was expected.
fn diagnose<T: Type>(value: &Value) -> Option<String> {
    let mut registry = Registry::new();
    T::register(&mut registry);
    let root = T::schema_ref();
    let schema = resolve(&registry, &root)?;
    let Some(object) = value.as_object() else {
        return Some(format!("expected a JSON object, found {}", spell(value)));
    };
    for name in &schema.required {
        if object.get(*name).is_none_or(Value::is_null) {
            return Some(format!("field `{name}` is required"));
        }
    }
    for (name, field_schema) in &schema.properties {
        let Some(v) = object.get(*name).filter(|v| !v.is_null()) else {
            continue;
        };
        if let Some(expected) = mismatch(&registry, field_schema, v) {
            return Some(format!(
                "field `{name}`: expected {expected}, found {}",
                spell(v)
            ));
        }
    }
    None
}

/// The schema a reference names.
fn resolve<'r>(registry: &'r Registry, schema: &'r MetaSchemaRef) -> Option<&'r MetaSchema> {
    match schema {
        MetaSchemaRef::Reference(name) => registry.schemas.get(name),
        MetaSchemaRef::Inline(schema) => Some(schema),
    }
}

/// What `schema` expects, when `value` does not fit its JSON type or enum values (a field
/// with a description is `allOf: [the type, the description]`: each part must fit).
fn mismatch(registry: &Registry, schema: &MetaSchemaRef, value: &Value) -> Option<String> {
    let schema = resolve(registry, schema)?;
    if let Some(expected) = schema
        .all_of
        .iter()
        .find_map(|part| mismatch(registry, part, value))
    {
        return Some(expected);
    }
    if !schema.enum_items.is_empty() {
        if schema.enum_items.contains(value) {
            return None;
        }
        let items: Vec<String> = schema
            .enum_items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect();
        return Some(format!("one of {}", items.join(", ")));
    }
    let fits = match schema.ty {
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    };
    (!fits).then(|| match schema.ty {
        "integer" => "an integer".to_string(),
        "array" => "an array".to_string(),
        "object" => "an object".to_string(),
        ty => format!("a {ty}"),
    })
}

/// A short spelling of a JSON value for error messages.
fn spell(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::person::PersonInput;
    use serde_json::json;

    fn why(value: Value) -> Option<String> {
        assert!(
            PersonInput::parse_from_json(Some(value.clone())).is_err(),
            "{value}"
        );
        diagnose::<PersonInput>(&value)
    }

    #[test]
    fn names_the_missing_the_mistyped_and_the_unknown_enum_value() {
        assert_eq!(
            why(json!({"first_name": "A"})).unwrap(),
            "field `last_name` is required"
        );
        assert_eq!(
            why(json!({"first_name": "A", "last_name": null})).unwrap(),
            "field `last_name` is required"
        );
        assert_eq!(
            why(json!({"first_name": "A", "last_name": "B", "notes": [12]})).unwrap(),
            "field `notes`: expected a string, found [12]"
        );
        assert_eq!(
            why(json!({"first_name": "A", "last_name": "B", "gender": "other"})).unwrap(),
            "field `gender`: expected one of male, female, unknown, found \"other\""
        );
        assert_eq!(
            why(json!(["A"])).unwrap(),
            "expected a JSON object, found [\"A\"]"
        );
    }
}
