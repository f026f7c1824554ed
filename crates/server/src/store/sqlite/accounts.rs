//! [`AccountStore`] for SQLite.

use async_trait::async_trait;
use natter_protocol::{InviteInfo, UserId};
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use super::{SqliteStore, from_micros, now_micros, user_from_row};
use crate::store::accounts::{AccountRecord, AccountStore, Counts, SessionRecord};
use crate::store::{StoreError, StoreResult, UserRecord};

fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

fn invite_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<InviteInfo> {
    Ok(InviteInfo {
        id: row.get(0)?,
        code: None,
        created_by: row.get(1)?,
        created_at: from_micros(row.get(2)?),
        expires_at: from_micros(row.get(3)?),
        max_uses: row.get(4)?,
        uses: row.get(5)?,
        revoked: row.get(6)?,
    })
}

const INVITE_COLUMNS: &str =
    "i.id, u.username, i.created_at, i.expires_at, i.max_uses, i.uses, i.revoked";

/// Inserts a user; the first one ever becomes a server admin.
pub(super) fn insert_user(
    conn: &Connection,
    username: &str,
    hash: &str,
) -> StoreResult<UserRecord> {
    let exists: bool = conn
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM users WHERE username = ?1)")?
        .query_row([username], |r| r.get(0))?;
    if exists {
        return Err(StoreError::NameTaken);
    }
    let first: bool = conn.query_row("SELECT NOT EXISTS(SELECT 1 FROM users)", [], |r| r.get(0))?;
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO users (username, password_hash, is_admin, created_at)
             VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )?
        .query_row(params![username, hash, first, now_micros()], |r| r.get(0))?;
    Ok(UserRecord {
        id,
        username: username.to_owned(),
        password_hash: hash.to_owned(),
        is_admin: first,
        disabled: false,
    })
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn sessions(&self, user: UserId) -> StoreResult<Vec<SessionRecord>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, device, created_at, expires_at, token_hash FROM sessions
                 WHERE user_id = ?1 AND expires_at > ?2 ORDER BY id DESC",
            )?;
            let rows = stmt.query_map(params![user, now_micros()], |r| {
                let hash: Vec<u8> = r.get(4)?;
                let mut token_hash = [0u8; 32];
                if hash.len() == 32 {
                    token_hash.copy_from_slice(&hash);
                }
                Ok(SessionRecord {
                    id: r.get(0)?,
                    device: r.get(1)?,
                    created_at: from_micros(r.get(2)?),
                    expires_at: from_micros(r.get(3)?),
                    token_hash,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delete_session_of(&self, user: UserId, session: i64) -> StoreResult<bool> {
        self.write(move |conn, _| {
            Ok(conn
                .prepare_cached("DELETE FROM sessions WHERE id = ?1 AND user_id = ?2")?
                .execute([session, user])?
                == 1)
        })
        .await
    }

    async fn accounts(&self) -> StoreResult<Vec<AccountRecord>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT u.id, u.username, u.password_hash, u.is_admin, u.disabled, u.created_at,
                        (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.expires_at > ?1)
                 FROM users u ORDER BY u.username",
            )?;
            let rows = stmt.query_map([now_micros()], |r| {
                Ok(AccountRecord {
                    user: user_from_row(r)?,
                    created_at: from_micros(r.get(5)?),
                    live_sessions: r.get::<_, i64>(6)? as u32,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn set_disabled(&self, user: UserId, disabled: bool) -> StoreResult<()> {
        self.write_cached(move |conn, _, cache| {
            // Membership rows stay, but nothing cached about the account outlives this.
            cache.clear();
            conn.prepare_cached("UPDATE users SET disabled = ?2 WHERE id = ?1")?
                .execute(params![user, disabled])?;
            if disabled {
                conn.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
                    .execute([user])?;
            }
            Ok(())
        })
        .await
    }

    async fn set_admin(&self, user: UserId, admin: bool) -> StoreResult<()> {
        self.write(move |conn, _| {
            conn.prepare_cached("UPDATE users SET is_admin = ?2 WHERE id = ?1")?
                .execute(params![user, admin])?;
            Ok(())
        })
        .await
    }

    async fn set_password(&self, user: UserId, password_hash: &str) -> StoreResult<()> {
        let hash = password_hash.to_owned();
        self.write(move |conn, _| {
            conn.prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")?
                .execute(params![user, hash])?;
            conn.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
                .execute([user])?;
            Ok(())
        })
        .await
    }

    async fn admin_count(&self) -> StoreResult<u64> {
        self.read(move |conn| {
            Ok(conn.query_row(
                "SELECT COUNT(*) FROM users WHERE is_admin = 1 AND disabled = 0",
                [],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
        .await
    }

    async fn counts(&self) -> StoreResult<Counts> {
        self.read(move |conn| {
            Ok(conn.query_row(
                "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM users WHERE disabled = 1),
                        (SELECT COUNT(*) FROM conversations), (SELECT COUNT(*) FROM messages)",
                [],
                |r| {
                    Ok(Counts {
                        users: r.get::<_, i64>(0)? as u64,
                        disabled_users: r.get::<_, i64>(1)? as u64,
                        conversations: r.get::<_, i64>(2)? as u64,
                        messages: r.get::<_, i64>(3)? as u64,
                    })
                },
            )?)
        })
        .await
    }

    async fn create_invite(
        &self,
        code_hash: [u8; 32],
        created_by: UserId,
        expires_at: OffsetDateTime,
        max_uses: u32,
    ) -> StoreResult<InviteInfo> {
        self.write(move |conn, _| {
            let id: i64 = conn
                .prepare_cached(
                    "INSERT INTO invites (code_hash, created_by, created_at, expires_at, max_uses)
                     VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                )?
                .query_row(
                    params![&code_hash[..], created_by, now_micros(), micros(expires_at), max_uses],
                    |r| r.get(0),
                )?;
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {INVITE_COLUMNS} FROM invites i JOIN users u ON u.id = i.created_by WHERE i.id = ?1"
                ))?
                .query_row([id], invite_from_row)?)
        })
        .await
    }

    async fn invites(&self) -> StoreResult<Vec<InviteInfo>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {INVITE_COLUMNS} FROM invites i JOIN users u ON u.id = i.created_by ORDER BY i.id"
            ))?;
            let rows = stmt.query_map([], invite_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn revoke_invite(&self, id: i64) -> StoreResult<bool> {
        self.write(move |conn, _| {
            Ok(conn
                .prepare_cached("UPDATE invites SET revoked = 1 WHERE id = ?1 AND revoked = 0")?
                .execute([id])?
                == 1)
        })
        .await
    }

    async fn create_user_with_invite(
        &self,
        username: &str,
        password_hash: &str,
        code_hash: [u8; 32],
    ) -> StoreResult<UserRecord> {
        let (username, hash) = (username.to_owned(), password_hash.to_owned());
        self.write(move |conn, _| {
            let invite: Option<i64> = conn
                .prepare_cached(
                    "SELECT id FROM invites
                     WHERE code_hash = ?1 AND revoked = 0 AND expires_at > ?2 AND uses < max_uses",
                )?
                .query_row(params![&code_hash[..], now_micros()], |r| r.get(0))
                .optional()?;
            let Some(invite) = invite else {
                return Err(StoreError::InvalidInvite);
            };
            let user = insert_user(conn, &username, &hash)?;
            conn.prepare_cached("UPDATE invites SET uses = uses + 1 WHERE id = ?1")?
                .execute([invite])?;
            Ok(user)
        })
        .await
    }
}
