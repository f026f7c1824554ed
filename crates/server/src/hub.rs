//! The local fan-out hub: which connections each user has open on this node, each with a
//! bounded outbound queue.
//!
//! A frame is serialized once and its bytes shared by every recipient. When a
//! connection's queue is full the connection is kicked (closed with a reason telling the
//! client to resume), never buffered without bound and never silently skipped.
//!
//! [`Bus`] is the seam for running several nodes: the local implementation hands frames
//! straight to this node's hub; a NATS-backed one would publish them to every node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::ws::Utf8Bytes;
use natter_protocol::{MessageId, UserId};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// One frame ready to write.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub text: Utf8Bytes,
    /// For `message` frames, the message id, so a connection that is replaying can drop
    /// live copies of what it already sent. 0 for other frames.
    pub message_id: MessageId,
}

struct Entry {
    id: u64,
    tx: mpsc::Sender<Outbound>,
    kick: Arc<Notify>,
    kick_reason: Arc<AtomicU8>,
}

/// Why a connection was kicked (see [`Registration::kick_reason`]).
pub const KICK_SLOW: u8 = 0;
/// The account was disabled (or its sessions revoked) by an admin.
pub const KICK_DISABLED: u8 = 1;

pub struct Hub {
    conns: RwLock<HashMap<UserId, Vec<Entry>>>,
    next_id: AtomicU64,
    capacity: usize,
    /// Cancelled when the server shuts down: every connection says goodbye.
    pub shutdown: CancellationToken,
}

/// A registered connection. Dropping it unregisters.
pub struct Registration {
    hub: Arc<Hub>,
    user: UserId,
    id: u64,
    pub rx: mpsc::Receiver<Outbound>,
    /// A clone of this connection's own queue, for answers to its requests.
    pub tx: mpsc::Sender<Outbound>,
    /// Notified when this connection was dropped from the hub: too slow, or its account
    /// was disabled ([`Registration::kick_reason`] says which).
    pub kicked: Arc<Notify>,
    pub kick_reason: Arc<AtomicU8>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.user, self.id);
    }
}

impl Hub {
    pub fn new(capacity: usize) -> Arc<Hub> {
        Arc::new(Hub {
            conns: RwLock::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            capacity,
            shutdown: CancellationToken::new(),
        })
    }

    pub fn register(self: &Arc<Self>, user: UserId) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.capacity);
        let kick = Arc::new(Notify::new());
        let kick_reason = Arc::new(AtomicU8::new(KICK_SLOW));
        self.conns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(user)
            .or_default()
            .push(Entry {
                id,
                tx: tx.clone(),
                kick: kick.clone(),
                kick_reason: kick_reason.clone(),
            });
        Registration {
            hub: self.clone(),
            user,
            id,
            rx,
            tx,
            kicked: kick,
            kick_reason,
        }
    }

    fn unregister(&self, user: UserId, id: u64) {
        let mut conns = self.conns.write().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = conns.get_mut(&user) {
            list.retain(|e| e.id != id);
            if list.is_empty() {
                conns.remove(&user);
            }
        }
    }

    /// Queues `frame` for every connection of every user in `users`. Connections whose
    /// queue is full are kicked and dropped from the hub.
    pub fn deliver(&self, users: &[UserId], frame: &Outbound) {
        let mut slow: Vec<(UserId, u64)> = Vec::new();
        {
            let conns = self.conns.read().unwrap_or_else(|e| e.into_inner());
            for user in users {
                let Some(list) = conns.get(user) else {
                    continue;
                };
                for entry in list {
                    match entry.tx.try_send(frame.clone()) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            entry.kick.notify_one();
                            slow.push((*user, entry.id));
                        }
                        // The connection is closing; its registration removes it.
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
            }
        }
        for (user, id) in slow {
            tracing::info!(user, conn = id, "slow consumer disconnected");
            self.unregister(user, id);
        }
    }

    pub fn is_online(&self, user: UserId) -> bool {
        self.conns
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&user)
    }

    /// Closes every connection of `user` on this node at once (account disabled).
    pub fn disconnect_user(&self, user: UserId) {
        let removed = self
            .conns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&user);
        for entry in removed.into_iter().flatten() {
            entry.kick_reason.store(KICK_DISABLED, Ordering::Relaxed);
            entry.kick.notify_one();
        }
    }

    /// Open connections of one user on this node.
    pub fn connections_of(&self, user: UserId) -> usize {
        self.conns
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user)
            .map_or(0, Vec::len)
    }

    pub fn connection_count(&self) -> usize {
        self.conns
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(Vec::len)
            .sum()
    }
}

/// Cross-node fan-out. Every node publishes committed events here and delivers what it
/// receives to its local hub.
pub trait Bus: Send + Sync + 'static {
    fn publish(&self, users: &[UserId], frame: Outbound);
    /// Closes every connection of `user`, on every node.
    fn disconnect_user(&self, user: UserId);
    /// Open connections of `user` (or of everyone), on this node.
    fn connections(&self, user: Option<UserId>) -> usize;
}

/// The single-node bus: straight into the local hub.
pub struct LocalBus(pub Arc<Hub>);

impl Bus for LocalBus {
    fn publish(&self, users: &[UserId], frame: Outbound) {
        self.0.deliver(users, &frame);
    }

    fn disconnect_user(&self, user: UserId) {
        self.0.disconnect_user(user);
    }

    fn connections(&self, user: Option<UserId>) -> usize {
        match user {
            Some(u) => self.0.connections_of(u),
            None => self.0.connection_count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: i64) -> Outbound {
        Outbound {
            text: Utf8Bytes::from(format!("{n}")),
            message_id: n,
        }
    }

    #[tokio::test]
    async fn delivers_to_every_connection_and_kicks_the_slow() {
        let hub = Hub::new(2);
        let mut a1 = hub.register(1);
        let mut a2 = hub.register(1);
        let b = hub.register(2);
        hub.deliver(&[1, 2], &frame(1));
        assert_eq!(a1.rx.recv().await.unwrap().message_id, 1);
        assert_eq!(a2.rx.recv().await.unwrap().message_id, 1);
        hub.deliver(&[2], &frame(2));
        // b's queue (capacity 2) is now full; the next frame kicks it.
        hub.deliver(&[2], &frame(3));
        b.kicked.notified().await;
        assert_eq!(hub.connection_count(), 2);
        drop(a1);
        assert_eq!(hub.connection_count(), 1);
        assert!(hub.is_online(1));
        drop(a2);
        assert!(!hub.is_online(1));
    }
}
