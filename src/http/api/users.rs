//! `/api/users`: user management for admins (list, promote, demote), and the user object
//! every auth route answers ([`UserOut`]).

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::message::Message;
use crate::domain::enums::Role;
use crate::domain::ids::parse_object_id;
use crate::domain::time::iso;
use crate::http::context::AppContext;
use crate::http::error::{ApiError, ApiResult};
use crate::http::security::{AuthUser, BearerAuth};
use crate::repo::users::{self, Demotion, UserDoc};

/// API description tags.
#[derive(Tags)]
enum UsersTag {
    /// User management (admins only).
    Users,
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Object)]
pub struct UserOut {
    /// Id (24 hex digits).
    pub id: String,
    /// Email.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Registration time (ISO-8601, UTC); null for old documents without one.
    pub created_at: Option<String>,
    /// GDPR consent given.
    pub gdpr_consent: bool,
    /// When consent was given (ISO-8601, UTC).
    pub gdpr_consent_date: Option<String>,
    /// `admin` or `member`.
    pub role: Role,
    /// True once the owner followed the verification link mailed to `email` (accounts made
    /// before verification existed read false until they verify).
    pub email_verified: bool,
}

impl From<&UserDoc> for UserOut {
    fn from(u: &UserDoc) -> Self {
        UserOut {
            id: u.id.to_hex(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            created_at: u.created_at.map(iso),
            gdpr_consent: u.gdpr_consent,
            gdpr_consent_date: u.gdpr_consent_date.map(iso),
            role: u.role(),
            email_verified: u.email_verified,
        }
    }
}

/// 403 unless the caller is an admin.
pub fn require_admin(user: &AuthUser) -> ApiResult<()> {
    if user.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("Admin access required"))
    }
}

fn user_not_found() -> ApiError {
    ApiError::not_found("User not found")
}

/// The user-management routes.
pub struct UsersApi {
    /// Shared state.
    pub ctx: AppContext,
}

#[OpenApi(prefix_path = "/api", tag = "UsersTag::Users")]
impl UsersApi {
    /// List users (admins only).
    ///
    /// Every user, oldest first, at most 500. 403 `Admin access required` for members.
    #[oai(path = "/users", method = "get")]
    async fn list(&self, auth: BearerAuth) -> ApiResult<Json<Vec<UserOut>>> {
        require_admin(&auth.0)?;
        let all = users::list(&self.ctx.gateway, self.ctx.limits.items).await?;
        Ok(Json(all.iter().map(UserOut::from).collect()))
    }

    /// Make a user an admin (admins only).
    ///
    /// 404 `User not found` for an unknown or malformed id.
    #[oai(path = "/users/:id/promote", method = "put")]
    async fn promote(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<Message>> {
        require_admin(&auth.0)?;
        let id = parse_object_id(&id.0).ok_or_else(user_not_found)?;
        if !users::set_role(&self.ctx.gateway, id, Role::Admin).await? {
            return Err(user_not_found());
        }
        Ok(Message::json("User promoted to admin"))
    }

    /// Make an admin a member again (admins only).
    ///
    /// 400 `Cannot demote yourself`; 400 `Cannot demote the last admin` (two admins
    /// demoting each other at once: one of them is refused, so an admin always remains);
    /// 404 `User not found`.
    #[oai(path = "/users/:id/demote", method = "put")]
    async fn demote(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<Message>> {
        require_admin(&auth.0)?;
        let id = parse_object_id(&id.0).ok_or_else(user_not_found)?;
        if id == auth.0.id() {
            return Err(ApiError::bad_request("Cannot demote yourself"));
        }
        match users::demote(&self.ctx.gateway, id).await? {
            Demotion::Demoted => Ok(Message::json("User demoted to member")),
            Demotion::NotFound => Err(user_not_found()),
            Demotion::LastAdmin => Err(ApiError::bad_request(
                "Cannot demote the last admin: promote another user first",
            )),
        }
    }
}
