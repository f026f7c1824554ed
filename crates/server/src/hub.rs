//! The local fan-out hub: which connections each user has open on this node, each with a
//! bounded outbound queue.
//!
//! A frame is serialized once and its bytes shared by every recipient. When a
//! connection's queue is full the connection is kicked (closed with a reason telling the
//! client to resume), never buffered without bound and never silently skipped.
//!
//! A connection whose task is waiting with nothing to write is written to straight away by
//! whoever delivers to it (see [`Queue`]): a busy room's message then costs each idle
//! recipient one `send`, not a task wake-up and a pass through its session loop as well.
//!
//! [`Bus`] is the seam for running several nodes: the local implementation hands frames
//! straight to this node's hub; a NATS-backed one would publish them to every node.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use natter_protocol::{MessageId, UserId};
use tokio::io::Interest;
use tokio::net::TcpStream;
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
    /// Whether a connection whose replay sent every message up to `replayed` still needs
    /// this frame: live copies of the messages it replayed are dropped.
    pub fn needed_after(&self, replayed: MessageId) -> bool {
        self.message_id == 0 || self.message_id > replayed
    }

    /// Frames `payload` (see [`push_text_frame`]).
    pub fn text(payload: &str, message_id: MessageId) -> Outbound {
        Outbound::text_parts(&[payload], message_id)
    }

    /// Frames the concatenation of `parts`, copying each once.
    pub fn text_parts(parts: &[&str], message_id: MessageId) -> Outbound {
        let len = parts.iter().map(|p| p.len()).sum();
        let mut out = Vec::with_capacity(len + MAX_HEADER);
        push_text_header(&mut out, len);
        for part in parts {
            out.extend_from_slice(part.as_bytes());
        }
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
    out.reserve(payload.len() + MAX_HEADER);
    push_text_header(out, payload.len());
    out.extend_from_slice(payload);
}

/// The header of a text frame of `len` bytes (see [`push_text_frame`]).
fn push_text_header(out: &mut Vec<u8>, len: usize) {
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

/// One connection's bounded outbound queue, and the way to its socket.
///
/// Producers push under a short lock and wake the connection only when the queue goes
/// from "nothing to do" to "something to do": a fan-out pass that queues many frames for
/// one connection wakes it once, and it then writes them all with one flush. An idle
/// queue allocates nothing (a tokio mpsc channel allocates its first block of slots up
/// front, ~1.3 KiB per connection at our frame size).
///
/// **Direct writes.** Once the connection's task has [attached](Queue::attach) its socket
/// and [released](Queue::release) it (it has nothing buffered, nothing queued and no
/// client frame being answered), a producer writes its frames to the socket itself, under
/// this queue's lock, and wakes nobody. What the socket does not take (it is full, or
/// gone) is queued as usual, the rest of a partly written frame first, and the task is
/// woken to write it. The task [claims](Queue::claim) the socket before it writes anything
/// (and while it answers a client's frames), taking the rest of a partly written frame to
/// write first; any queueing ends direct writes too. So the bytes of the task and of the
/// producers never interleave, and frames keep their order until the task releases the
/// socket again.
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
    /// The first of `frames` is the rest of a frame a direct write sent only part of: it
    /// must reach the socket whatever happens (a kick keeps it).
    partial_front: bool,
    /// Producers may write to `direct` themselves (see [`Queue`]).
    idle: bool,
    direct: Option<Direct>,
}

/// A connection's socket, for writes by producers.
struct Direct {
    socket: Arc<TcpStream>,
    /// The replay sent every message up to this id: live copies of them are dropped.
    replayed: MessageId,
}

/// Runs `op` (a read or write of up to `want` bytes) on `socket` if tokio has seen it
/// ready. A result short of `want` means the socket has no more for now: its readiness is
/// cleared then, as tokio's own `AsyncRead` and `AsyncWrite` do, which saves the call that
/// would only say "would block" (`try_read` and `try_write` make that call).
pub(crate) fn try_io_short(
    socket: &TcpStream,
    interest: Interest,
    want: usize,
    op: impl FnOnce(&socket2::Socket) -> std::io::Result<usize>,
) -> std::io::Result<usize> {
    let mut done = 0;
    let result = socket.try_io(interest, || {
        done = op(&socket2::SockRef::from(socket))?;
        if done > 0 && done < want {
            Err(std::io::ErrorKind::WouldBlock.into())
        } else {
            Ok(done)
        }
    });
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && done > 0 => Ok(done),
        other => other,
    }
}

/// Frames handed to one direct write at most (one `writev`); the rest are queued.
const MAX_DIRECT_FRAMES: usize = 64;

impl Direct {
    /// Writes as much of `run` as the socket takes now, without waiting. Returns how many
    /// frames of `run` are done (written whole, or not wanted) and how many bytes of the
    /// next one were written.
    fn write(&self, run: &[&Outbound]) -> (usize, usize) {
        let mut slices = [IoSlice::new(&[]); MAX_DIRECT_FRAMES];
        let mut count = 0;
        let mut covered = 0;
        for frame in run {
            if count == MAX_DIRECT_FRAMES {
                break;
            }
            if frame.needed_after(self.replayed) {
                slices[count] = IoSlice::new(&frame.frame);
                count += 1;
            }
            covered += 1;
        }
        let slices = &slices[..count];
        let want = slices.iter().map(|s| s.len()).sum();
        let mut written = match count {
            0 => 0,
            // A full or broken socket takes nothing; the task finds out which it was.
            // One frame (the common case: one message per commit) with `send`, which
            // skips the vector `sendmsg` copies in and walks.
            _ => try_io_short(&self.socket, Interest::WRITABLE, want, |s| match slices {
                [one] => s.send(one),
                _ => s.send_vectored(slices),
            })
            .unwrap_or(0),
        };
        let mut done = 0;
        for frame in &run[..covered] {
            if frame.needed_after(self.replayed) {
                if written < frame.frame.len() {
                    return (done, written);
                }
                written -= frame.frame.len();
            }
            done += 1;
        }
        (done, 0)
    }
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
                partial_front: false,
                idle: false,
                direct: None,
            }),
            ready: Notify::new(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the frames of `run` to the socket if the connection's task released it (see
    /// [`Queue`]), and queues in order under one lock what is left, waking the consumer if
    /// it was not already.
    fn push(&self, run: &[&Outbound]) -> Result<(), Full> {
        let wake = {
            let mut st = self.lock();
            if st.kicked.is_some() {
                return Ok(());
            }
            let mut rest = run;
            if let (true, Some(direct)) = (st.idle && st.frames.is_empty(), &st.direct) {
                let (done, part) = direct.write(run);
                rest = &run[done..];
                if rest.is_empty() {
                    return Ok(());
                }
                if part > 0 {
                    st.frames.push_back(Outbound {
                        frame: rest[0].frame.slice(part..),
                        message_id: 0,
                    });
                    st.partial_front = true;
                    rest = &rest[1..];
                }
            }
            // From here until the task releases the socket again, it writes everything.
            st.idle = false;
            if st.frames.len() + rest.len() > self.capacity {
                return Err(Full);
            }
            st.frames.extend(rest.iter().map(|&f| f.clone()));
            !st.frames.is_empty() && !std::mem::replace(&mut st.woken, true)
        };
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Closes the queue for good: what it holds is dropped (but for the rest of a partly
    /// written frame) and the connection is woken to say goodbye. An account being
    /// disabled outranks being slow.
    fn kick(&self, reason: u8) {
        {
            let mut st = self.lock();
            if st.kicked.is_none() || reason == KICK_DISABLED {
                st.kicked = Some(reason);
            }
            if st.partial_front {
                st.frames.truncate(1);
            } else {
                st.frames = VecDeque::new();
            }
            st.idle = false;
        }
        self.ready.notify_one();
    }

    /// Lets producers write to `socket` once the task [releases](Queue::release) it;
    /// message frames up to `replayed` are dropped as [`Queue::take`]'s caller drops them.
    pub fn attach(&self, socket: Arc<TcpStream>, replayed: MessageId) {
        let mut st = self.lock();
        st.direct = Some(Direct { socket, replayed });
        st.idle = false;
    }

    /// The task is about to write: producers queue from now on (see [`Queue`]). Waits
    /// for a direct write in progress to finish. Returns the rest of a frame a direct
    /// write sent only part of, if one waits: the task writes it before anything else.
    pub fn claim(&self) -> Option<Bytes> {
        let mut st = self.lock();
        st.idle = false;
        if std::mem::take(&mut st.partial_front) {
            st.frames.pop_front().map(|f| f.frame)
        } else {
            None
        }
    }

    /// The task has written everything and waits: producers may write to the socket
    /// themselves, unless frames wait to be taken.
    pub fn release(&self) {
        let mut st = self.lock();
        st.idle = st.direct.is_some() && st.frames.is_empty() && st.kicked.is_none();
    }

    /// Lets go of the socket: producers write nothing more to it.
    fn detach(&self) {
        let mut st = self.lock();
        st.direct = None;
        st.idle = false;
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
                st.partial_front = false;
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

/// A connection to deliver a run of frames to, looked up under the hub's lock.
struct Target {
    run: usize,
    user: UserId,
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
        self.queue.detach();
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
        let mut targets = Vec::new();
        {
            let conns = self.conns.read().unwrap_or_else(|e| e.into_inner());
            Self::targets(&conns, users, 0, &mut targets);
        }
        self.push_all(&targets, |_| vec![frame]);
    }

    /// [`Hub::deliver`] for many frames, in order, in one pass: each connection is woken
    /// at most once for all of them (and then writes them with one flush). A run of
    /// frames for the same users (a busy room's messages of one commit) is queued with one
    /// lookup and one lock per connection, not one per frame.
    ///
    /// The connections are looked up first and written to after: the hub's lock is not
    /// held while frames go to sockets (see [`Queue`]), which keeps registering and
    /// unregistering connections from waiting for a whole fan-out.
    pub fn deliver_all(&self, batch: &[Delivery]) {
        let mut runs = Vec::new();
        let mut targets = Vec::new();
        {
            let conns = self.conns.read().unwrap_or_else(|e| e.into_inner());
            let mut start = 0;
            while let Some(first) = batch.get(start) {
                let len = batch[start..]
                    .iter()
                    .position(|d| d.users != first.users)
                    .unwrap_or(batch.len() - start);
                Self::targets(&conns, &first.users, runs.len(), &mut targets);
                runs.push(start..start + len);
                start += len;
            }
        }
        self.push_all(&targets, |r| {
            batch[runs[r].clone()].iter().map(|d| &d.frame).collect()
        });
    }

    /// Every connection of `users`, for run number `run`.
    fn targets(conns: &Connections, users: &[UserId], run: usize, out: &mut Vec<Target>) {
        for user in users {
            for entry in conns.get(user).into_iter().flatten() {
                out.push(Target {
                    run,
                    user: *user,
                    id: entry.id,
                    queue: entry.queue.clone(),
                });
            }
        }
    }

    /// Pushes to each target the frames of its run (`frames` makes them, once per run).
    /// Targets come grouped by run, in order.
    fn push_all<'a>(&self, targets: &[Target], frames: impl Fn(usize) -> Vec<&'a Outbound>) {
        let mut slow = Vec::new();
        let mut current = None;
        let mut run = Vec::new();
        for t in targets {
            if current != Some(t.run) {
                run = frames(t.run);
                current = Some(t.run);
            }
            if t.queue.push(&run).is_err() {
                t.queue.kick(KICK_SLOW);
                slow.push((t.user, t.id));
            }
        }
        self.drop_slow(slow);
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

    /// A connection of user 1 with the server's end of a loopback pair attached (not yet
    /// released), and the client's end.
    async fn attached(hub: &Arc<Hub>, replayed: MessageId) -> (Registration, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let reg = hub.register(1);
        reg.queue.attach(Arc::new(accepted.unwrap().0), replayed);
        (reg, client.unwrap())
    }

    /// Reads exactly `len` bytes (or fails after a generous bound).
    async fn read_exactly(client: &mut TcpStream, len: usize) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0; len];
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            client.read_exact(&mut buf),
        )
        .await
        .expect("the bytes arrive")
        .unwrap();
        buf
    }

    fn bytes_of(frames: &[Outbound]) -> Vec<u8> {
        frames
            .iter()
            .flat_map(|f| f.frame.iter().copied())
            .collect()
    }

    /// Whether the queue wakes its task within a short while.
    async fn wakes(reg: &Registration) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(20), reg.queue.ready())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_released_socket_is_written_to_directly_and_nobody_is_woken() {
        let hub = Hub::new(16);
        let (a, mut client) = attached(&hub, 0).await;
        a.queue.release();
        let batch = batch(1, [vec![1], vec![1], vec![1]]);
        hub.deliver_all(&batch);
        let frames: Vec<Outbound> = batch.iter().map(|d| d.frame.clone()).collect();
        assert_eq!(
            read_exactly(&mut client, bytes_of(&frames).len()).await,
            bytes_of(&frames)
        );
        assert!(a.queue.is_empty());
        assert!(!wakes(&a).await, "a direct write wakes nobody");
        // Still released: the next delivery goes straight out as well.
        hub.deliver(&[1], &frame(4));
        assert_eq!(
            read_exactly(&mut client, frame(4).frame.len()).await,
            &frame(4).frame[..]
        );
        assert!(!wakes(&a).await);
    }

    #[tokio::test]
    async fn until_released_and_after_a_claim_frames_are_queued() {
        let hub = Hub::new(16);
        let (a, _client) = attached(&hub, 0).await;
        hub.deliver(&[1], &frame(1));
        assert!(wakes(&a).await);
        assert_eq!(taken(&a), vec![1]);
        a.queue.release();
        a.queue.claim();
        hub.deliver(&[1], &frame(2));
        assert!(wakes(&a).await);
        assert_eq!(taken(&a), vec![2]);
        // Queueing ends direct writes too, until the task releases the socket again.
        hub.deliver(&[1], &frame(3));
        assert!(wakes(&a).await);
        assert_eq!(taken(&a), vec![3]);
    }

    #[tokio::test]
    async fn frames_the_replay_already_sent_are_not_written_again() {
        let hub = Hub::new(16);
        let (a, mut client) = attached(&hub, 5).await;
        a.queue.release();
        let presence = Outbound::text("presence", 0);
        for f in [frame(4), frame(5), presence.clone(), frame(6)] {
            hub.deliver(&[1], &f);
        }
        let want = bytes_of(&[presence, frame(6)]);
        assert_eq!(read_exactly(&mut client, want.len()).await, want);
        assert!(!wakes(&a).await);
    }

    /// A released connection of user 1 whose socket (nobody reads it) took only part of a
    /// frame: large frames are delivered until one is. A socket that happens to fill up
    /// at a frame's end takes nothing of the next one, so a new connection is tried then.
    async fn partly_written(hub: &Arc<Hub>) -> (Registration, TcpStream, Vec<Outbound>) {
        for _ in 0..20 {
            let (a, client) = attached(hub, 0).await;
            a.queue.release();
            let mut sent = Vec::new();
            while a.queue.is_empty() {
                let n = sent.len() as i64 + 1;
                let f = Outbound::text(&format!("{n}{}", "x".repeat(100_000)), n);
                hub.deliver(&[1], &f);
                sent.push(f);
            }
            let partial = {
                let st = a.queue.lock();
                st.partial_front && st.frames[0].message_id == 0
            };
            if partial {
                return (a, client, sent);
            }
        }
        panic!("no socket took part of a frame in 20 tries");
    }

    #[tokio::test]
    async fn what_a_full_socket_does_not_take_is_queued_the_rest_of_a_frame_first() {
        let hub = Hub::new(1_000);
        let (a, mut client, mut sent) = partly_written(&hub).await;
        let more = frame(1_000);
        hub.deliver(&[1], &more);
        sent.push(more);
        assert!(wakes(&a).await);
        let mut out = Vec::new();
        a.queue.take(&mut out, usize::MAX, usize::MAX);
        assert_eq!(
            out.len(),
            2,
            "the rest of a frame, then the frame queued after it"
        );
        assert_eq!(out[1].message_id, 1_000);
        // What the socket took and what was queued make up every frame, whole and in order.
        let all = bytes_of(&sent);
        let queued = bytes_of(&out);
        let direct = read_exactly(&mut client, all.len() - queued.len()).await;
        assert_eq!([direct, queued].concat(), all);
    }

    #[tokio::test]
    async fn a_kick_keeps_the_rest_of_a_partly_written_frame() {
        let hub = Hub::new(2);
        let (a, _client, _) = partly_written(&hub).await;
        for _ in 0..3 {
            hub.deliver(&[1], &frame(99));
        }
        assert_eq!(a.queue.kicked(), Some(KICK_SLOW));
        assert_eq!(
            taken(&a),
            vec![0],
            "only the rest of the frame begun is left"
        );
    }

    #[tokio::test]
    async fn a_claim_hands_back_the_rest_of_a_partly_written_frame_before_anything_else() {
        let hub = Hub::new(1_000);
        let (a, mut client, sent) = partly_written(&hub).await;
        hub.deliver(&[1], &frame(1_000));
        let rest = a.queue.claim().expect("the rest of the frame begun");
        assert_eq!(a.queue.claim(), None, "handed back once");
        // The rest completes the frames the socket took; the next frame is still queued.
        let all = bytes_of(&sent);
        let direct = read_exactly(&mut client, all.len() - rest.len()).await;
        assert_eq!([direct, rest.to_vec()].concat(), all);
        assert_eq!(taken(&a), vec![1_000]);
    }
}
