//! [`GroupStore`] for SQLite.

use async_trait::async_trait;
use natter_protocol::{ConversationId, Message, Role, TimelineEvent, UserId};
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, WriterCache, from_micros, member_ids, now_micros};
use crate::store::groups::{ChangeOutcome, GroupChange, GroupStore};
use crate::store::{Committed, CommittedMessage, SharedMessage, StoreError, StoreResult};

fn name_of(conn: &Connection, user: UserId) -> StoreResult<String> {
    Ok(conn
        .prepare_cached("SELECT username FROM users WHERE id = ?1")?
        .query_row([user], |r| r.get(0))?)
}

fn role_of(
    conn: &Connection,
    conversation: ConversationId,
    user: UserId,
) -> StoreResult<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT role FROM members WHERE conversation_id = ?1 AND user_id = ?2")?
        .query_row([conversation, user], |r| r.get(0))
        .optional()?)
}

fn set_role(
    conn: &Connection,
    conversation: ConversationId,
    user: UserId,
    role: &str,
) -> StoreResult<()> {
    let n = conn
        .prepare_cached("UPDATE members SET role = ?3 WHERE conversation_id = ?1 AND user_id = ?2")?
        .execute(params![conversation, user, role])?;
    if n == 0 {
        return Err(StoreError::NotMember);
    }
    Ok(())
}

/// Appends an event to the timeline and queues it for the members' connections.
fn record(
    conn: &Connection,
    events: &mut Vec<Committed>,
    cache: &mut WriterCache,
    conversation: ConversationId,
    actor: UserId,
    event: TimelineEvent,
) -> StoreResult<Message> {
    let now = now_micros();
    let seq = cache.next_seq(conn, conversation, now)?;
    // Unique per (sender, client id) like any message; never chosen by a client.
    let client_id = format!("event-{conversation}-{seq}");
    let text = event.describe();
    let json = serde_json::to_string(&event).map_err(|e| StoreError::Database(e.to_string()))?;
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO messages (conversation_id, seq, sender_id, client_id, text, sent_at, event)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        )?
        .query_row(params![conversation, seq, actor, client_id, text, now, json], |r| r.get(0))?;
    let message = Message {
        id,
        conversation_id: conversation,
        seq,
        sender: name_of(conn, actor)?,
        text,
        sent_at: from_micros(now),
        client_id,
        event: Some(event),
        attachments: Vec::new(),
    };
    events.push(Committed::Message(CommittedMessage {
        message: SharedMessage::new(message.clone()),
        recipients: member_ids(conn, conversation)?,
        sender: None,
    }));
    Ok(message)
}

#[async_trait]
impl GroupStore for SqliteStore {
    async fn change_group(
        &self,
        conversation: ConversationId,
        actor: UserId,
        change: GroupChange,
    ) -> StoreResult<ChangeOutcome> {
        self.write_cached(move |conn, events, cache| {
            // Any change may change who is a member: the next message reads them afresh.
            cache.forget_members(conversation);
            let by = name_of(conn, actor)?;
            let mut out = ChangeOutcome::default();
            let event = match change {
                GroupChange::Created => Some(TimelineEvent::Created { by }),
                GroupChange::Add { users, max } => {
                    let now = now_micros();
                    let mut add = conn.prepare_cached(
                        "INSERT OR IGNORE INTO members (conversation_id, user_id, role, joined_at)
                         VALUES (?1, ?2, 'member', ?3)",
                    )?;
                    for u in users {
                        if add.execute(params![conversation, u, now])? == 1 {
                            out.added.push(u);
                        }
                    }
                    let count: i64 = conn
                        .prepare_cached("SELECT COUNT(*) FROM members WHERE conversation_id = ?1")?
                        .query_row([conversation], |r| r.get(0))?;
                    if count as usize > max {
                        return Err(StoreError::GroupFull(max));
                    }
                    // One event per added member, so each shows in the timeline.
                    for u in out.added.clone() {
                        let user = name_of(conn, u)?;
                        record(conn, events, cache, conversation, actor, TimelineEvent::MemberAdded { by: by.clone(), user })?;
                    }
                    None
                }
                GroupChange::Remove { user } | GroupChange::Transfer { to: user }
                    if role_of(conn, conversation, user)?.is_none() =>
                {
                    return Err(StoreError::NotMember);
                }
                GroupChange::Remove { user } => {
                    let name = name_of(conn, user)?;
                    conn.prepare_cached("DELETE FROM members WHERE conversation_id = ?1 AND user_id = ?2")?
                        .execute([conversation, user])?;
                    out.removed.push(user);
                    Some(TimelineEvent::MemberRemoved { by, user: name })
                }
                GroupChange::Leave => {
                    let n = conn
                        .prepare_cached("DELETE FROM members WHERE conversation_id = ?1 AND user_id = ?2")?
                        .execute([conversation, actor])?;
                    if n == 0 {
                        return Err(StoreError::NotMember);
                    }
                    out.removed.push(actor);
                    Some(TimelineEvent::MemberLeft { user: by })
                }
                GroupChange::SetRole { user, role } => {
                    let name = name_of(conn, user)?;
                    let current = role_of(conn, conversation, user)?.ok_or(StoreError::NotMember)?;
                    let want = role.as_str();
                    if current == want {
                        None
                    } else {
                        set_role(conn, conversation, user, want)?;
                        Some(if role == Role::Admin {
                            TimelineEvent::Promoted { by, user: name }
                        } else {
                            TimelineEvent::Demoted { by, user: name }
                        })
                    }
                }
                GroupChange::Rename { name } => {
                    let from: String = conn
                        .prepare_cached("SELECT name FROM conversations WHERE id = ?1")?
                        .query_row([conversation], |r| r.get(0))?;
                    if from == name {
                        None
                    } else {
                        let taken: bool = conn
                            .prepare_cached("SELECT EXISTS(SELECT 1 FROM conversations WHERE name = ?1)")?
                            .query_row([&name], |r| r.get(0))?;
                        if taken {
                            return Err(StoreError::NameTaken);
                        }
                        conn.prepare_cached("UPDATE conversations SET name = ?2 WHERE id = ?1")?
                            .execute(params![conversation, name])?;
                        Some(TimelineEvent::Renamed { by, from, to: name })
                    }
                }
                GroupChange::Topic { topic } => {
                    conn.prepare_cached("UPDATE conversations SET topic = ?2 WHERE id = ?1")?
                        .execute(params![conversation, topic])?;
                    Some(TimelineEvent::TopicChanged { by, topic })
                }
                GroupChange::Transfer { to } => {
                    let name = name_of(conn, to)?;
                    conn.prepare_cached(
                        "UPDATE members SET role = 'admin' WHERE conversation_id = ?1 AND role = 'owner'",
                    )?
                    .execute([conversation])?;
                    set_role(conn, conversation, to, "owner")?;
                    Some(TimelineEvent::OwnerChanged { from: by, to: name })
                }
                GroupChange::Delete => {
                    out.removed = member_ids(conn, conversation)?;
                    for table in ["markers", "mutes", "messages", "members"] {
                        conn.execute(&format!("DELETE FROM {table} WHERE conversation_id = ?1"), [conversation])?;
                    }
                    conn.prepare_cached("DELETE FROM conversations WHERE id = ?1")?.execute([conversation])?;
                    cache.forget_conversation(conversation);
                    None
                }
            };
            if let Some(event) = event {
                out.event = Some(record(conn, events, cache, conversation, actor, event)?);
            }
            Ok(out)
        })
        .await
    }
}
