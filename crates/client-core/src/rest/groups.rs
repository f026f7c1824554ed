//! REST calls for group moderation.

use natter_protocol::{GroupInfo, GroupSettingsRequest, Role, RoleRequest, TransferRequest};
use reqwest::Method;

use super::Rest;
use crate::Error;

impl Rest {
    pub async fn set_role(
        &self,
        group: &str,
        username: &str,
        role: Role,
    ) -> Result<GroupInfo, Error> {
        self.post(
            &["groups", group, "members", username, "role"],
            &RoleRequest { role },
        )
        .await
    }

    pub async fn update_group(
        &self,
        group: &str,
        req: &GroupSettingsRequest,
    ) -> Result<GroupInfo, Error> {
        self.call(self.request(Method::PATCH, &["groups", group]).json(req))
            .await
    }

    pub async fn transfer_group(&self, group: &str, username: &str) -> Result<GroupInfo, Error> {
        self.post(
            &["groups", group, "owner"],
            &TransferRequest {
                username: username.to_owned(),
            },
        )
        .await
    }

    pub async fn delete_group(&self, group: &str) -> Result<(), Error> {
        self.execute(self.request(Method::DELETE, &["groups", group]))
            .await
            .map(drop)
    }

    pub async fn leave_group(&self, group: &str) -> Result<(), Error> {
        self.execute(self.request(Method::POST, &["groups", group, "leave"]))
            .await
            .map(drop)
    }
}
