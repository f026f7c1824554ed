//! Group moderation. Roles: the owner (exactly one), admins, members.
//!
//! - Owners and admins add and remove members, promote members to admin and demote
//!   admins, rename the group and set its topic. Nobody but the owner touches the owner.
//! - The owner transfers ownership (becoming an admin) and deletes the group.
//! - Anyone leaves, except the owner, who transfers ownership first (or deletes).
//!
//! Every change is a timeline event that members see live and in history. A member who
//! is removed (or leaves) loses access at once: no further messages, typing or presence,
//! and no history — not even the part from before (their devices keep what they cached).

use natter_protocol::validate;
use natter_protocol::{GroupInfo, Role, limits};

use super::{Domain, DomainError, DomainResult, Principal};
use crate::store::groups::{ChangeOutcome, GroupChange};
use crate::store::{MembershipChange, StoreError};

fn may_manage(role: Role, group: &str, what: &str) -> DomainResult<()> {
    if role.can_manage() {
        Ok(())
    } else {
        Err(DomainError::Forbidden(format!(
            "only the owner or an admin of {group} can {what}"
        )))
    }
}

impl Domain {
    async fn apply(
        &self,
        id: natter_protocol::ConversationId,
        group: &str,
        p: &Principal,
        change: GroupChange,
    ) -> DomainResult<ChangeOutcome> {
        let outcome = match self.store.change_group(id, p.id, change).await {
            Err(StoreError::GroupFull(max)) => {
                return Err(DomainError::GroupFull {
                    name: group.to_owned(),
                    max,
                });
            }
            Err(StoreError::NameTaken) => return Err(DomainError::GroupTaken(group.to_owned())),
            Err(StoreError::NotMember) => {
                return Err(DomainError::NotFound(format!(
                    "that user is not a member of {group}"
                )));
            }
            other => other?,
        };
        self.announce(MembershipChange {
            conversation_id: id,
            added: outcome.added.clone(),
            removed: outcome.removed.clone(),
        })
        .await;
        Ok(outcome)
    }

    pub async fn create_group(
        &self,
        p: &Principal,
        name: &str,
        members: &[String],
    ) -> DomainResult<GroupInfo> {
        let name = validate::group_name(name.trim_start_matches('#'))?;
        let mut ids = Vec::with_capacity(members.len());
        for m in members {
            let id = self.user_id(m).await?;
            if id != p.id && !ids.contains(&id) {
                ids.push(id);
            }
        }
        let max = self.limits.max_group_members;
        if ids.len() + 1 > max {
            return Err(DomainError::GroupFull { name, max });
        }
        let id = match self.store.create_group(p.id, &name, &[]).await {
            Err(StoreError::NameTaken) => return Err(DomainError::GroupTaken(name)),
            other => other?,
        };
        self.apply(id, &name, p, GroupChange::Created).await?;
        if !ids.is_empty() {
            self.apply(id, &name, p, GroupChange::Add { users: ids, max })
                .await?;
        }
        Ok(self.store.group_info(id).await?)
    }

    pub async fn add_members(
        &self,
        p: &Principal,
        name: &str,
        users: &[String],
    ) -> DomainResult<GroupInfo> {
        let (id, role) = self.member_group(p, name).await?;
        let info = self.store.group_info(id).await?;
        may_manage(role, &info.name, "add members")?;
        let mut ids = Vec::with_capacity(users.len());
        for u in users {
            ids.push(self.user_id(u).await?);
        }
        let max = self.limits.max_group_members;
        self.apply(id, &info.name, p, GroupChange::Add { users: ids, max })
            .await?;
        Ok(self.store.group_info(id).await?)
    }

    /// The target's id and role in the group, refusing anything aimed at the owner.
    async fn target(
        &self,
        id: natter_protocol::ConversationId,
        group: &str,
        username: &str,
        what: &str,
    ) -> DomainResult<(natter_protocol::UserId, Role)> {
        let target = self.user_id(username).await?;
        let name = validate::username(username.trim_start_matches('@'))?;
        let role =
            self.store.role(id, target).await?.ok_or_else(|| {
                DomainError::NotFound(format!("{name} is not a member of {group}"))
            })?;
        if role == Role::Owner {
            return Err(DomainError::Forbidden(format!(
                "the owner of {group} cannot be {what}"
            )));
        }
        Ok((target, role))
    }

    pub async fn remove_member(
        &self,
        p: &Principal,
        name: &str,
        username: &str,
    ) -> DomainResult<GroupInfo> {
        let (id, role) = self.member_group(p, name).await?;
        let info = self.store.group_info(id).await?;
        let (target, _) = self.target(id, &info.name, username, "removed").await?;
        if target == p.id {
            self.apply(id, &info.name, p, GroupChange::Leave).await?;
        } else {
            may_manage(role, &info.name, "remove members")?;
            self.apply(id, &info.name, p, GroupChange::Remove { user: target })
                .await?;
        }
        Ok(self.store.group_info(id).await?)
    }

    pub async fn leave_group(&self, p: &Principal, name: &str) -> DomainResult<()> {
        let (id, role) = self.member_group(p, name).await?;
        let info = self.store.group_info(id).await?;
        if role == Role::Owner {
            return Err(DomainError::Forbidden(format!(
                "you own {0}: make someone else the owner first (natter group transfer {0} USER) or delete it",
                info.name
            )));
        }
        self.apply(id, &info.name, p, GroupChange::Leave).await?;
        Ok(())
    }

    pub async fn set_role(
        &self,
        p: &Principal,
        name: &str,
        username: &str,
        role: Role,
    ) -> DomainResult<GroupInfo> {
        let (id, my_role) = self.member_group(p, name).await?;
        let info = self.store.group_info(id).await?;
        if role == Role::Owner {
            return Err(DomainError::BadRequest(format!(
                "ownership moves with `natter group transfer {} USER`",
                info.name
            )));
        }
        may_manage(my_role, &info.name, "change roles")?;
        let what = if role == Role::Admin {
            "promoted"
        } else {
            "demoted"
        };
        let (target, _) = self.target(id, &info.name, username, what).await?;
        self.apply(
            id,
            &info.name,
            p,
            GroupChange::SetRole { user: target, role },
        )
        .await?;
        Ok(self.store.group_info(id).await?)
    }

    pub async fn update_group(
        &self,
        p: &Principal,
        name: &str,
        new_name: Option<&str>,
        topic: Option<&str>,
    ) -> DomainResult<GroupInfo> {
        let (id, role) = self.member_group(p, name).await?;
        let info = self.store.group_info(id).await?;
        may_manage(role, &info.name, "change its name or topic")?;
        if let Some(topic) = topic {
            let len = topic.chars().count();
            if len > limits::MAX_TOPIC_CHARS {
                return Err(DomainError::BadRequest(format!(
                    "the topic is {len} characters; the limit is {}",
                    limits::MAX_TOPIC_CHARS
                )));
            }
            self.apply(
                id,
                &info.name,
                p,
                GroupChange::Topic {
                    topic: topic.to_owned(),
                },
            )
            .await?;
        }
        if let Some(new_name) = new_name {
            let new_name = validate::group_name(new_name.trim_start_matches('#'))?;
            let rename = GroupChange::Rename {
                name: new_name.clone(),
            };
            match self.apply(id, &info.name, p, rename).await {
                Err(DomainError::GroupTaken(_)) => return Err(DomainError::GroupTaken(new_name)),
                other => {
                    other?;
                }
            }
        }
        Ok(self.store.group_info(id).await?)
    }

    pub async fn transfer_group(
        &self,
        p: &Principal,
        name: &str,
        username: &str,
    ) -> DomainResult<GroupInfo> {
        let (id, role) = self.member_group(p, name).await?;
        let info = self.store.group_info(id).await?;
        if role != Role::Owner {
            return Err(DomainError::Forbidden(format!(
                "only the owner of {} can hand it over",
                info.name
            )));
        }
        let (target, _) = self
            .target(id, &info.name, username, "made owner twice")
            .await?;
        self.apply(id, &info.name, p, GroupChange::Transfer { to: target })
            .await?;
        Ok(self.store.group_info(id).await?)
    }

    pub async fn delete_group(&self, p: &Principal, name: &str) -> DomainResult<()> {
        let (id, role) = self.member_group(p, name).await?;
        let info = self.store.group_info(id).await?;
        if role != Role::Owner {
            return Err(DomainError::Forbidden(format!(
                "only the owner of {} can delete it",
                info.name
            )));
        }
        self.apply(id, &info.name, p, GroupChange::Delete).await?;
        Ok(())
    }
}
