//! The AÏLA API routes (`/api/...`), one module per resource. Every database call goes
//! through the gateway; every error is an [`super::error::ApiError`].

use super::context::AppContext;

/// The API description's introduction (shown at `/docs`).
pub const DESCRIPTION: &str = "AÏLA family-tree API. Errors are JSON with a `detail` field. \
While the database is unavailable, routes that need it answer 503 at once with `Retry-After` \
(seconds) and `Retry-After-Ms`; `/health` always answers 200 and `/readiness` says whether \
the database is usable. Lists are capped: persons, links, users, collaborators and \
contributions at 500 items, notifications at the 50 newest.";

/// Every resource API, for the OpenAPI service.
pub fn all(ctx: &AppContext) -> impl poem_openapi::OpenApi {
    let _ = ctx;
}
