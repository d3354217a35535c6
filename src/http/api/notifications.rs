//! Notifications (`/api/notifications`): the caller's messages (invitations, contributions
//! and their reviews). Each user sees and changes only their own.

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::message::Message;
use crate::domain::ids::parse_object_id;
use crate::domain::time::iso;
use crate::http::context::AppContext;
use crate::http::error::{ApiError, ApiResult};
use crate::http::security::BearerAuth;
use crate::repo::notifications::{self, NotificationDoc};

/// API description tag.
#[derive(Tags)]
pub enum NotificationsTag {
    /// The caller's notifications.
    Notifications,
}

/// A notification.
#[derive(Debug, Clone, Object)]
pub struct NotificationOut {
    /// Id.
    pub id: String,
    /// Recipient's user id.
    pub user_id: String,
    /// `collaboration_invite`, `new_contribution` or `contribution_reviewed`.
    #[oai(rename = "type")]
    pub kind: String,
    /// Short title.
    pub title: String,
    /// One sentence.
    pub message: String,
    /// Ids the front end links to (for example `tree_owner_id`, `contribution_id`).
    pub data: serde_json::Value,
    /// Read by the recipient.
    pub read: bool,
    /// Creation time (ISO-8601 UTC).
    pub created_at: Option<String>,
}

impl From<NotificationDoc> for NotificationOut {
    fn from(n: NotificationDoc) -> Self {
        Self {
            id: n.id.to_hex(),
            user_id: n.user_id,
            kind: n.kind,
            title: n.title,
            message: n.message,
            data: match n.data {
                bson::Bson::Null | bson::Bson::Undefined => serde_json::Value::Null,
                other => other.into_relaxed_extjson(),
            },
            read: n.read,
            created_at: n.created_at.map(iso),
        }
    }
}

/// `GET /api/notifications/unread-count` answer.
#[derive(Debug, Clone, Object)]
pub struct UnreadCount {
    /// Unread notifications of the caller.
    pub unread_count: u64,
}

/// The notification routes.
pub struct NotificationsApi {
    /// Shared state.
    pub ctx: AppContext,
}

#[OpenApi(prefix_path = "/api", tag = "NotificationsTag::Notifications")]
impl NotificationsApi {
    /// List your notifications
    ///
    /// The 50 newest, newest first.
    #[oai(path = "/notifications", method = "get")]
    async fn list(&self, auth: BearerAuth) -> ApiResult<Json<Vec<NotificationOut>>> {
        let list = notifications::list_for_user(
            &self.ctx.gateway,
            &auth.0.id_hex(),
            self.ctx.limits.notifications,
        )
        .await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Count your unread notifications
    #[oai(path = "/notifications/unread-count", method = "get")]
    async fn unread_count(&self, auth: BearerAuth) -> ApiResult<Json<UnreadCount>> {
        let unread_count = notifications::count_unread(&self.ctx.gateway, &auth.0.id_hex()).await?;
        Ok(Json(UnreadCount { unread_count }))
    }

    /// Mark every notification read
    #[oai(path = "/notifications/read-all", method = "put")]
    async fn read_all(&self, auth: BearerAuth) -> ApiResult<Json<Message>> {
        let n = notifications::mark_all_read(&self.ctx.gateway, &auth.0.id_hex()).await?;
        Ok(Message::json(format!("{n} notification(s) marked as read")))
    }

    /// Mark one notification read
    ///
    /// 404 unless the notification is the caller's.
    #[oai(path = "/notifications/:id/read", method = "put")]
    async fn read_one(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<Message>> {
        let not_found = || ApiError::not_found("Notification not found");
        let id = parse_object_id(&id).ok_or_else(not_found)?;
        if !notifications::mark_read(&self.ctx.gateway, id, &auth.0.id_hex()).await? {
            return Err(not_found());
        }
        Ok(Message::json("Notification marked as read"))
    }
}
