//! Bearer authentication: the token is verified, then its user is loaded through the
//! gateway (a deleted user is refused), and a token issued before the user's revocation
//! cutoff (`tokens_valid_after`: a logout, a password change) is refused, read from that
//! same document. A bad token is never treated as "no token".

use bson::oid::ObjectId;
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use super::context::AppContext;
use super::error::ApiError;
use crate::repo::users::{self, UserDoc};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user's document.
    pub user: UserDoc,
}

impl AuthUser {
    /// The user's id.
    pub fn id(&self) -> ObjectId {
        self.user.id
    }
    /// The user's id as the 24-hex string stored in `user_id` fields.
    pub fn id_hex(&self) -> String {
        self.user.id.to_hex()
    }
    /// True for administrators.
    pub fn is_admin(&self) -> bool {
        self.user.is_admin()
    }
}

/// `Authorization: Bearer <jwt>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct BearerAuth(pub AuthUser);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<AuthUser> {
    let ctx = req
        .data::<AppContext>()
        .ok_or_else(|| ApiError::internal("AppContext missing from the request"))?;
    authenticate(ctx, &bearer.token).await.map_err(Into::into)
}

/// Verifies `token` and loads its user.
pub async fn authenticate(ctx: &AppContext, token: &str) -> Result<AuthUser, ApiError> {
    let claims = ctx
        .tokens
        .verify(token)
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    let id = ObjectId::parse_str(&claims.user_id)
        .map_err(|_| ApiError::unauthorized("Invalid token"))?;
    match users::find_by_id(&ctx.gateway, id).await? {
        Some(user)
            if user
                .tokens_cutoff_ms()
                .is_some_and(|cut| claims.issued_before(cut)) =>
        {
            Err(ApiError::unauthorized("Token revoked"))
        }
        Some(user) => Ok(AuthUser { user }),
        None => Err(ApiError::unauthorized("User not found")),
    }
}
