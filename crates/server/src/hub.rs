//! The local fan-out hub: which connections each user has open on this node, each with a
//! bounded outbound queue.
//!
//! A frame is serialized once and its bytes shared by every recipient. When a
//! connection's queue is full the connection is kicked (closed with a reason telling the
//! client to resume), never buffered without bound and never silently skipped.
//!
//! [`Bus`] is the seam for running several nodes: the local implementation hands frames
//! straight to this node's hub; a NATS-backed one would publish them to every node.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use natter_protocol::{MessageId, UserId};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// One frame ready to write: the bytes of a whole WebSocket text frame, made once and
/// shared by every recipient.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub frame: Bytes,
    /// For `message` frames, the message id, so a connection that is replaying can drop
    /// live copies of what it already sent. 0 for other frames.
    pub message_id: MessageId,
}

impl Outbound {
    /// Frames `payload` (see [`push_text_frame`]).
    pub fn text(payload: &str, message_id: MessageId) -> Outbound {
        let mut out = Vec::new();
        push_text_frame(&mut out, payload.as_bytes());
        Outbound {
            frame: Bytes::from(out),
            message_id,
        }
    }
}

/// The longest header of a frame a server sends.
const MAX_HEADER: usize = 10;

/// Appends `payload` to `out` as a WebSocket text frame as a server sends it (final,
/// unmasked): the header, with the length in its shortest form, then the payload.
pub fn push_text_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = payload.len();
    out.reserve(len + MAX_HEADER);
    out.push(0x81);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// One frame for every connection of some users.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub users: Vec<UserId>,
    pub frame: Outbound,
}

/// Why a connection was kicked (see [`Queue::kicked`]).
pub const KICK_SLOW: u8 = 0;
/// The account was disabled (or its sessions revoked) by an admin.
pub const KICK_DISABLED: u8 = 1;

/// One connection's bounded outbound queue.
///
/// Producers push under a short lock and wake the connection only when the queue goes
/// from "nothing to do" to "something to do": a fan-out pass that queues many frames for
/// one connection wakes it once, and it then writes them all with one flush. An idle
/// queue allocates nothing (a tokio mpsc channel allocates its first block of slots up
/// front, ~1.3 KiB per connection at our frame size).
pub struct Queue {
    state: Mutex<QueueState>,
    ready: Notify,
    capacity: usize,
}

struct QueueState {
    frames: VecDeque<Outbound>,
    /// The consumer was notified and has not taken everything since: no need to again.
    woken: bool,
    kicked: Option<u8>,
}

/// The queue was full: the connection is too slow and must go.
struct Full;

impl Queue {
    fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new(QueueState {
                frames: VecDeque::new(),
                woken: false,
                kicked: None,
            }),
            ready: Notify::new(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues the frames of `run` in order under one lock, waking the consumer if it was
    /// not already.
    fn push(&self, run: &[&Outbound]) -> Result<(), Full> {
        let wake = {
            let mut st = self.lock();
            if st.kicked.is_some() {
                return Ok(());
            }
            if st.frames.len() + run.len() > self.capacity {
                return Err(Full);
            }
            st.frames.extend(run.iter().map(|&f| f.clone()));
            !std::mem::replace(&mut st.woken, true)
        };
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Closes the queue for good: what it holds is dropped and the connection is woken
    /// to say goodbye. An account being disabled outranks being slow.
    fn kick(&self, reason: u8) {
        {
            let mut st = self.lock();
            if st.kicked.is_none() || reason == KICK_DISABLED {
                st.kicked = Some(reason);
            }
            st.frames = VecDeque::new();
        }
        self.ready.notify_one();
    }

    /// Resolves when there may be frames to take or the connection was kicked.
    /// Cancel safe: a wake-up that is not consumed is kept for the next call.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Moves queued frames to `out` in order, up to `max_frames` or about `max_bytes`
    /// (at least one frame). When frames are left the queue stays ready, so the next
    /// [`Queue::ready`] returns at once.
    pub fn take(&self, out: &mut Vec<Outbound>, max_frames: usize, max_bytes: usize) {
        let left = {
            let mut st = self.lock();
            let mut bytes = 0;
            while out.len() < max_frames && (bytes < max_bytes || out.is_empty()) {
                let Some(f) = st.frames.pop_front() else {
                    break;
                };
                bytes += f.frame.len();
                out.push(f);
            }
            if st.frames.is_empty() {
                st.woken = false;
                // Give back what a burst made it grow to.
                if st.frames.capacity() > 128 {
                    st.frames = VecDeque::new();
                }
                false
            } else {
                true
            }
        };
        if left {
            self.ready.notify_one();
        }
    }

    /// Why this connection was dropped from the hub, once it was: [`KICK_SLOW`] or
    /// [`KICK_DISABLED`].
    pub fn kicked(&self) -> Option<u8> {
        self.lock().kicked
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.lock().frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Each user's connections. User ids are ours, not a client's choice, so a fast hash
/// without flood protection is safe here (SipHash was ~2.5 % of natterd's CPU under
/// workload 1: one lookup per recipient per commit).
type Connections = rustc_hash::FxHashMap<UserId, Vec<Entry>>;

struct Entry {
    id: u64,
    queue: Arc<Queue>,
}

pub struct Hub {
    conns: RwLock<Connections>,
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
    /// What the hub queued for this connection; also says when it was kicked (too slow,
    /// or its account was disabled).
    pub queue: Arc<Queue>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.user, self.id);
    }
}

impl Hub {
    pub fn new(capacity: usize) -> Arc<Hub> {
        Arc::new(Hub {
            conns: RwLock::new(Connections::default()),
            next_id: AtomicU64::new(1),
            capacity,
            shutdown: CancellationToken::new(),
        })
    }

    pub fn register(self: &Arc<Self>, user: UserId) -> Registration {
        self.register_within(user, usize::MAX)
            .expect("no limit to exceed")
    }

    /// Registers a connection of `user` unless they already have `max`: the check and
    /// the registration are one step, so connections opened at the same moment cannot
    /// both slip under the limit.
    pub fn register_within(self: &Arc<Self>, user: UserId, max: usize) -> Option<Registration> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(Queue::new(self.capacity));
        {
            let mut conns = self.conns.write().unwrap_or_else(|e| e.into_inner());
            if conns.get(&user).map_or(0, Vec::len) >= max {
                return None;
            }
            conns.entry(user).or_default().push(Entry {
                id,
                queue: queue.clone(),
            });
        }
        Some(Registration {
            hub: self.clone(),
            user,
            id,
            queue,
        })
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
        let mut slow = Vec::new();
        {
            let conns = self.conns.read().unwrap_or_else(|e| e.into_inner());
            Self::queue_for(&conns, users, &[frame], &mut slow);
        }
        self.drop_slow(slow);
    }

    /// [`Hub::deliver`] for many frames, in order, in one pass: each connection is woken
    /// at most once for all of them (and then writes them with one flush). A run of
    /// frames for the same users (a busy room's messages of one commit) is queued with one
    /// lookup and one lock per connection, not one per frame.
    pub fn deliver_all(&self, batch: &[Delivery]) {
        let mut slow = Vec::new();
        {
            let conns = self.conns.read().unwrap_or_else(|e| e.into_inner());
            let mut rest = batch;
            let mut run = Vec::new();
            while let Some(first) = rest.first() {
                let len = rest
                    .iter()
                    .position(|d| d.users != first.users)
                    .unwrap_or(rest.len());
                run.clear();
                run.extend(rest[..len].iter().map(|d| &d.frame));
                Self::queue_for(&conns, &first.users, &run, &mut slow);
                rest = &rest[len..];
            }
        }
        self.drop_slow(slow);
    }

    fn queue_for(
        conns: &Connections,
        users: &[UserId],
        run: &[&Outbound],
        slow: &mut Vec<(UserId, u64)>,
    ) {
        for user in users {
            let Some(list) = conns.get(user) else {
                continue;
            };
            for entry in list {
                if entry.queue.push(run).is_err() {
                    entry.queue.kick(KICK_SLOW);
                    slow.push((*user, entry.id));
                }
            }
        }
    }

    fn drop_slow(&self, slow: Vec<(UserId, u64)>) {
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
            entry.queue.kick(KICK_DISABLED);
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
    /// Publishes many frames at once, in order (the messages of one commit).
    fn publish_all(&self, batch: Vec<Delivery>) {
        for d in batch {
            self.publish(&d.users, d.frame);
        }
    }
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

    fn publish_all(&self, batch: Vec<Delivery>) {
        self.0.deliver_all(&batch);
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
        Outbound::text(&format!("{n}"), n)
    }

    #[test]
    fn text_frames_carry_the_length_in_the_shortest_form() {
        assert_eq!(&Outbound::text("hi", 0).frame[..], b"\x81\x02hi");
        let f = Outbound::text(&"a".repeat(126), 0).frame;
        assert_eq!(&f[..4], b"\x81\x7e\x00\x7e");
        assert_eq!(f.len(), 4 + 126);
        let f = Outbound::text(&"a".repeat(70_000), 0).frame;
        assert_eq!(&f[..10], b"\x81\x7f\x00\x00\x00\x00\x00\x01\x11\x70");
        assert_eq!(f.len(), 10 + 70_000);
    }

    fn taken(reg: &Registration) -> Vec<i64> {
        let mut out = Vec::new();
        reg.queue.take(&mut out, usize::MAX, usize::MAX);
        out.iter().map(|f| f.message_id).collect()
    }

    #[tokio::test]
    async fn delivers_to_every_connection_and_kicks_the_slow() {
        let hub = Hub::new(2);
        let a1 = hub.register(1);
        let a2 = hub.register(1);
        let b = hub.register(2);
        hub.deliver(&[1, 2], &frame(1));
        a1.queue.ready().await;
        assert_eq!(taken(&a1), vec![1]);
        a2.queue.ready().await;
        assert_eq!(taken(&a2), vec![1]);
        hub.deliver(&[2], &frame(2));
        // b's queue (capacity 2) is now full; the next frame kicks it.
        hub.deliver(&[2], &frame(3));
        b.queue.ready().await;
        assert_eq!(b.queue.kicked(), Some(KICK_SLOW));
        assert!(b.queue.is_empty(), "a kicked queue lets go of its frames");
        assert_eq!(hub.connection_count(), 2);
        drop(a1);
        assert_eq!(hub.connection_count(), 1);
        assert!(hub.is_online(1));
        drop(a2);
        assert!(!hub.is_online(1));
    }

    /// Deliveries of frames `first`, `first + 1`, ... to the given users each.
    fn batch(first: i64, users: impl IntoIterator<Item = Vec<UserId>>) -> Vec<Delivery> {
        users
            .into_iter()
            .zip(first..)
            .map(|(users, n)| Delivery {
                users,
                frame: frame(n),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_batch_wakes_each_connection_once_and_keeps_order() {
        let hub = Hub::new(16);
        let a = hub.register(1);
        let b = hub.register(2);
        let users = (1..=5).map(|n| if n % 2 == 0 { vec![1, 2] } else { vec![1] });
        hub.deliver_all(&batch(1, users));
        a.queue.ready().await;
        assert_eq!(taken(&a), vec![1, 2, 3, 4, 5]);
        b.queue.ready().await;
        assert_eq!(taken(&b), vec![2, 4]);
        // Everything was taken and nothing new came: no stale wake-up is left over.
        let again = tokio::time::timeout(std::time::Duration::from_millis(20), a.queue.ready());
        assert!(again.await.is_err(), "one wake-up for the whole batch");
    }

    #[tokio::test]
    async fn runs_for_the_same_users_keep_order_with_what_lies_between() {
        let hub = Hub::new(16);
        let a = hub.register(1);
        let b = hub.register(2);
        let users = [vec![1, 2], vec![1, 2], vec![2], vec![1, 2], vec![1, 2]];
        hub.deliver_all(&batch(1, users));
        a.queue.ready().await;
        assert_eq!(taken(&a), vec![1, 2, 4, 5]);
        b.queue.ready().await;
        assert_eq!(taken(&b), vec![1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn a_run_that_overflows_a_queue_kicks_it_as_frame_by_frame_would() {
        let hub = Hub::new(4);
        let a = hub.register(1);
        hub.deliver(&[1], &frame(1));
        hub.deliver(&[1], &frame(2));
        let run = batch(3, [vec![1], vec![1]]);
        hub.deliver_all(&run);
        assert_eq!(a.queue.kicked(), None, "exactly full is not too full");
        hub.deliver_all(&run[..1]);
        assert_eq!(a.queue.kicked(), Some(KICK_SLOW));
    }

    #[tokio::test]
    async fn take_is_bounded_and_stays_ready_for_the_rest() {
        let hub = Hub::new(16);
        let a = hub.register(1);
        for n in 1..=5 {
            hub.deliver(&[1], &frame(n));
        }
        a.queue.ready().await;
        let mut out = Vec::new();
        a.queue.take(&mut out, 2, usize::MAX);
        assert_eq!(out.len(), 2);
        // Frames are left, so the queue is ready again at once.
        a.queue.ready().await;
        out.clear();
        a.queue.take(&mut out, usize::MAX, 1);
        assert_eq!(out.len(), 1, "at least one frame even over the byte bound");
        a.queue.ready().await;
        assert_eq!(taken(&a), vec![4, 5]);
    }

    #[tokio::test]
    async fn disabling_outranks_being_slow() {
        let hub = Hub::new(1);
        let a = hub.register(1);
        hub.deliver(&[1], &frame(1));
        hub.deliver(&[1], &frame(2));
        assert_eq!(a.queue.kicked(), Some(KICK_SLOW));
        let b = hub.register(1);
        hub.disconnect_user(1);
        assert_eq!(b.queue.kicked(), Some(KICK_DISABLED));
        assert_eq!(hub.connection_count(), 0);
    }
}
