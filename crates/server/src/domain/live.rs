//! The live layer: presence and typing (ephemeral: memory only, rate limited, expiring),
//! and the durable markers, receipts, mutes and settings.
//!
//! **Presence** is kept per user: how many connections this node has for them, whether
//! they set themself away, when their last connection closed, and what their contacts
//! (people sharing a conversation with them) were last told. Changes are not pushed as
//! they happen: [`Live::tick`] runs every [`LiveConfig::tick`], takes every user whose
//! state changed, and sends each online contact *one* `presence` frame listing all the
//! changes they may see. A user whose last connection closes is announced offline only
//! after [`LiveConfig::presence_grace`]; reconnecting within it announces nothing. So a
//! reconnect storm of N users costs no presence frames at all, and N users coming online
//! at once cost at most one frame per online recipient per tick, instead of one per
//! (user, contact) pair.
//!
//! **Typing** is an entry per (conversation, user) with an expiry. The first `typing`
//! is fanned out to the other members; renewals only extend the expiry (and are dropped
//! unread when they come faster than once a second). The tick sends `active: false` for
//! entries that expired; a committed message from the typist ends theirs at once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use natter_protocol::{
    ConversationId, ConversationState, MessageReceipts, Presence, PresenceState, Seq, ServerFrame,
    Settings, SettingsUpdate, UserId, limits, validate,
};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::{Domain, DomainError, DomainResult, Principal, outbound};
use crate::hub::Bus;
use crate::store::{Store, StoreError};

/// Default of [`LiveConfig::presence_push_max_members`].
pub const DEFAULT_PRESENCE_PUSH_MAX_MEMBERS: usize = 256;

/// Timing and reach of the live layer.
#[derive(Debug, Clone, Copy)]
pub struct LiveConfig {
    /// How often presence changes are flushed and typing entries expire.
    pub tick: Duration,
    /// How long after a user's last connection closes they are announced offline.
    pub presence_grace: Duration,
    /// Presence changes are pushed through conversations of at most this many members.
    pub presence_push_max_members: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            tick: Duration::from_millis(250),
            presence_grace: Duration::from_secs(2),
            presence_push_max_members: DEFAULT_PRESENCE_PUSH_MAX_MEMBERS,
        }
    }
}

/// Most typing entries held at once; beyond it new ones are dropped (bounded memory).
const MAX_TYPING: usize = 100_000;
/// Renewals of the same typing entry faster than this are dropped without a lookup.
const TYPING_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Typing frames one user may have processed per [`TYPING_WINDOW`].
const TYPING_BUDGET: u32 = 20;
const TYPING_WINDOW: Duration = Duration::from_secs(10);

struct UserPresence {
    username: String,
    connections: u32,
    away: bool,
    last_seen: Option<OffsetDateTime>,
    /// What contacts were last told.
    announced: PresenceState,
    /// When the last connection closed (while none is open).
    closed_at: Option<Instant>,
}

impl UserPresence {
    fn connected_state(&self) -> PresenceState {
        if self.away {
            PresenceState::Away
        } else {
            PresenceState::Online
        }
    }

    /// What contacts should see now: during the grace period after the last connection
    /// closed, what they were told before.
    fn visible(&self, now: Instant, grace: Duration) -> PresenceState {
        if self.connections > 0 {
            self.connected_state()
        } else if self.closed_at.is_some_and(|t| now < t + grace) {
            self.announced
        } else {
            PresenceState::Offline
        }
    }

    fn presence(&self, state: PresenceState) -> Presence {
        Presence {
            user: self.username.clone(),
            state,
            last_seen: if state == PresenceState::Offline {
                self.last_seen
            } else {
                None
            },
        }
    }
}

#[derive(Default)]
struct PresenceMap {
    users: HashMap<UserId, UserPresence>,
    dirty: HashSet<UserId>,
}

struct Typing {
    username: String,
    expires: Instant,
    accepted: Instant,
    /// Who was told (the other members at the start), so expiry needs no lookup.
    told: Vec<UserId>,
}

#[derive(Default)]
struct TypingMap {
    entries: HashMap<(ConversationId, UserId), Typing>,
    budget: HashMap<UserId, (Instant, u32)>,
}

/// Counters for benchmarks and diagnostics.
#[derive(Debug, Default)]
pub struct LiveStats {
    /// `presence` frames queued for delivery.
    pub presence_frames: AtomicU64,
    /// Presence entries inside those frames.
    pub presence_entries: AtomicU64,
    /// `typing` frames fanned out (counted once per frame, not per recipient).
    pub typing_frames: AtomicU64,
}

/// The in-memory live state of this node.
pub struct Live {
    config: LiveConfig,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    presence: Mutex<PresenceMap>,
    typing: Mutex<TypingMap>,
    pub stats: LiveStats,
}

/// Held by a connection while it is open; dropping it counts the connection closed.
pub struct PresenceGuard {
    live: Arc<Live>,
    user: UserId,
    /// False while the connection is silent (missed a heartbeat): it stays open, but no
    /// longer makes its user count as online.
    active: bool,
}

impl PresenceGuard {
    /// Counts the connection as present (`true`) or not (`false`, it stopped answering
    /// heartbeats); a change is announced like a connect or disconnect.
    pub fn set_active(&mut self, active: bool) {
        if active == self.active {
            return;
        }
        self.active = active;
        if active {
            self.live.reconnected(self.user);
        } else {
            self.live.disconnected(self.user);
        }
    }
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        if self.active {
            self.live.disconnected(self.user);
        }
    }
}

impl Live {
    pub fn new(config: LiveConfig, store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Arc<Live> {
        Arc::new(Live {
            config,
            store,
            bus,
            presence: Mutex::new(PresenceMap::default()),
            typing: Mutex::new(TypingMap::default()),
            stats: LiveStats::default(),
        })
    }

    pub fn config(&self) -> LiveConfig {
        self.config
    }

    // ----- presence -----

    /// Counts a new connection of `p`; the returned guard counts it closed when dropped.
    pub fn connected(self: &Arc<Self>, p: &Principal) -> PresenceGuard {
        let mut map = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.users.entry(p.id).or_insert_with(|| UserPresence {
            username: p.username.clone(),
            connections: 0,
            away: false,
            last_seen: None,
            announced: PresenceState::Offline,
            closed_at: None,
        });
        entry.connections += 1;
        entry.closed_at = None;
        map.dirty.insert(p.id);
        PresenceGuard {
            live: self.clone(),
            user: p.id,
            active: true,
        }
    }

    fn reconnected(&self, user: UserId) {
        let mut map = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = map.users.get_mut(&user) {
            entry.connections += 1;
            entry.closed_at = None;
            map.dirty.insert(user);
        }
    }

    fn disconnected(&self, user: UserId) {
        let mut map = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = map.users.get_mut(&user) {
            entry.connections = entry.connections.saturating_sub(1);
            if entry.connections == 0 {
                entry.closed_at = Some(Instant::now());
                entry.last_seen = Some(OffsetDateTime::now_utc());
                map.dirty.insert(user);
            }
        }
    }

    fn set_away(&self, p: &Principal, away: bool) -> Presence {
        let mut map = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.users.entry(p.id).or_insert_with(|| UserPresence {
            username: p.username.clone(),
            connections: 0,
            away,
            last_seen: None,
            announced: PresenceState::Offline,
            closed_at: None,
        });
        entry.away = away;
        let now = entry.visible(Instant::now(), self.config.presence_grace);
        let presence = entry.presence(now);
        map.dirty.insert(p.id);
        presence
    }

    /// Whether `user` counts as online or away right now (for "N online" counts).
    fn is_present(&self, map: &PresenceMap, user: UserId, now: Instant) -> bool {
        map.users
            .get(&user)
            .is_some_and(|e| e.visible(now, self.config.presence_grace) != PresenceState::Offline)
    }

    /// Announces presence changes (batched per recipient) and expires typing entries.
    pub async fn tick(&self) {
        self.expire_typing();
        let now = Instant::now();
        let changed: Vec<(UserId, Presence)> = {
            let mut map = self.presence.lock().unwrap_or_else(|e| e.into_inner());
            let dirty: Vec<UserId> = map.dirty.drain().collect();
            let mut changed = Vec::new();
            for user in dirty {
                let Some(entry) = map.users.get_mut(&user) else {
                    continue;
                };
                let grace_left = entry.connections == 0
                    && entry
                        .closed_at
                        .is_some_and(|t| now < t + self.config.presence_grace);
                let visible = entry.visible(now, self.config.presence_grace);
                if visible != entry.announced {
                    entry.announced = visible;
                    changed.push((user, entry.presence(visible)));
                }
                if grace_left {
                    // Look again once the grace period may have run out.
                    map.dirty.insert(user);
                }
            }
            changed
        };
        if changed.is_empty() {
            return;
        }
        let ids: Vec<UserId> = changed.iter().map(|(u, _)| *u).collect();
        let pairs = match self
            .store
            .presence_audience(&ids, self.config.presence_push_max_members)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look up contacts; presence changes not sent");
                return;
            }
        };
        let by_user: HashMap<UserId, &Presence> = changed.iter().map(|(u, p)| (*u, p)).collect();
        let mut per_recipient: HashMap<UserId, Vec<Presence>> = HashMap::new();
        {
            let map = self.presence.lock().unwrap_or_else(|e| e.into_inner());
            let online = |u: &UserId| map.users.get(u).is_some_and(|e| e.connections > 0);
            for (user, contact) in &pairs {
                if online(contact)
                    && let Some(p) = by_user.get(user)
                {
                    per_recipient
                        .entry(*contact)
                        .or_default()
                        .push((*p).clone());
                }
            }
        }
        for (recipient, mut presence) in per_recipient {
            presence.sort_by(|a, b| a.user.cmp(&b.user));
            self.stats
                .presence_entries
                .fetch_add(presence.len() as u64, Ordering::Relaxed);
            self.stats.presence_frames.fetch_add(1, Ordering::Relaxed);
            self.bus
                .publish(&[recipient], outbound(&ServerFrame::Presence { presence }));
        }
    }

    // ----- typing -----

    /// Takes one typing frame from `user` if their budget allows; false means drop it.
    fn typing_allowed(map: &mut TypingMap, user: UserId, now: Instant) -> bool {
        if map.budget.len() > MAX_TYPING {
            map.budget
                .retain(|_, (start, _)| now.duration_since(*start) < TYPING_WINDOW);
        }
        let (start, used) = map.budget.entry(user).or_insert((now, 0));
        if now.duration_since(*start) >= TYPING_WINDOW {
            *start = now;
            *used = 0;
        }
        *used += 1;
        *used <= TYPING_BUDGET
    }

    fn publish_typing(
        &self,
        users: &[UserId],
        conversation_id: ConversationId,
        user: &str,
        active: bool,
    ) {
        if users.is_empty() {
            return;
        }
        self.stats.typing_frames.fetch_add(1, Ordering::Relaxed);
        let frame = outbound(&ServerFrame::Typing {
            conversation_id,
            user: user.to_owned(),
            active,
        });
        self.bus.publish(users, frame);
    }

    fn expire_typing(&self) {
        let now = Instant::now();
        let expired: Vec<((ConversationId, UserId), Typing)> = {
            let mut map = self.typing.lock().unwrap_or_else(|e| e.into_inner());
            let keys: Vec<_> = map
                .entries
                .iter()
                .filter(|(_, t)| t.expires <= now)
                .map(|(k, _)| *k)
                .collect();
            keys.into_iter()
                .filter_map(|k| map.entries.remove(&k).map(|t| (k, t)))
                .collect()
        };
        for ((conversation, _), t) in expired {
            self.publish_typing(&t.told, conversation, &t.username, false);
        }
    }

    /// Ends `user`'s typing in `conversation` (their message arrived).
    pub fn message_sent(&self, conversation: ConversationId, user: UserId) {
        let removed = self
            .typing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .remove(&(conversation, user));
        if let Some(t) = removed {
            self.publish_typing(&t.told, conversation, &t.username, false);
        }
    }

    async fn typing(
        &self,
        p: &Principal,
        conversation: ConversationId,
        active: bool,
    ) -> DomainResult<()> {
        let now = Instant::now();
        {
            let mut map = self.typing.lock().unwrap_or_else(|e| e.into_inner());
            if active
                && let Some(t) = map.entries.get_mut(&(conversation, p.id))
                && now.duration_since(t.accepted) < TYPING_MIN_INTERVAL
            {
                return Ok(());
            }
            if !Self::typing_allowed(&mut map, p.id, now) {
                return Err(DomainError::RateLimited(
                    "too many typing notices: send one every few seconds".into(),
                ));
            }
        }
        if !active {
            // Only a member can have an entry, so no lookup is needed to stop.
            self.message_sent(conversation, p.id);
            return Ok(());
        }
        let members = match self.store.members(conversation).await? {
            m if m.contains(&p.id) => m,
            _ => return Err(DomainError::NotMember(conversation)),
        };
        let expires = now + Duration::from_secs(limits::TYPING_EXPIRY_SECS);
        let announce = {
            let mut map = self.typing.lock().unwrap_or_else(|e| e.into_inner());
            let full = map.entries.len() >= MAX_TYPING;
            match map.entries.get_mut(&(conversation, p.id)) {
                Some(t) => {
                    t.expires = expires;
                    t.accepted = now;
                    None
                }
                None if full => None,
                None => {
                    let told: Vec<UserId> = members.into_iter().filter(|u| *u != p.id).collect();
                    map.entries.insert(
                        (conversation, p.id),
                        Typing {
                            username: p.username.clone(),
                            expires,
                            accepted: now,
                            told: told.clone(),
                        },
                    );
                    Some(told)
                }
            }
        };
        if let Some(told) = announce {
            self.publish_typing(&told, conversation, &p.username, true);
        }
        Ok(())
    }
}

/// Runs [`Live::tick`] forever (until the task is aborted at shutdown).
pub async fn run_ticks(live: Arc<Live>) {
    let mut every = tokio::time::interval(live.config.tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        live.tick().await;
    }
}

impl Domain {
    // ----- presence and typing -----

    /// Presence of `users` (default: everyone sharing a conversation with the caller, and
    /// the caller). Users the caller shares no conversation with are left out: the caller
    /// may not see them.
    pub async fn presence(
        &self,
        p: &Principal,
        users: Option<&str>,
    ) -> DomainResult<Vec<Presence>> {
        let wanted: Option<HashSet<String>> = match users {
            Some(list) => Some(
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|u| validate::username(u.trim_start_matches('@')))
                    .collect::<Result<_, _>>()?,
            ),
            None => None,
        };
        let mut visible: Vec<(UserId, String)> = self
            .store
            .contacts(&[p.id])
            .await?
            .into_iter()
            .map(|(_, id, name)| (id, name))
            .collect();
        visible.push((p.id, p.username.clone()));
        visible.sort_by(|a, b| a.1.cmp(&b.1));
        visible.dedup();
        let now = Instant::now();
        let grace = self.live.config.presence_grace;
        let map = self.live.presence.lock().unwrap_or_else(|e| e.into_inner());
        Ok(visible
            .into_iter()
            .filter(|(_, name)| wanted.as_ref().is_none_or(|w| w.contains(name)))
            .map(|(id, name)| match map.users.get(&id) {
                Some(e) => e.presence(e.visible(now, grace)),
                None => Presence {
                    user: name,
                    state: PresenceState::Offline,
                    last_seen: None,
                },
            })
            .collect())
    }

    /// Sets the caller away or back online (`offline` is refused).
    pub fn set_presence(&self, p: &Principal, state: PresenceState) -> DomainResult<Presence> {
        match state {
            PresenceState::Online => Ok(self.live.set_away(p, false)),
            PresenceState::Away => Ok(self.live.set_away(p, true)),
            PresenceState::Offline => Err(DomainError::BadRequest(
                "state must be online or away: you are offline when no device is connected".into(),
            )),
        }
    }

    /// The caller types (or stops) in a conversation. Members only; rate limited.
    pub async fn typing(
        &self,
        p: &Principal,
        conversation: ConversationId,
        active: bool,
    ) -> DomainResult<()> {
        self.live.typing(p, conversation, active).await
    }

    // ----- markers and receipts -----

    /// Moves the caller's markers forward and sends the receipts and state this makes.
    pub async fn mark(
        &self,
        p: &Principal,
        conversation: ConversationId,
        delivered: Option<Seq>,
        read: Option<Seq>,
    ) -> DomainResult<()> {
        let update = match self
            .store
            .advance_markers(p.id, conversation, delivered, read)
            .await
        {
            Err(StoreError::NotMember) => return Err(DomainError::NotMember(conversation)),
            other => other?,
        };
        // The receipts go out through the commit stream, in commit order.
        if let Some(state) = update.read_moved {
            let state = self.with_online(p, vec![state]).await?.remove(0);
            self.bus
                .publish(&[p.id], outbound(&ServerFrame::ConversationState { state }));
        }
        Ok(())
    }

    /// Marks a conversation read up to `seq` (default: its latest message).
    pub async fn read(
        &self,
        p: &Principal,
        conversation: ConversationId,
        seq: Option<Seq>,
    ) -> DomainResult<ConversationState> {
        if seq.is_some_and(|s| s < 0) {
            return Err(DomainError::BadRequest("seq must not be negative".into()));
        }
        self.mark(p, conversation, None, Some(seq.unwrap_or(i64::MAX)))
            .await?;
        self.conversation_state(p, conversation).await
    }

    async fn with_online(
        &self,
        p: &Principal,
        mut states: Vec<ConversationState>,
    ) -> DomainResult<Vec<ConversationState>> {
        let pairs = self.store.co_members(p.id).await?;
        let now = Instant::now();
        let mut online: HashMap<ConversationId, u32> = HashMap::new();
        {
            let map = self.live.presence.lock().unwrap_or_else(|e| e.into_inner());
            for (conversation, user) in pairs {
                if user != p.id && self.live.is_present(&map, user, now) {
                    *online.entry(conversation).or_default() += 1;
                }
            }
        }
        for s in &mut states {
            s.online = online.get(&s.conversation_id).copied().unwrap_or(0);
        }
        Ok(states)
    }

    /// The caller's state in every conversation they are a member of.
    pub async fn conversation_states(&self, p: &Principal) -> DomainResult<Vec<ConversationState>> {
        let states = self.store.conversation_states(p.id, None).await?;
        self.with_online(p, states).await
    }

    pub async fn conversation_state(
        &self,
        p: &Principal,
        conversation: ConversationId,
    ) -> DomainResult<ConversationState> {
        let states = self
            .store
            .conversation_states(p.id, Some(conversation))
            .await?;
        if states.is_empty() {
            return Err(DomainError::NotMember(conversation));
        }
        Ok(self.with_online(p, states).await?.remove(0))
    }

    /// Who has the caller's message `seq` (default: their latest) in a conversation.
    pub async fn receipts(
        &self,
        p: &Principal,
        conversation: ConversationId,
        seq: Option<Seq>,
    ) -> DomainResult<MessageReceipts> {
        match self.store.message_receipts(p.id, conversation, seq).await {
            Err(StoreError::NotMember) => Err(DomainError::NotMember(conversation)),
            Err(StoreError::NotFound) => Err(DomainError::NotFound(match seq {
                Some(seq) => format!("you have no message with seq {seq} in this conversation"),
                None => "you have sent no message in this conversation".into(),
            })),
            other => Ok(other?),
        }
    }

    // ----- mutes and settings -----

    /// Mutes a conversation for the caller (for `for_secs`, or until unmuted) or, with
    /// `mute` false, unmutes it. Every device of the caller is told.
    pub async fn mute(
        &self,
        p: &Principal,
        conversation: ConversationId,
        mute: bool,
        for_secs: Option<u64>,
    ) -> DomainResult<ConversationState> {
        let value = if mute {
            let until = match for_secs {
                Some(0) => {
                    return Err(DomainError::BadRequest(
                        "for_secs must be at least 1".into(),
                    ));
                }
                Some(secs) => Some(
                    OffsetDateTime::now_utc()
                        + time::Duration::seconds(secs.min(100 * 365 * 86_400) as i64),
                ),
                None => None,
            };
            Some(until)
        } else {
            None
        };
        match self.store.set_mute(p.id, conversation, value).await {
            Err(StoreError::NotMember) => return Err(DomainError::NotMember(conversation)),
            other => other?,
        }
        let state = self.conversation_state(p, conversation).await?;
        self.bus.publish(
            &[p.id],
            outbound(&ServerFrame::ConversationState {
                state: state.clone(),
            }),
        );
        Ok(state)
    }

    pub async fn settings(&self, p: &Principal) -> DomainResult<Settings> {
        Ok(self.store.settings(p.id).await?)
    }

    /// Changes the caller's settings; every device of the caller is told.
    pub async fn update_settings(
        &self,
        p: &Principal,
        update: SettingsUpdate,
    ) -> DomainResult<Settings> {
        let settings = self.store.update_settings(p.id, update).await?;
        self.bus
            .publish(&[p.id], outbound(&ServerFrame::Settings { settings }));
        Ok(settings)
    }
}
