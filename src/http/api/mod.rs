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
contributions at 500 items, notifications at the 50 newest.";

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
