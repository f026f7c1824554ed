//! Account management: the caller's own sessions, registration by invite, and server
//! administration (server admins only).

use natter_protocol::validate;
use natter_protocol::{AdminUser, AuthResponse, InviteInfo, ServerStats, SessionInfo, UserId};

use super::{Domain, DomainError, DomainResult, Principal, auth, hash_token, new_token};
use crate::store::StoreError;

/// Invites last a week unless the admin says otherwise.
const DEFAULT_INVITE_SECS: u64 = 7 * 24 * 3600;
/// The longest an invite may live: a year.
const MAX_INVITE_SECS: u64 = 365 * 24 * 3600;

fn forbidden(what: &str) -> DomainError {
    DomainError::Forbidden(format!("only server admins can {what}"))
}

impl Domain {
    /// Creates an account (with an invite code when registration needs one, counting its
    /// use in the same transaction) and logs it in.
    pub(super) async fn create_account(
        &self,
        username: &str,
        password: &str,
        invite: Option<&str>,
    ) -> DomainResult<AuthResponse> {
        let username = validate::username(username)?;
        validate::password(password)?;
        if self.store.user_by_name(&username).await?.is_some() {
            return Err(DomainError::UsernameTaken(username));
        }
        let hash = auth::hash_password(password.to_owned()).await?;
        let created = match invite {
            Some(code) => {
                self.store
                    .create_user_with_invite(&username, &hash, hash_token(code))
                    .await
            }
            None => self.store.create_user(&username, &hash).await,
        };
        let user = match created {
            Err(StoreError::NameTaken) => return Err(DomainError::UsernameTaken(username)),
            Err(StoreError::InvalidInvite) => {
                return Err(DomainError::Forbidden(
                    "the invite code is unknown, expired, revoked or used up: ask an admin for a new one"
                        .into(),
                ));
            }
            other => other?,
        };
        let principal = Principal {
            id: user.id,
            username: user.username,
            is_admin: user.is_admin,
        };
        self.issue_token(principal, Some("registration".into()))
            .await
    }

    // ----- the caller's sessions -----

    pub async fn sessions(
        &self,
        p: &Principal,
        current_token: &str,
    ) -> DomainResult<Vec<SessionInfo>> {
        let current = hash_token(current_token);
        Ok(self
            .store
            .sessions(p.id)
            .await?
            .into_iter()
            .map(|s| SessionInfo {
                id: s.id,
                device: s.device,
                created_at: s.created_at,
                expires_at: s.expires_at,
                current: s.token_hash == current,
            })
            .collect())
    }

    pub async fn revoke_session(&self, p: &Principal, id: i64) -> DomainResult<()> {
        if self.store.delete_session_of(p.id, id).await? {
            Ok(())
        } else {
            Err(DomainError::NotFound(format!("you have no session {id}")))
        }
    }

    // ----- administration -----

    async fn account_id(&self, username: &str) -> DomainResult<(UserId, bool)> {
        let name = validate::username(username.trim_start_matches('@'))?;
        let u = self
            .store
            .user_by_name(&name)
            .await?
            .ok_or(DomainError::UnknownUser(name))?;
        Ok((u.id, u.is_admin))
    }

    pub async fn admin_users(&self, p: &Principal) -> DomainResult<Vec<AdminUser>> {
        if !p.is_admin {
            return Err(forbidden("list accounts"));
        }
        Ok(self
            .store
            .accounts()
            .await?
            .into_iter()
            .map(|a| AdminUser {
                connections: self.bus.connections(Some(a.user.id)) as u32,
                id: a.user.id,
                username: a.user.username,
                is_admin: a.user.is_admin,
                disabled: a.user.disabled,
                created_at: a.created_at,
                sessions: a.live_sessions,
            })
            .collect())
    }

    /// Disables (revoking every session and closing every socket at once) or enables an
    /// account.
    pub async fn set_disabled(
        &self,
        p: &Principal,
        username: &str,
        disabled: bool,
    ) -> DomainResult<()> {
        if !p.is_admin {
            return Err(forbidden("disable or enable accounts"));
        }
        let (id, is_admin) = self.account_id(username).await?;
        if disabled && id == p.id {
            return Err(DomainError::Forbidden(
                "you cannot disable your own account".into(),
            ));
        }
        if disabled && is_admin && self.store.admin_count().await? <= 1 {
            return Err(DomainError::Forbidden(
                "that is the last server admin".into(),
            ));
        }
        self.store.set_disabled(id, disabled).await?;
        if disabled {
            self.bus.disconnect_user(id);
        }
        Ok(())
    }

    /// Sets a new password and revokes every session of the account.
    pub async fn reset_password(
        &self,
        p: &Principal,
        username: &str,
        password: &str,
    ) -> DomainResult<()> {
        if !p.is_admin {
            return Err(forbidden("reset passwords"));
        }
        let (id, _) = self.account_id(username).await?;
        validate::password(password)?;
        let hash = auth::hash_password(password.to_owned()).await?;
        self.store.set_password(id, &hash).await?;
        self.bus.disconnect_user(id);
        Ok(())
    }

    pub async fn set_admin(&self, p: &Principal, username: &str, admin: bool) -> DomainResult<()> {
        if !p.is_admin {
            return Err(forbidden("grant or revoke admin rights"));
        }
        let (id, is_admin) = self.account_id(username).await?;
        if !admin && is_admin && self.store.admin_count().await? <= 1 {
            return Err(DomainError::Forbidden(
                "that is the last server admin: make someone else admin first".into(),
            ));
        }
        Ok(self.store.set_admin(id, admin).await?)
    }

    pub async fn stats(&self, p: &Principal) -> DomainResult<ServerStats> {
        if !p.is_admin {
            return Err(forbidden("see server statistics"));
        }
        let counts = self.store.counts().await?;
        let dir = &self.limits.data_dir;
        let storage_bytes = ["natter.db", "natter.db-wal", "natter.db-shm"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
            .map(|m| m.len())
            .sum();
        Ok(ServerStats {
            users: counts.users,
            disabled_users: counts.disabled_users,
            conversations: counts.conversations,
            messages: counts.messages,
            connections: self.bus.connections(None) as u64,
            storage_bytes,
        })
    }

    pub async fn create_invite(
        &self,
        p: &Principal,
        uses: Option<u32>,
        expires_in_secs: Option<u64>,
    ) -> DomainResult<InviteInfo> {
        if !p.is_admin {
            return Err(forbidden("create invites"));
        }
        let uses = uses.unwrap_or(1);
        if !(1..=10_000).contains(&uses) {
            return Err(DomainError::BadRequest(
                "uses must be between 1 and 10000".into(),
            ));
        }
        let secs = expires_in_secs.unwrap_or(DEFAULT_INVITE_SECS);
        if !(1..=MAX_INVITE_SECS).contains(&secs) {
            return Err(DomainError::BadRequest(
                "an invite may live from 1 second to 365 days".into(),
            ));
        }
        let code = new_token()[..32].to_owned();
        let expires = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs as i64);
        let mut info = self
            .store
            .create_invite(hash_token(&code), p.id, expires, uses)
            .await?;
        info.code = Some(code);
        Ok(info)
    }

    pub async fn invites(&self, p: &Principal) -> DomainResult<Vec<InviteInfo>> {
        if !p.is_admin {
            return Err(forbidden("list invites"));
        }
        Ok(self.store.invites().await?)
    }

    pub async fn revoke_invite(&self, p: &Principal, id: i64) -> DomainResult<()> {
        if !p.is_admin {
            return Err(forbidden("revoke invites"));
        }
        if self.store.revoke_invite(id).await? {
            Ok(())
        } else {
            Err(DomainError::NotFound(format!("no live invite {id}")))
        }
    }
}
