//! The AÏLA API routes (`/api/...`), one module per resource. Every database call goes
//! through the gateway; every error is an [`super::error::ApiError`].

/// `impl Payload for $wrapper<T>`: a JSON payload described exactly as poem-openapi's
/// `Json<T>` (same content type, same schema), for the request and answer wrappers that
/// only change how the bytes are read ([`body::JsonBody`]) or written
/// ([`json_out::JsonOut`]).
macro_rules! json_payload {
    ($wrapper:ident) => {
        impl<T: poem_openapi::types::Type> poem_openapi::payload::Payload for $wrapper<T> {
            const CONTENT_TYPE: &'static str =
                <poem_openapi::payload::Json<T> as poem_openapi::payload::Payload>::CONTENT_TYPE;

            fn check_content_type(content_type: &str) -> bool {
                <poem_openapi::payload::Json<T> as poem_openapi::payload::Payload>::check_content_type(
                    content_type,
                )
            }

            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                T::schema_ref()
            }

            fn register(registry: &mut poem_openapi::registry::Registry) {
                T::register(registry);
            }
        }
    };
}

// Part A.
pub mod account;
pub mod auth;
pub mod body;
pub mod json_out;
pub mod links;
pub mod message;
pub mod persons;
pub mod tree;
pub mod tree_cache;
pub mod users;

// Part B.
pub mod collaborators;
pub mod contributions;
pub mod gdpr;
pub mod gdpr_export;
pub mod locks;
pub mod notifications;
pub mod preview;
pub mod shared_tree;

use super::context::AppContext;

/// The API description's introduction (shown at `/docs`).
pub const DESCRIPTION: &str = "AÏLA family-tree API. Errors are JSON with a `detail` field. \
While the database is unavailable, routes that need it answer 503 at once with `Retry-After` \
(seconds) and `Retry-After-Ms`; `/health` always answers 200 and `/readiness` says whether \
the database is usable. Lists are capped: persons, links, users, collaborators and \
contributions at 500 items, notifications at the 50 newest.

Retries without duplicates: every POST that creates or changes something (registration, \
persons, links, invitations, contributions and reviews, preview session/person/link/convert) \
takes an optional `Idempotency-Key` header (IETF draft-ietf-httpapi-idempotency-key-header), \
e.g. a UUID, 1 to 255 visible ASCII characters, bare or as a quoted string. The first request \
with a key is processed and its answer kept for `IDEMPOTENCY_KEY_TTL_SECS` (24 h by default); \
a repeat with the same key, method, path and body gets that answer again with \
`Idempotent-Replayed: true` and changes nothing, so a client may retry blindly after a 503 or \
a lost answer. A repeat while the first is still processed gets 409 with `Retry-After`; the \
same key with another body 422; a malformed key 400. Keys belong to the caller (the account, \
the preview session, or the client address for registration and new preview sessions).";

/// Every resource API, for the OpenAPI service.
pub fn all(ctx: &AppContext) -> impl poem_openapi::OpenApi {
    (
        // Part A.
        auth::AuthApi { ctx: ctx.clone() },
        account::AccountApi { ctx: ctx.clone() },
        users::UsersApi { ctx: ctx.clone() },
        persons::PersonsApi { ctx: ctx.clone() },
        links::LinksApi { ctx: ctx.clone() },
        tree::TreeApi { ctx: ctx.clone() },
        // Part B.
        preview::PreviewApi::new(ctx.clone()),
        collaborators::CollaboratorsApi::new(ctx.clone()),
        contributions::ContributionsApi::new(ctx.clone()),
        notifications::NotificationsApi { ctx: ctx.clone() },
        shared_tree::SharedTreeApi { ctx: ctx.clone() },
        gdpr::GdprApi { ctx: ctx.clone() },
    )
}
