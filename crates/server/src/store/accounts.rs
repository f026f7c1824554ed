//! The part of storage that manages accounts: sessions, administration and invites.

use async_trait::async_trait;
use natter_protocol::{InviteInfo, UserId};
use time::OffsetDateTime;

use super::{StoreResult, UserRecord};

/// One stored login.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: i64,
    pub device: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub token_hash: [u8; 32],
}

/// An account with what an admin needs to see.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    pub user: UserRecord,
    pub created_at: OffsetDateTime,
    pub live_sessions: u32,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub users: u64,
    pub disabled_users: u64,
    pub conversations: u64,
    pub messages: u64,
}

#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Live (unexpired) sessions of a user, newest first.
    async fn sessions(&self, user: UserId) -> StoreResult<Vec<SessionRecord>>;
    /// Deletes one session of `user`; false when it is not theirs or does not exist.
    async fn delete_session_of(&self, user: UserId, session: i64) -> StoreResult<bool>;
    async fn accounts(&self) -> StoreResult<Vec<AccountRecord>>;
    /// Disabling also deletes every session of the user.
    async fn set_disabled(&self, user: UserId, disabled: bool) -> StoreResult<()>;
    async fn set_admin(&self, user: UserId, admin: bool) -> StoreResult<()>;
    /// Sets a new password hash and deletes every session of the user.
    async fn set_password(&self, user: UserId, password_hash: &str) -> StoreResult<()>;
    /// Admins that are not disabled.
    async fn admin_count(&self) -> StoreResult<u64>;
    async fn counts(&self) -> StoreResult<Counts>;
    async fn create_invite(
        &self,
        code_hash: [u8; 32],
        created_by: UserId,
        expires_at: OffsetDateTime,
        max_uses: u32,
    ) -> StoreResult<InviteInfo>;
    async fn invites(&self) -> StoreResult<Vec<InviteInfo>>;
    async fn revoke_invite(&self, id: i64) -> StoreResult<bool>;
    /// Creates a user if the invite is live (not revoked, not expired, not used up),
    /// counting the use in the same transaction. `InvalidInvite` otherwise.
    async fn create_user_with_invite(
        &self,
        username: &str,
        password_hash: &str,
        code_hash: [u8; 32],
    ) -> StoreResult<UserRecord>;
}
