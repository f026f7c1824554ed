//! REST calls for the caller's sessions and for server administration.

use natter_protocol::{
    AdminUser, CreateInviteRequest, InviteInfo, PasswordRequest, ServerStats, SessionInfo,
};
use reqwest::Method;

use super::Rest;
use crate::Error;

impl Rest {
    async fn no_content(&self, method: Method, segments: &[&str]) -> Result<(), Error> {
        self.execute(self.request(method, segments)).await.map(drop)
    }

    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, Error> {
        self.get(&["sessions"]).await
    }

    pub async fn revoke_session(&self, id: i64) -> Result<(), Error> {
        self.no_content(Method::DELETE, &["sessions", &id.to_string()])
            .await
    }

    pub async fn admin_users(&self) -> Result<Vec<AdminUser>, Error> {
        self.get(&["admin", "users"]).await
    }

    /// Disables (`true`) or enables an account.
    pub async fn admin_set_disabled(&self, username: &str, disabled: bool) -> Result<(), Error> {
        let action = if disabled { "disable" } else { "enable" };
        self.no_content(Method::POST, &["admin", "users", username, action])
            .await
    }

    pub async fn admin_reset_password(&self, username: &str, password: &str) -> Result<(), Error> {
        let body = PasswordRequest {
            password: password.to_owned(),
        };
        self.execute(
            self.request(Method::POST, &["admin", "users", username, "password"])
                .json(&body),
        )
        .await
        .map(drop)
    }

    pub async fn admin_set_admin(&self, username: &str, admin: bool) -> Result<(), Error> {
        let method = if admin { Method::POST } else { Method::DELETE };
        self.no_content(method, &["admin", "users", username, "admin"])
            .await
    }

    pub async fn admin_stats(&self) -> Result<ServerStats, Error> {
        self.get(&["admin", "stats"]).await
    }

    pub async fn create_invite(&self, req: &CreateInviteRequest) -> Result<InviteInfo, Error> {
        self.post(&["admin", "invites"], req).await
    }

    pub async fn invites(&self) -> Result<Vec<InviteInfo>, Error> {
        self.get(&["admin", "invites"]).await
    }

    pub async fn revoke_invite(&self, id: i64) -> Result<(), Error> {
        self.no_content(Method::DELETE, &["admin", "invites", &id.to_string()])
            .await
    }
}
