//! Group moderation in storage: every change is applied together with its timeline
//! event, in one transaction, so a change and its record never part.

use async_trait::async_trait;
use natter_protocol::{ConversationId, Message, Role, UserId};

use super::StoreResult;

/// One change to a group.
#[derive(Debug, Clone)]
pub enum GroupChange {
    /// The group was just created (with its first members).
    Created,
    /// Adds users (skipping current members); refused with `GroupFull` past `max`.
    Add {
        users: Vec<UserId>,
        max: usize,
    },
    Remove {
        user: UserId,
    },
    Leave,
    SetRole {
        user: UserId,
        role: Role,
    },
    Rename {
        name: String,
    },
    Topic {
        topic: String,
    },
    /// Makes `to` the owner; the old owner becomes an admin.
    Transfer {
        to: UserId,
    },
    /// Deletes the group, its members and its timeline.
    Delete,
}

/// What a change did.
#[derive(Debug, Clone, Default)]
pub struct ChangeOutcome {
    pub added: Vec<UserId>,
    /// Users who lost access (removed, left, or everyone when the group was deleted).
    pub removed: Vec<UserId>,
    /// The timeline entry recorded for the change (none for a deletion or a no-op).
    pub event: Option<Message>,
}

#[async_trait]
pub trait GroupStore: Send + Sync + 'static {
    /// Applies `change` made by `actor` and records it in the timeline. Authorization is
    /// the domain's job; this only keeps the data consistent (`NameTaken` on a rename to
    /// a taken name, `NotMember` when a target is not a member, `GroupFull`).
    async fn change_group(
        &self,
        conversation: ConversationId,
        actor: UserId,
        change: GroupChange,
    ) -> StoreResult<ChangeOutcome>;
}
