//! The domain: typed operations on accounts, conversations and messages, with every
//! authorization check. It knows nothing of HTTP or WebSockets; the transport layer
//! turns requests into calls here and [`DomainError`]s into wire errors.

mod admin;
mod auth;
pub mod files;
pub mod gate;
mod groups;
mod live;

use std::sync::Arc;

use natter_protocol::validate::{self, ValidationError};
use natter_protocol::{
    AuthResponse, ConversationId, ConversationInfo, ConversationKind, ErrorCode, GroupInfo,
    HistoryPage, MessageId, Role, ServerFrame, SyncPage, UserId, UserInfo, limits,
};
use tokio::sync::mpsc;

use crate::config::{Config, Registration};
use crate::hub::{Bus, Delivery, Outbound};
use crate::store::{Committed, MembershipChange, Store, StoreError, Stored};

pub use auth::{hash_token, new_token};
pub use gate::Gate;
pub use live::{
    DEFAULT_PRESENCE_PUSH_MAX_MEMBERS, Live, LiveConfig, LiveStats, PresenceGuard, run_ticks,
};

/// The authenticated caller of an operation.
#[derive(Debug, Clone)]
pub struct Principal {
    pub id: UserId,
    pub username: String,
    pub is_admin: bool,
}

impl Principal {
    pub fn info(&self) -> UserInfo {
        UserInfo {
            id: self.id,
            username: self.username.clone(),
            is_admin: self.is_admin,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    #[error("{0}")]
    BadRequest(String),
    #[error("not logged in or the session has expired: log in again")]
    Unauthorized,
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("registration is closed on this server: ask its admin for an account")]
    RegistrationClosed,
    #[error("username {0} is taken")]
    UsernameTaken(String),
    #[error("a group named {0} already exists")]
    GroupTaken(String),
    #[error("no user named {0}")]
    UnknownUser(String),
    #[error("you are not a member of group {0}")]
    NotGroupMember(String),
    #[error("you are not a member of conversation {0}")]
    NotMember(ConversationId),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    /// A download range outside the file (its size).
    #[error("the requested range is outside the file's {0} bytes")]
    RangeNotSatisfiable(u64),
    #[error("group {name} would have more than {max} members")]
    GroupFull { name: String, max: usize },
    #[error("the server cannot store data right now; nothing was stored: try again later")]
    StorageUnavailable,
    #[error("{0}")]
    RateLimited(String),
    #[error("too many {what}: try again in {}s", retry_after.as_secs().max(1))]
    Throttled {
        what: &'static str,
        retry_after: std::time::Duration,
    },
    #[error("internal error")]
    Internal(String),
}

impl DomainError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DomainError::Invalid(ValidationError::MessageTooLarge { .. }) => {
                ErrorCode::MessageTooLarge
            }
            DomainError::Invalid(_) | DomainError::BadRequest(_) => ErrorCode::BadRequest,
            DomainError::Unauthorized => ErrorCode::Unauthorized,
            DomainError::InvalidCredentials => ErrorCode::InvalidCredentials,
            DomainError::RegistrationClosed => ErrorCode::RegistrationClosed,
            DomainError::UsernameTaken(_) | DomainError::GroupTaken(_) => ErrorCode::NameTaken,
            DomainError::UnknownUser(_) => ErrorCode::UnknownUser,
            DomainError::NotGroupMember(_) | DomainError::NotMember(_) => ErrorCode::NotMember,
            DomainError::Forbidden(_) => ErrorCode::Forbidden,
            DomainError::NotFound(_) => ErrorCode::NotFound,
            DomainError::GroupFull { .. } => ErrorCode::GroupFull,
            DomainError::TooLarge(_) => ErrorCode::PayloadTooLarge,
            DomainError::RangeNotSatisfiable(_) => ErrorCode::BadRequest,
            DomainError::StorageUnavailable => ErrorCode::StorageUnavailable,
            DomainError::RateLimited(_) => ErrorCode::RateLimited,
            DomainError::Throttled { .. } => ErrorCode::RateLimited,
            DomainError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::error!(%detail, "storage unavailable");
                DomainError::StorageUnavailable
            }
            other => DomainError::Internal(other.to_string()),
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;

/// Limits the domain enforces, taken from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_group_members: usize,
    pub registration: Registration,
    pub token_ttl: time::Duration,
    pub gate: Arc<Gate>,
    /// For storage figures in the admin stats.
    pub data_dir: std::path::PathBuf,
}

impl From<&Config> for Limits {
    fn from(c: &Config) -> Self {
        Limits {
            max_message_bytes: c.max_message_bytes,
            max_group_members: c.max_group_members,
            registration: c.registration,
            token_ttl: time::Duration::days(i64::from(c.token_ttl_days)),
            gate: Arc::new(Gate::new(c)),
            data_dir: c.resolved_data_dir().unwrap_or_default(),
        }
    }
}

pub struct Domain {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub limits: Limits,
    /// Presence and typing (memory only).
    pub live: Arc<Live>,
    /// File contents and upload limits.
    pub files: files::Files,
}

/// Serializes a server frame once for any number of recipients.
pub fn outbound(frame: &ServerFrame) -> Outbound {
    let message_id = match frame {
        ServerFrame::Message { message } => message.id,
        _ => 0,
    };
    Outbound::text(&frame.encode(), message_id)
}

/// Delivers committed messages to their recipients, in commit order, ending the sender's
/// typing indicator first. Runs until the store's writer goes away.
///
/// Each batch is what one transaction committed: every message is serialized once, then
/// all of them are queued in one pass, so a connection is woken once per batch and
/// writes the whole batch with one flush.
pub async fn fan_out(
    mut committed: mpsc::Receiver<Vec<Committed>>,
    bus: Arc<dyn Bus>,
    live: Arc<Live>,
) {
    while let Some(batch) = committed.recv().await {
        let mut deliveries = Vec::with_capacity(batch.len());
        for c in batch {
            match c {
                Committed::Message(c) => {
                    if let Some(sender) = c.sender {
                        live.message_sent(c.message.conversation_id, sender);
                    }
                    deliveries.push(Delivery {
                        frame: Outbound::text_parts(
                            &natter_protocol::message_frame_from_json(c.message.json()),
                            c.message.id,
                        ),
                        users: c.recipients,
                    });
                }
                Committed::Receipts(receipts) => {
                    for (author, receipt) in receipts {
                        deliveries.push(Delivery {
                            frame: outbound(&ServerFrame::Receipt { receipt }),
                            users: vec![author],
                        });
                    }
                }
            }
        }
        bus.publish_all(deliveries);
    }
}

impl Domain {
    // ----- accounts -----

    pub async fn register(
        &self,
        username: &str,
        password: &str,
        invite: Option<&str>,
        ip: Option<std::net::IpAddr>,
    ) -> DomainResult<AuthResponse> {
        if self.limits.registration == Registration::Closed {
            return Err(DomainError::RegistrationClosed);
        }
        self.limits.gate.register(ip)?;
        // The very first account (the server admin) needs no invite: nobody could make one.
        if self.limits.registration == Registration::Invite && self.store.counts().await?.users > 0
        {
            let Some(code) = invite.map(str::trim).filter(|c| !c.is_empty()) else {
                return Err(DomainError::Forbidden(
                    "this server registers by invite only: ask an admin for a code and use \
                     `natter register USER --invite CODE`"
                        .into(),
                ));
            };
            return self.create_account(username, password, Some(code)).await;
        }
        self.create_account(username, password, None).await
    }

    pub async fn login(
        &self,
        username: &str,
        password: &str,
        device: Option<String>,
        ip: Option<std::net::IpAddr>,
    ) -> DomainResult<AuthResponse> {
        self.limits.gate.login(ip, &username.to_ascii_lowercase())?;
        let user = match validate::username(username) {
            Ok(name) => self.store.user_by_name(&name).await?,
            Err(_) => None,
        };
        // Verify against a dummy hash for unknown users so timing does not tell.
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let ok = auth::verify_password(password.to_owned(), hash).await?;
        let user = match user {
            Some(u) if ok && !u.disabled => u,
            _ => return Err(DomainError::InvalidCredentials),
        };
        let principal = Principal {
            id: user.id,
            username: user.username,
            is_admin: user.is_admin,
        };
        let device = device.map(|d| d.chars().take(64).collect());
        self.issue_token(principal, device).await
    }

    async fn issue_token(
        &self,
        principal: Principal,
        device: Option<String>,
    ) -> DomainResult<AuthResponse> {
        let token = new_token();
        let expires = time::OffsetDateTime::now_utc() + self.limits.token_ttl;
        self.store
            .create_session(principal.id, hash_token(&token), device, expires)
            .await?;
        Ok(AuthResponse {
            token,
            user: principal.info(),
        })
    }

    pub async fn authenticate(&self, token: &str) -> DomainResult<Principal> {
        match self.store.session_user(hash_token(token)).await? {
            Some(u) if !u.disabled => Ok(Principal {
                id: u.id,
                username: u.username,
                is_admin: u.is_admin,
            }),
            _ => Err(DomainError::Unauthorized),
        }
    }

    pub async fn logout(&self, token: &str) -> DomainResult<()> {
        Ok(self.store.delete_session(hash_token(token)).await?)
    }

    pub async fn user(&self, username: &str) -> DomainResult<UserInfo> {
        let name = validate::username(username)?;
        let u = self
            .store
            .user_by_name(&name)
            .await?
            .ok_or(DomainError::UnknownUser(name))?;
        Ok(UserInfo {
            id: u.id,
            username: u.username,
            is_admin: u.is_admin,
        })
    }

    async fn user_id(&self, username: &str) -> DomainResult<UserId> {
        let name = validate::username(username.trim_start_matches('@'))?;
        match self.store.user_by_name(&name).await? {
            Some(u) if !u.disabled => Ok(u.id),
            _ => Err(DomainError::UnknownUser(name)),
        }
    }

    // ----- conversations -----

    pub async fn conversations(&self, p: &Principal) -> DomainResult<Vec<ConversationInfo>> {
        Ok(self.store.conversations(p.id).await?)
    }

    pub async fn conversation(
        &self,
        p: &Principal,
        id: ConversationId,
    ) -> DomainResult<ConversationInfo> {
        self.store
            .conversation(p.id, id)
            .await?
            .ok_or(DomainError::NotMember(id))
    }

    pub async fn open_direct(
        &self,
        p: &Principal,
        username: &str,
    ) -> DomainResult<ConversationInfo> {
        let other = self.user_id(username).await?;
        let id = self.store.open_direct(p.id, other).await?;
        self.conversation(p, id).await
    }

    /// The group's id when the caller is a member; otherwise the same refusal whether or
    /// not the group exists.
    async fn member_group(
        &self,
        p: &Principal,
        name: &str,
    ) -> DomainResult<(ConversationId, Role)> {
        let name = validate::group_name(name.trim_start_matches('#'))?;
        if let Some(id) = self.store.group_id(&name).await?
            && let Some(role) = self.store.role(id, p.id).await?
        {
            return Ok((id, role));
        }
        Err(DomainError::NotGroupMember(name))
    }

    pub async fn groups(&self, p: &Principal) -> DomainResult<Vec<GroupInfo>> {
        let mut out = Vec::new();
        for c in self.store.conversations(p.id).await? {
            if c.kind == ConversationKind::Group {
                out.push(self.store.group_info(c.id).await?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub async fn group_info(&self, p: &Principal, name: &str) -> DomainResult<GroupInfo> {
        let (id, _) = self.member_group(p, name).await?;
        Ok(self.store.group_info(id).await?)
    }

    /// Tells added members about their new conversation and removed ones that it is gone.
    async fn announce(&self, change: MembershipChange) {
        for user in &change.added {
            if let Ok(Some(conversation)) =
                self.store.conversation(*user, change.conversation_id).await
            {
                self.bus.publish(
                    &[*user],
                    outbound(&ServerFrame::Conversation { conversation }),
                );
            }
        }
        if !change.removed.is_empty() {
            let frame = outbound(&ServerFrame::Removed {
                conversation_id: change.conversation_id,
            });
            self.bus.publish(&change.removed, frame);
        }
    }

    // ----- messages -----

    /// Stores a message. The answer is the message as its deliveries share it, JSON and
    /// all (the WebSocket's ack embeds the same object); REST answers with it as a
    /// [`natter_protocol::SendAck`].
    pub async fn send(
        &self,
        p: &Principal,
        conversation: ConversationId,
        client_id: &str,
        text: &str,
        attachments: &[String],
    ) -> DomainResult<Stored> {
        validate::client_id(client_id)?;
        validate::message(text, attachments.len(), self.limits.max_message_bytes)?;
        self.limits.gate.send(p.id)?;
        match self
            .store
            .insert_message(p.id, conversation, client_id, text, attachments)
            .await
        {
            Ok(stored) => Ok(stored),
            Err(StoreError::NotMember) => Err(DomainError::NotMember(conversation)),
            Err(StoreError::UnknownAttachment(id)) => Err(DomainError::NotFound(format!(
                "no upload with id {} of yours: upload the file first",
                natter_protocol::sanitize::single_line(&id)
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn history(
        &self,
        p: &Principal,
        conversation: ConversationId,
        before: Option<i64>,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> DomainResult<HistoryPage> {
        let limit = page_limit(limit)?;
        self.require_member(p, conversation).await?;
        Ok(self
            .store
            .history(conversation, before, after, limit)
            .await?)
    }

    pub async fn sync(
        &self,
        p: &Principal,
        after: MessageId,
        limit: Option<u32>,
    ) -> DomainResult<SyncPage> {
        let limit = page_limit(limit)?;
        Ok(self.store.sync(p.id, after, limit).await?)
    }

    pub async fn head(&self, p: &Principal) -> DomainResult<MessageId> {
        Ok(self.store.head(p.id).await?)
    }

    async fn require_member(
        &self,
        p: &Principal,
        conversation: ConversationId,
    ) -> DomainResult<()> {
        match self.store.role(conversation, p.id).await? {
            Some(_) => Ok(()),
            None => Err(DomainError::NotMember(conversation)),
        }
    }
}

fn page_limit(limit: Option<u32>) -> DomainResult<u32> {
    let limit = limit.unwrap_or(limits::DEFAULT_HISTORY_LIMIT);
    if !(1..=limits::MAX_HISTORY_LIMIT).contains(&limit) {
        return Err(DomainError::BadRequest(format!(
            "limit must be between 1 and {}",
            limits::MAX_HISTORY_LIMIT
        )));
    }
    Ok(limit)
}
