//! [`Client`]: the logged-in account: REST calls with the session's token, target
//! resolution through the cache, and the persisted outbox with its send/flush logic.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use natter_protocol::limits::DEFAULT_MAX_MESSAGE_BYTES;
use natter_protocol::{
    ConversationId, ConversationInfo, CreateGroupRequest, ErrorCode, GroupInfo, HistoryPage,
    HistoryQuery, LoginRequest, MessageId, RegisterRequest, SendAck, SendRequest, Target, UserInfo,
    validate,
};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::cache::{Cache, OutboxEntry};
use crate::error::Error;
use crate::paths::Paths;
use crate::rest::Rest;
use crate::session::{Session, normalize_server, resolve_server};

/// The device label sent at login.
const DEVICE: &str = "natter cli";

/// A logged-in client. Cheap to clone; clones share the REST client and the cache.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rest: Rest,
    cache: Cache,
    session: Session,
    paths: Paths,
}

/// How [`Client::send_now`] behaves while the server cannot take the message.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// How long to keep retrying while the server is unreachable (or failing with 5xx).
    pub wait: Duration,
    /// When the wait runs out, leave the message in the outbox (to go out on the next
    /// flush) instead of dropping it.
    pub keep_queued: bool,
    /// Use this client id instead of a fresh UUIDv7 (for scripts that retry themselves).
    pub client_id: Option<String>,
    /// Ids of uploads ([`Client::upload`]) the message carries.
    pub attachments: Vec<String>,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            wait: Duration::from_secs(10),
            keep_queued: false,
            client_id: None,
            attachments: Vec::new(),
        }
    }
}

/// What became of a message given to [`Client::send_now`].
#[derive(Debug, Clone)]
pub enum SendOutcome {
    /// Durably stored by the server.
    Sent(SendAck),
    /// The server stayed unreachable; the message waits in the outbox under this id.
    Queued {
        client_id: String,
        last_error: String,
    },
}

/// The result of [`Client::flush`].
#[derive(Debug, Default)]
pub struct FlushReport {
    /// Entries the server acknowledged (and that left the outbox).
    pub sent: Vec<(OutboxEntry, SendAck)>,
    /// Entries the server refused for good (they left the outbox too).
    pub failed: Vec<(OutboxEntry, Error)>,
    /// Set when flushing stopped on a retryable error; the rest stays queued.
    pub stopped: Option<Error>,
    /// Entries still waiting.
    pub remaining: usize,
}

/// Exponential backoff with jitter: attempt 0 waits 0.5-1x `base`, doubling up to `cap`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    let factor: f64 = 0.5 + rand::random::<f64>() * 0.5;
    exp.mul_f64(factor)
}

impl Client {
    /// Opens the stored session. `explicit_server` (`--server`/`NATTER_SERVER`) overrides
    /// the server the session remembers, keeping the token: a server that moved to a new
    /// address keeps its sessions. The cache stays tied to the account, not the address.
    pub fn open(paths: Paths, explicit_server: Option<&str>) -> Result<Client, Error> {
        let session = Session::load(&paths)?.ok_or(Error::NotLoggedIn)?;
        let server = resolve_server(explicit_server, Some(&session));
        Client::from_session(paths, session, &server)
    }

    fn from_session(paths: Paths, session: Session, server: &str) -> Result<Client, Error> {
        let rest = Rest::new(server, Some(session.token.clone()))?;
        let cache = Cache::open(&paths.cache_db())?;
        let home = normalize_server(&session.server);
        cache.bind_identity(&format!("{}@{home}", session.username))?;
        Ok(Client {
            inner: Arc::new(Inner {
                rest,
                cache,
                session,
                paths,
            }),
        })
    }

    /// Registers an account (which also logs it in) and saves the session.
    pub async fn register(
        paths: Paths,
        explicit_server: Option<&str>,
        username: &str,
        password: &str,
    ) -> Result<(Client, UserInfo), Error> {
        Self::register_with_invite(paths, explicit_server, username, password, None).await
    }

    /// Like [`Client::register`], with an invite code for servers that require one.
    pub async fn register_with_invite(
        paths: Paths,
        explicit_server: Option<&str>,
        username: &str,
        password: &str,
        invite: Option<String>,
    ) -> Result<(Client, UserInfo), Error> {
        let username = validate::username(username)?;
        validate::password(password)?;
        let rest = Self::anonymous(&paths, explicit_server)?;
        let req = RegisterRequest {
            username,
            password: password.to_string(),
            invite,
        };
        let auth = rest.register(&req).await?;
        Self::save_login(paths, &rest, auth)
    }

    /// Logs in and saves the session, remembering the server used.
    pub async fn login(
        paths: Paths,
        explicit_server: Option<&str>,
        username: &str,
        password: &str,
    ) -> Result<(Client, UserInfo), Error> {
        let username = validate::username(username)?;
        let rest = Self::anonymous(&paths, explicit_server)?;
        let req = LoginRequest {
            username,
            password: password.to_string(),
            device: Some(DEVICE.to_string()),
        };
        let auth = rest.login(&req).await?;
        Self::save_login(paths, &rest, auth)
    }

    fn anonymous(paths: &Paths, explicit_server: Option<&str>) -> Result<Rest, Error> {
        let remembered = Session::load(paths).ok().flatten();
        Rest::new(&resolve_server(explicit_server, remembered.as_ref()), None)
    }

    fn save_login(
        paths: Paths,
        rest: &Rest,
        auth: natter_protocol::AuthResponse,
    ) -> Result<(Client, UserInfo), Error> {
        let session = Session {
            server: rest.server().to_string(),
            username: auth.user.username.clone(),
            token: auth.token,
        };
        session.save(&paths)?;
        let server = session.server.clone();
        Ok((Client::from_session(paths, session, &server)?, auth.user))
    }

    /// Revokes the token on the server and forgets the session. When the server cannot be
    /// reached the local session is still removed and `Ok(false)` is returned (the token
    /// stays valid on the server until it expires).
    pub async fn logout(self) -> Result<bool, Error> {
        let revoked = match self.inner.rest.logout().await {
            Ok(()) => true,
            // Already revoked or expired: the goal is reached.
            Err(Error::Api {
                code: ErrorCode::Unauthorized,
                ..
            }) => true,
            Err(Error::Unreachable { .. }) => false,
            Err(e) => return Err(e),
        };
        Session::delete(&self.inner.paths)?;
        Ok(revoked)
    }

    pub fn rest(&self) -> &Rest {
        &self.inner.rest
    }

    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    pub fn paths(&self) -> &Paths {
        &self.inner.paths
    }

    pub fn username(&self) -> &str {
        &self.inner.session.username
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        self.inner.rest.server()
    }

    pub async fn me(&self) -> Result<UserInfo, Error> {
        self.inner.rest.me().await
    }

    // ----- conversations and targets -----

    /// The conversation a target names, from the cache when known, else from the server
    /// (`@bob` opens the direct conversation; `ops` looks the group up).
    pub async fn resolve(&self, target: &Target) -> Result<ConversationInfo, Error> {
        if let Some(info) = self
            .inner
            .cache
            .conversation_by_target(&target.to_string())?
        {
            return Ok(info);
        }
        self.resolve_fresh(target).await
    }

    /// Like [`Client::resolve`] but always asks the server (and refreshes the cache).
    pub async fn resolve_fresh(&self, target: &Target) -> Result<ConversationInfo, Error> {
        let info = match target {
            Target::Direct(user) => self.inner.rest.open_direct(user).await?,
            Target::Group(name) => {
                let group = self.inner.rest.group(name).await?;
                self.inner.rest.conversation(group.id).await?
            }
        };
        self.inner.cache.put_conversation(&info)?;
        Ok(info)
    }

    /// A conversation by id, from the cache or the server.
    pub async fn conversation(&self, id: ConversationId) -> Result<ConversationInfo, Error> {
        if let Some(info) = self.inner.cache.conversation(id)? {
            return Ok(info);
        }
        let info = self.inner.rest.conversation(id).await?;
        self.inner.cache.put_conversation(&info)?;
        Ok(info)
    }

    /// The caller's conversations from the server, latest activity first (cached too).
    pub async fn conversations(&self) -> Result<Vec<ConversationInfo>, Error> {
        let list = self.inner.rest.conversations().await?;
        for info in &list {
            self.inner.cache.put_conversation(info)?;
        }
        Ok(list)
    }

    /// A page of a conversation's history (ascending seq); the messages are cached.
    pub async fn history(
        &self,
        target: &Target,
        query: &HistoryQuery,
    ) -> Result<(ConversationInfo, HistoryPage), Error> {
        let (info, page) = self
            .with_fresh_retry(target, |id| async move {
                self.inner.rest.history(id, query).await
            })
            .await?;
        for m in &page.messages {
            self.inner.cache.put_message(m)?;
        }
        Ok((info, page))
    }

    /// Runs `f` on the target's conversation id; when a cached id turns out stale
    /// (`not_member`/`not_found`), resolves the target afresh and tries once more.
    pub(crate) async fn with_fresh_retry<T, F, Fut>(
        &self,
        target: &Target,
        f: F,
    ) -> Result<(ConversationInfo, T), Error>
    where
        F: Fn(ConversationId) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let cached = self
            .inner
            .cache
            .conversation_by_target(&target.to_string())?;
        let info = match cached {
            Some(info) => match f(info.id).await {
                Ok(v) => return Ok((info, v)),
                Err(e) if is_stale(&e) => {
                    self.inner.cache.forget_conversation(info.id)?;
                    self.resolve_fresh(target).await?
                }
                Err(e) => return Err(e),
            },
            None => self.resolve_fresh(target).await?,
        };
        let v = f(info.id).await?;
        Ok((info, v))
    }

    // ----- groups -----

    pub async fn create_group(&self, name: &str, members: Vec<String>) -> Result<GroupInfo, Error> {
        let req = CreateGroupRequest {
            name: validate::group_name(name)?,
            members,
        };
        self.inner.rest.create_group(&req).await
    }

    pub async fn groups(&self) -> Result<Vec<GroupInfo>, Error> {
        self.inner.rest.groups().await
    }

    pub async fn group(&self, name: &str) -> Result<GroupInfo, Error> {
        self.inner.rest.group(&validate::group_name(name)?).await
    }

    pub async fn add_members(&self, name: &str, users: Vec<String>) -> Result<GroupInfo, Error> {
        self.inner
            .rest
            .add_members(&validate::group_name(name)?, users)
            .await
    }

    pub async fn remove_member(&self, name: &str, user: &str) -> Result<GroupInfo, Error> {
        self.inner
            .rest
            .remove_member(&validate::group_name(name)?, &validate::username(user)?)
            .await
    }

    // ----- files -----

    /// Uploads the file at `path` (named by its file name) and returns the attachment to
    /// send with [`SendOptions::attachments`] or [`Client::queue_with`]. A file over the
    /// server's upload limit is refused before any byte travels.
    pub async fn upload(
        &self,
        path: &Path,
        progress: Option<crate::rest::Progress>,
    ) -> Result<natter_protocol::Attachment, Error> {
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        self.check_upload_sizes(&[(path, meta.len())]).await?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        self.inner.rest.upload(path, &name, progress).await
    }

    /// Refuses, before any byte travels, the first of `files` (path, size) that is over
    /// the server's upload limit. When the limit cannot be learned, the upload itself
    /// finds out.
    pub async fn check_upload_sizes(&self, files: &[(&Path, u64)]) -> Result<(), Error> {
        let Ok(health) = self.inner.rest.health().await else {
            return Ok(());
        };
        let Some(max) = health.max_upload_bytes else {
            return Ok(());
        };
        match files.iter().find(|(_, len)| *len > max) {
            Some((path, len)) => Err(Error::Api {
                code: ErrorCode::PayloadTooLarge,
                message: format!(
                    "{} is {}; the server takes files up to {}",
                    path.display(),
                    natter_protocol::human_size(*len),
                    natter_protocol::human_size(max)
                ),
            }),
            None => Ok(()),
        }
    }

    /// What the server knows about attachment `id`.
    pub async fn attachment(&self, id: &str) -> Result<natter_protocol::Attachment, Error> {
        self.inner.rest.attachment(id).await
    }

    /// The PNG preview of an image attachment.
    pub async fn thumbnail(&self, id: &str) -> Result<Vec<u8>, Error> {
        self.inner.rest.thumbnail(id).await
    }

    /// Downloads attachment `id` and checks it against its hash. `dest` is a file path, a
    /// directory to put it in under its (sanitized) name, or `None` for the current
    /// directory. An existing file is replaced only with `overwrite`; an interrupted
    /// download of the same file resumes.
    pub async fn download(
        &self,
        id: &str,
        dest: Option<&Path>,
        overwrite: bool,
        progress: Option<crate::rest::Progress>,
    ) -> Result<crate::rest::DownloadReport, Error> {
        let a = self.inner.rest.attachment(id).await?;
        let safe = natter_protocol::sanitize::filename(&a.name);
        let path = match dest {
            None => std::path::PathBuf::from(safe),
            Some(d) if d.is_dir() => d.join(safe),
            Some(d) => d.to_owned(),
        };
        self.inner
            .rest
            .download(&a, &path, overwrite, progress)
            .await
    }

    // ----- outbox -----

    /// Persists a message in the outbox without sending it; returns its client id.
    pub fn queue(
        &self,
        target: &Target,
        text: &str,
        client_id: Option<String>,
    ) -> Result<String, Error> {
        self.queue_with(target, text, Vec::new(), client_id)
    }

    /// Like [`Client::queue`], for a message that carries uploaded files (its text may
    /// then be empty).
    pub fn queue_with(
        &self,
        target: &Target,
        text: &str,
        attachments: Vec<String>,
        client_id: Option<String>,
    ) -> Result<String, Error> {
        validate::message(text, attachments.len(), DEFAULT_MAX_MESSAGE_BYTES)?;
        let client_id = match client_id {
            Some(id) => {
                validate::client_id(&id)?;
                id
            }
            None => uuid::Uuid::now_v7().to_string(),
        };
        if self.inner.cache.outbox_get(&client_id)?.is_some() {
            // A script retrying with its own client id: the entry is already queued.
            return Ok(client_id);
        }
        self.inner.cache.outbox_push(&OutboxEntry {
            client_id: client_id.clone(),
            target: target.to_string(),
            conversation_id: None,
            text: text.to_string(),
            attachments,
            created_at: OffsetDateTime::now_utc(),
        })?;
        Ok(client_id)
    }

    /// Pending outbox entries, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, Error> {
        self.inner.cache.outbox()
    }

    /// One attempt to deliver an outbox entry. The entry leaves the outbox only after the
    /// server's ack (or a final refusal, which the caller handles).
    async fn deliver(
        &self,
        entry: &OutboxEntry,
        timeout: Option<Duration>,
    ) -> Result<SendAck, Error> {
        let req = SendRequest {
            client_id: entry.client_id.clone(),
            text: entry.text.clone(),
            attachments: entry.attachments.clone(),
        };
        let ack = match entry.conversation_id {
            Some(id) => self.inner.rest.send(id, &req, timeout).await?,
            None => {
                let target = Target::parse(&entry.target)?;
                let (info, ack) = self
                    .with_fresh_retry(&target, |id| {
                        let req = &req;
                        async move { self.inner.rest.send(id, req, timeout).await }
                    })
                    .await?;
                self.inner
                    .cache
                    .outbox_set_conversation(&entry.client_id, info.id)?;
                ack
            }
        };
        self.inner.cache.put_message(&ack.message)?;
        Ok(ack)
    }

    /// Sends every pending outbox entry, oldest first, each with its original client id.
    /// Stops at the first retryable failure (the server is unreachable or failing), so
    /// order is kept; entries the server refuses for good are dropped and reported.
    pub async fn flush(&self) -> Result<FlushReport, Error> {
        let mut report = FlushReport::default();
        let pending = self.inner.cache.outbox()?;
        let total = pending.len();
        for (i, entry) in pending.into_iter().enumerate() {
            match self.deliver(&entry, None).await {
                Ok(ack) => {
                    self.inner.cache.outbox_remove(&entry.client_id)?;
                    report.sent.push((entry, ack));
                }
                Err(e) if e.is_retryable() => {
                    report.stopped = Some(e);
                    report.remaining = total - i;
                    break;
                }
                Err(e) => {
                    self.inner.cache.outbox_remove(&entry.client_id)?;
                    report.failed.push((entry, e));
                }
            }
        }
        Ok(report)
    }

    /// Sends a message now and waits for the durable ack. The message is first persisted
    /// in the outbox; while the server is unreachable it is retried with jittered backoff
    /// until `opts.wait` has passed. A final refusal (4xx) is returned at once. When the
    /// wait runs out the message is dropped ([`Error::NotSent`]) unless
    /// `opts.keep_queued`, in which case it stays in the outbox ([`SendOutcome::Queued`]).
    pub async fn send_now(
        &self,
        target: &Target,
        text: &str,
        opts: SendOptions,
    ) -> Result<SendOutcome, Error> {
        let client_id = self.queue_with(
            target,
            text,
            opts.attachments.clone(),
            opts.client_id.clone(),
        )?;
        let entry = self
            .inner
            .cache
            .outbox_get(&client_id)?
            .ok_or_else(|| Error::Protocol("outbox entry vanished".into()))?;
        let start = Instant::now();
        let deadline = start + opts.wait;
        let mut attempt = 0u32;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = remaining.clamp(Duration::from_secs(2), Duration::from_secs(30));
            let result = self.deliver(&entry, Some(timeout)).await;
            match result {
                Ok(ack) => {
                    self.inner.cache.outbox_remove(&client_id)?;
                    return Ok(SendOutcome::Sent(ack));
                }
                Err(e) if e.is_retryable() => {
                    let now = Instant::now();
                    if now >= deadline {
                        if opts.keep_queued {
                            return Ok(SendOutcome::Queued {
                                client_id,
                                last_error: e.to_string(),
                            });
                        }
                        self.inner.cache.outbox_remove(&client_id)?;
                        return Err(Error::NotSent {
                            after: opts.wait,
                            last: Box::new(e),
                        });
                    }
                    let pause =
                        backoff(attempt, Duration::from_millis(200), Duration::from_secs(2))
                            .min(deadline - now);
                    tracing::debug!(error = %e, ?pause, attempt, "send failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(pause).await;
                }
                Err(e) => {
                    self.inner.cache.outbox_remove(&client_id)?;
                    return Err(e);
                }
            }
        }
    }

    // ----- resume cursor -----

    /// The highest message id taken from the event stream.
    pub fn cursor(&self) -> Result<Option<MessageId>, Error> {
        self.inner.cache.cursor()
    }

    /// Records that every message up to `id` was handled (see `Connection` about commits).
    pub fn commit_cursor(&self, id: MessageId) -> Result<(), Error> {
        self.inner.cache.advance_cursor(id)
    }

    /// The path of the cache database (for diagnostics).
    pub fn cache_path(&self) -> std::path::PathBuf {
        self.inner.paths.cache_db()
    }

    /// Where the session file is.
    pub fn session_path(&self) -> std::path::PathBuf {
        self.inner.paths.session_file()
    }
}

fn is_stale(e: &Error) -> bool {
    matches!(e.code(), Some(ErrorCode::NotMember | ErrorCode::NotFound))
}

/// True when `dir` holds a session (for front ends deciding what to show first).
pub fn has_session(dir: &Path) -> bool {
    Paths::under(dir).session_file().exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline_client(dir: &Path) -> (Client, u16) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let paths = Paths::under(dir);
        Session {
            server: format!("http://127.0.0.1:{port}"),
            username: "alice".into(),
            token: "t".into(),
        }
        .save(&paths)
        .unwrap();
        (Client::open(paths, None).unwrap(), port)
    }

    #[test]
    fn open_requires_a_session_and_honours_an_explicit_server() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Client::open(Paths::under(dir.path()), None),
            Err(Error::NotLoggedIn)
        ));
        let (client, port) = offline_client(dir.path());
        client
            .queue(&Target::parse("@bob").unwrap(), "kept", None)
            .unwrap();
        let moved = Client::open(Paths::under(dir.path()), Some("http://127.0.0.1:1")).unwrap();
        assert_eq!(moved.server(), "http://127.0.0.1:1");
        assert_eq!(
            moved.outbox().unwrap().len(),
            1,
            "same account: the cache is kept"
        );
        let home = Client::open(Paths::under(dir.path()), None).unwrap();
        assert_eq!(home.server(), format!("http://127.0.0.1:{port}"));
    }

    #[test]
    fn queue_validates_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let (client, _) = offline_client(dir.path());
        let bob = Target::parse("@bob").unwrap();
        let e = client.queue(&bob, &"x".repeat(20480), None).unwrap_err();
        assert_eq!(e.to_string(), "message is 20480 bytes; the limit is 16384");
        assert!(client.queue(&bob, "hi", Some("bad id".into())).is_err());
        let id = client.queue(&bob, "hi", None).unwrap();
        assert_eq!(
            client.queue(&bob, "hi", Some(id.clone())).unwrap(),
            id,
            "idempotent"
        );
        let pending = client.outbox().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (pending[0].target.as_str(), pending[0].text.as_str()),
            ("@bob", "hi")
        );
        // A second process (same NATTER_HOME) sees it.
        let again = Client::open(Paths::under(dir.path()), None).unwrap();
        assert_eq!(again.outbox().unwrap()[0].client_id, id);
    }

    #[tokio::test]
    async fn send_now_gives_up_and_drops_or_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let (client, port) = offline_client(dir.path());
        let ops = Target::parse("ops").unwrap();
        let opts = SendOptions {
            wait: Duration::from_millis(300),
            ..SendOptions::default()
        };
        let e = client
            .send_now(&ops, "hello", opts.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::NotSent { last, .. } if matches!(**last, Error::Unreachable { .. }))
        );
        assert_eq!(
            e.to_string(),
            format!(
                "message not sent (gave up after 300ms): cannot reach http://127.0.0.1:{port}: is natterd running?"
            )
        );
        assert!(
            client.outbox().unwrap().is_empty(),
            "dropped after giving up"
        );

        let keep = SendOptions {
            keep_queued: true,
            client_id: Some("c-1".into()),
            ..opts
        };
        match client.send_now(&ops, "hello", keep).await.unwrap() {
            SendOutcome::Queued { client_id, .. } => assert_eq!(client_id, "c-1"),
            other => panic!("expected queued, got {other:?}"),
        }
        assert_eq!(client.outbox().unwrap()[0].client_id, "c-1");
        let report = client.flush().await.unwrap();
        assert!(report.sent.is_empty() && report.failed.is_empty());
        assert!(matches!(report.stopped, Some(Error::Unreachable { .. })));
        assert_eq!(report.remaining, 1);
    }

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let cap = Duration::from_secs(10);
        for attempt in 0..40 {
            let d = backoff(attempt, Duration::from_millis(500), cap);
            assert!(d <= cap);
            assert!(d >= Duration::from_millis(250));
        }
    }
}
