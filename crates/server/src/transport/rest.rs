//! REST handlers under `/api/v1`. Each is documented for the OpenAPI document by its
//! `#[utoipa::path]`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use natter_protocol::{
    AuthResponse, ConversationInfo, CreateGroupRequest, ErrorBody, GroupInfo, Health, HistoryPage,
    HistoryQuery, LoginRequest, MembersRequest, OpenDirectRequest, RegisterRequest, SendAck,
    SendRequest, SyncPage, SyncQuery, UserInfo,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::groups::*;
use super::{ApiError, ApiJson, ApiPath, ApiQuery, AppState, Auth, ClientIp};

type ApiResult<T> = Result<T, ApiError>;

/// Largest body the login and registration routes read: a name and a password fit many
/// times over; anything bigger is refused before it is buffered.
const AUTH_BODY_LIMIT: usize = 8 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    let auth = OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .layer(axum::extract::DefaultBodyLimit::max(AUTH_BODY_LIMIT));
    OpenApiRouter::new()
        .routes(routes!(health))
        .merge(auth)
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(user))
        .routes(routes!(conversations))
        .routes(routes!(conversation))
        .routes(routes!(open_direct))
        .routes(routes!(history, send))
        .routes(routes!(sync))
        .routes(routes!(create_group, groups))
        .routes(routes!(group, update_group, delete_group))
        .routes(routes!(add_members))
        .routes(routes!(remove_member))
}

#[utoipa::path(get, path = "/health", tag = "auth", responses((status = 200, body = Health)))]
async fn health(State(s): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        max_upload_bytes: Some(s.domain.files.max_upload_bytes),
    })
}

/// Registers an account and logs it in. The first account becomes a server admin.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = AuthResponse),
        (status = 400, body = ErrorBody, description = "invalid username or password"),
        (status = 403, body = ErrorBody, description = "registration is closed"),
        (status = 409, body = ErrorBody, description = "username taken"),
    ))]
async fn register(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<AuthResponse>)> {
    let resp = s
        .domain
        .register(&req.username, &req.password, req.invite.as_deref(), ip)
        .await?;
    Ok((StatusCode::CREATED, Json(resp)))
}

#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = AuthResponse), (status = 401, body = ErrorBody)))]
async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<AuthResponse>> {
    Ok(Json(
        s.domain
            .login(&req.username, &req.password, req.device, ip)
            .await?,
    ))
}

/// Revokes the token the request carries.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(State(s): State<AppState>, auth: Auth) -> ApiResult<StatusCode> {
    s.domain.logout(&auth.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserInfo), (status = 401, body = ErrorBody)))]
async fn me(auth: Auth) -> Json<UserInfo> {
    Json(auth.principal.info())
}

#[utoipa::path(get, path = "/users/{username}", tag = "auth", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = UserInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn user(
    State(s): State<AppState>,
    _auth: Auth,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<Json<UserInfo>> {
    Ok(Json(s.domain.user(&username).await?))
}

/// The caller's conversations, latest activity first.
#[utoipa::path(get, path = "/conversations", tag = "conversations", security(("bearer" = [])),
    responses((status = 200, body = [ConversationInfo]), (status = 401, body = ErrorBody)))]
async fn conversations(
    State(s): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<ConversationInfo>>> {
    Ok(Json(s.domain.conversations(&auth.principal).await?))
}

#[utoipa::path(get, path = "/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = ConversationInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn conversation(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ConversationInfo>> {
    Ok(Json(s.domain.conversation(&auth.principal, id).await?))
}

/// The direct conversation with a user, created when needed.
#[utoipa::path(post, path = "/direct", tag = "conversations", security(("bearer" = [])),
    request_body = OpenDirectRequest,
    responses((status = 200, body = ConversationInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn open_direct(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<OpenDirectRequest>,
) -> ApiResult<Json<ConversationInfo>> {
    Ok(Json(
        s.domain.open_direct(&auth.principal, &req.username).await?,
    ))
}

/// A page of a conversation's messages in ascending `seq` order.
#[utoipa::path(get, path = "/conversations/{id}/messages", tag = "conversations", security(("bearer" = [])),
    params(("id" = i64, Path), HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn history(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<HistoryPage>> {
    Ok(Json(
        s.domain
            .history(&auth.principal, id, q.before, q.after, q.limit)
            .await?,
    ))
}

/// Stores a message and answers once it is committed. A repeated `client_id` from the
/// same sender answers 200 with the original message and `duplicate: true`.
#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "conversations", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = SendRequest,
    responses(
        (status = 201, body = SendAck), (status = 200, body = SendAck, description = "duplicate client_id"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 507, body = ErrorBody),
    ))]
async fn send(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<SendRequest>,
) -> ApiResult<(StatusCode, Json<SendAck>)> {
    let ack: SendAck = s
        .domain
        .send(
            &auth.principal,
            id,
            &req.client_id,
            &req.text,
            &req.attachments,
        )
        .await?
        .into();
    let status = if ack.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(ack)))
}

/// Messages of all the caller's conversations after a cursor, oldest first.
#[utoipa::path(get, path = "/sync", tag = "conversations", security(("bearer" = [])),
    params(SyncQuery),
    responses((status = 200, body = SyncPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn sync(
    State(s): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<SyncQuery>,
) -> ApiResult<Json<SyncPage>> {
    Ok(Json(
        s.domain.sync(&auth.principal, q.after, q.limit).await?,
    ))
}

/// Creates a group; the caller becomes its owner.
#[utoipa::path(post, path = "/groups", tag = "groups", security(("bearer" = [])),
    request_body = CreateGroupRequest,
    responses((status = 201, body = GroupInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_group(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<CreateGroupRequest>,
) -> ApiResult<(StatusCode, Json<GroupInfo>)> {
    let info = s
        .domain
        .create_group(&auth.principal, &req.name, &req.members)
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// The groups the caller belongs to, by name.
#[utoipa::path(get, path = "/groups", tag = "groups", security(("bearer" = [])),
    responses((status = 200, body = [GroupInfo]), (status = 401, body = ErrorBody)))]
async fn groups(State(s): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<GroupInfo>>> {
    Ok(Json(s.domain.groups(&auth.principal).await?))
}

#[utoipa::path(get, path = "/groups/{name}", tag = "groups", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = GroupInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn group(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<GroupInfo>> {
    Ok(Json(s.domain.group_info(&auth.principal, &name).await?))
}

/// Adds members (owner or admin only).
#[utoipa::path(post, path = "/groups/{name}/members", tag = "groups", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = MembersRequest,
    responses((status = 200, body = GroupInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_members(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<MembersRequest>,
) -> ApiResult<Json<GroupInfo>> {
    Ok(Json(
        s.domain
            .add_members(&auth.principal, &name, &req.usernames)
            .await?,
    ))
}

/// Removes a member (owner or admin; anyone may remove themself).
#[utoipa::path(delete, path = "/groups/{name}/members/{username}", tag = "groups", security(("bearer" = [])),
    params(("name" = String, Path), ("username" = String, Path)),
    responses((status = 200, body = GroupInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn remove_member(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath((name, username)): ApiPath<(String, String)>,
) -> ApiResult<Json<GroupInfo>> {
    Ok(Json(
        s.domain
            .remove_member(&auth.principal, &name, &username)
            .await?,
    ))
}
