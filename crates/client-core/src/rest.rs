//! The REST client: one method per endpoint of `/api/v1` (see `docs/API.md`), each
//! mapping transport failures to [`Error::Unreachable`] and error bodies to [`Error::Api`].

use std::time::Duration;

use natter_protocol::{
    AuthResponse, ConversationId, ConversationInfo, ConversationState, CreateGroupRequest,
    ErrorBody, ErrorCode, GroupInfo, Health, HistoryPage, HistoryQuery, LoginRequest,
    MembersRequest, MessageId, MessageReceipts, MuteRequest, OpenDirectRequest, Presence,
    PresenceQuery, PresenceState, ReadRequest, ReceiptsQuery, RegisterRequest, SendAck,
    SendRequest, Seq, SetPresenceRequest, Settings, SettingsUpdate, SyncPage, SyncQuery, UserInfo,
};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// How long to wait for a TCP (and TLS) connection before calling the server unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on a whole request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A REST client for one server, with or without a bearer token. Cheap to clone.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    base: Url,
    /// The base URL as the user wrote it (normalized), for error messages.
    display: String,
    token: Option<String>,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest")
            .field("server", &self.display)
            .field("authenticated", &self.token.is_some())
            .finish()
    }
}

mod admin;
mod files;
mod groups;

pub use files::{DownloadReport, Progress, part_path};

/// The rustls certificate error somewhere in `e`'s chain of causes, if that is what
/// failed.
pub(crate) fn certificate_problem(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(rustls::Error::InvalidCertificate(inner)) = c.downcast_ref::<rustls::Error>() {
            return Some(format!("{inner:?}"));
        }
        if let Some(rustls::Error::General(msg)) = c.downcast_ref::<rustls::Error>() {
            return Some(msg.clone());
        }
        // An io::Error's source() skips the error it wraps: look at that one too.
        if let Some(inner) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(found) = certificate_problem(inner)
        {
            return Some(found);
        }
        cause = c.source();
    }
    None
}

impl Rest {
    pub fn new(server: &str, token: Option<String>) -> Result<Rest, Error> {
        crate::init_crypto();
        let display = crate::session::normalize_server(server);
        let base = Url::parse(&display)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                Error::Invalid(natter_protocol::validate::ValidationError::Empty {
                    what: "valid http(s) server URL",
                })
            })?;
        let mut builder = reqwest::Client::builder();
        if base.scheme() == "https" {
            builder = builder.tls_backend_preconfigured((*crate::tls::client_config()?).clone());
        }
        let http = builder
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("natter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Protocol(format!("cannot build HTTP client: {e}")))?;
        Ok(Rest {
            http,
            base,
            display,
            token,
        })
    }

    /// The server's base URL, as shown in messages (`http://127.0.0.1:7600`).
    pub fn server(&self) -> &str {
        &self.display
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A copy of this client that authenticates with `token`.
    pub fn with_token(&self, token: String) -> Rest {
        Rest {
            token: Some(token),
            ..self.clone()
        }
    }

    /// `ws(s)://HOST/api/v1/ws`, with `?after=CURSOR` when a cursor is given.
    pub fn ws_url(&self, after: Option<MessageId>) -> String {
        let mut url = self.url(&["ws"]);
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        // Switching between these special schemes cannot fail.
        let _ = url.set_scheme(scheme);
        if let Some(after) = after {
            url.query_pairs_mut()
                .append_pair("after", &after.to_string());
        }
        url.to_string()
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let rb = self.http.request(method, self.url(segments));
        match &self.token {
            Some(token) => rb.bearer_auth(token),
            None => rb,
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> Error {
        if let Some(detail) = certificate_problem(&e) {
            return Error::Untrusted {
                url: self.display.clone(),
                detail,
            };
        }
        Error::Unreachable {
            url: self.display.clone(),
            source: Some(Box::new(e)),
        }
    }

    async fn execute(&self, rb: RequestBuilder) -> Result<reqwest::Response, Error> {
        let resp = rb.send().await.map_err(|e| {
            if e.is_builder() {
                Error::Protocol(e.to_string())
            } else {
                self.unreachable(e)
            }
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        Err(match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(b) => Error::Api {
                code: b.code,
                message: b.message,
            },
            Err(_) => Error::Api {
                code: code_for_status(status),
                message: format!("the server answered HTTP {status}"),
            },
        })
    }

    async fn call<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T, Error> {
        let resp = self.execute(rb).await?;
        let body = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        serde_json::from_slice(&body).map_err(|e| Error::Protocol(e.to_string()))
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, Error> {
        self.call(self.request(Method::GET, segments)).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T, Error> {
        self.call(self.request(Method::POST, segments).json(body))
            .await
    }

    pub async fn health(&self) -> Result<Health, Error> {
        self.get(&["health"]).await
    }

    pub async fn register(&self, req: &RegisterRequest) -> Result<AuthResponse, Error> {
        self.post(&["auth", "register"], req).await
    }

    pub async fn login(&self, req: &LoginRequest) -> Result<AuthResponse, Error> {
        self.post(&["auth", "login"], req).await
    }

    /// Revokes this client's token on the server.
    pub async fn logout(&self) -> Result<(), Error> {
        self.execute(self.request(Method::POST, &["auth", "logout"]))
            .await
            .map(drop)
    }

    pub async fn me(&self) -> Result<UserInfo, Error> {
        self.get(&["me"]).await
    }

    pub async fn user(&self, username: &str) -> Result<UserInfo, Error> {
        self.get(&["users", username]).await
    }

    /// The caller's conversations, latest activity first.
    pub async fn conversations(&self) -> Result<Vec<ConversationInfo>, Error> {
        self.get(&["conversations"]).await
    }

    pub async fn conversation(&self, id: ConversationId) -> Result<ConversationInfo, Error> {
        self.get(&["conversations", &id.to_string()]).await
    }

    /// The direct conversation with `username`, created on the server if needed.
    pub async fn open_direct(&self, username: &str) -> Result<ConversationInfo, Error> {
        self.post(
            &["direct"],
            &OpenDirectRequest {
                username: username.to_string(),
            },
        )
        .await
    }

    pub async fn history(
        &self,
        id: ConversationId,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, Error> {
        let rb = self.request(Method::GET, &["conversations", &id.to_string(), "messages"]);
        self.call(rb.query(query)).await
    }

    /// Sends one message; `timeout` bounds this one attempt (default 30 s).
    pub async fn send(
        &self,
        id: ConversationId,
        req: &SendRequest,
        timeout: Option<Duration>,
    ) -> Result<SendAck, Error> {
        let mut rb = self
            .request(
                Method::POST,
                &["conversations", &id.to_string(), "messages"],
            )
            .json(req);
        if let Some(t) = timeout {
            rb = rb.timeout(t);
        }
        self.call(rb).await
    }

    pub async fn sync(&self, query: &SyncQuery) -> Result<SyncPage, Error> {
        self.call(self.request(Method::GET, &["sync"]).query(query))
            .await
    }

    pub async fn create_group(&self, req: &CreateGroupRequest) -> Result<GroupInfo, Error> {
        self.post(&["groups"], req).await
    }

    /// Groups the caller is a member of, by name.
    pub async fn groups(&self) -> Result<Vec<GroupInfo>, Error> {
        self.get(&["groups"]).await
    }

    pub async fn group(&self, name: &str) -> Result<GroupInfo, Error> {
        self.get(&["groups", name]).await
    }

    pub async fn add_members(
        &self,
        group: &str,
        usernames: Vec<String>,
    ) -> Result<GroupInfo, Error> {
        self.post(&["groups", group, "members"], &MembersRequest { usernames })
            .await
    }

    pub async fn remove_member(&self, group: &str, username: &str) -> Result<GroupInfo, Error> {
        self.call(self.request(Method::DELETE, &["groups", group, "members", username]))
            .await
    }

    // ----- live layer -----

    /// Presence of `users` (all contacts when empty) that the caller may see.
    pub async fn presence(&self, users: &[String]) -> Result<Vec<Presence>, Error> {
        let query = PresenceQuery {
            users: (!users.is_empty()).then(|| users.join(",")),
        };
        self.call(self.request(Method::GET, &["presence"]).query(&query))
            .await
    }

    pub async fn set_presence(&self, state: PresenceState) -> Result<Presence, Error> {
        self.call(
            self.request(Method::PUT, &["me", "presence"])
                .json(&SetPresenceRequest { state }),
        )
        .await
    }

    pub async fn settings(&self) -> Result<Settings, Error> {
        self.get(&["me", "settings"]).await
    }

    pub async fn update_settings(&self, update: &SettingsUpdate) -> Result<Settings, Error> {
        self.call(
            self.request(Method::PATCH, &["me", "settings"])
                .json(update),
        )
        .await
    }

    /// The caller's read marker, unread count, mute and online count per conversation.
    pub async fn conversation_states(&self) -> Result<Vec<ConversationState>, Error> {
        self.get(&["me", "conversation-states"]).await
    }

    pub async fn conversation_state(&self, id: ConversationId) -> Result<ConversationState, Error> {
        self.get(&["conversations", &id.to_string(), "state"]).await
    }

    /// Moves the read marker to `seq` (default: the latest message).
    pub async fn mark_read(
        &self,
        id: ConversationId,
        seq: Option<Seq>,
    ) -> Result<ConversationState, Error> {
        self.post(
            &["conversations", &id.to_string(), "read"],
            &ReadRequest { seq },
        )
        .await
    }

    /// Announces typing (`active`) or ends it.
    pub async fn typing(&self, id: ConversationId, active: bool) -> Result<(), Error> {
        let method = if active { Method::POST } else { Method::DELETE };
        self.execute(self.request(method, &["conversations", &id.to_string(), "typing"]))
            .await
            .map(drop)
    }

    pub async fn receipts(
        &self,
        id: ConversationId,
        seq: Option<Seq>,
    ) -> Result<MessageReceipts, Error> {
        let rb = self.request(Method::GET, &["conversations", &id.to_string(), "receipts"]);
        self.call(rb.query(&ReceiptsQuery { seq })).await
    }

    /// Mutes (`Some(for_secs)`, `None` inside meaning until unmuted) or unmutes (`None`).
    pub async fn mute(
        &self,
        id: ConversationId,
        mute: Option<Option<u64>>,
    ) -> Result<ConversationState, Error> {
        let segments = ["conversations", &id.to_string(), "mute"];
        match mute {
            Some(for_secs) => {
                self.call(
                    self.request(Method::PUT, &segments)
                        .json(&MuteRequest { for_secs }),
                )
                .await
            }
            None => self.call(self.request(Method::DELETE, &segments)).await,
        }
    }
}

/// A code for an error answer without a readable body (e.g. from a proxy).
fn code_for_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        413 => ErrorCode::PayloadTooLarge,
        429 => ErrorCode::RateLimited,
        507 => ErrorCode::StorageUnavailable,
        s if s >= 500 => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let rest = Rest::new("http://127.0.0.1:7600/", None).unwrap();
        assert_eq!(rest.server(), "http://127.0.0.1:7600");
        assert_eq!(
            rest.url(&["groups", "ops"]).as_str(),
            "http://127.0.0.1:7600/api/v1/groups/ops"
        );
        assert_eq!(rest.ws_url(None), "ws://127.0.0.1:7600/api/v1/ws");
        assert_eq!(
            rest.ws_url(Some(42)),
            "ws://127.0.0.1:7600/api/v1/ws?after=42"
        );
        let tls = Rest::new("https://chat.example/natter", None).unwrap();
        assert_eq!(
            tls.ws_url(Some(1)),
            "wss://chat.example/natter/api/v1/ws?after=1"
        );
        // Segments are escaped, never interpreted as path syntax.
        assert_eq!(
            tls.url(&["users", "a/b"]).path(),
            "/natter/api/v1/users/a%2Fb"
        );
        assert!(Rest::new("ftp://x", None).is_err());
    }

    #[tokio::test]
    async fn refused_connection_is_unreachable() {
        // Bind then drop a listener to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let rest = Rest::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        let e = rest.health().await.unwrap_err();
        assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("cannot reach http://127.0.0.1:{port}: is natterd running?")
        );
    }
}
