//! REST handlers of the live layer: presence, typing, read markers, receipts, mutes and
//! settings. Each is documented for the OpenAPI document by its `#[utoipa::path]`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use natter_protocol::{
    ConversationState, ErrorBody, MessageReceipts, MuteRequest, Presence, PresenceQuery,
    ReadRequest, ReceiptsQuery, SetPresenceRequest, Settings, SettingsUpdate,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiPath, ApiQuery, AppState, Auth};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(presence))
        .routes(routes!(set_presence))
        .routes(routes!(settings, update_settings))
        .routes(routes!(conversation_states))
        .routes(routes!(conversation_state))
        .routes(routes!(read))
        .routes(routes!(typing, stop_typing))
        .routes(routes!(receipts))
        .routes(routes!(mute, unmute))
}

/// Presence of people who share a conversation with the caller (and the caller's own).
/// Named users the caller shares no conversation with are left out.
#[utoipa::path(get, path = "/presence", tag = "live", security(("bearer" = [])),
    params(PresenceQuery),
    responses((status = 200, body = [Presence]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn presence(
    State(s): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<PresenceQuery>,
) -> ApiResult<Json<Vec<Presence>>> {
    Ok(Json(
        s.domain
            .presence(&auth.principal, q.users.as_deref())
            .await?,
    ))
}

/// Sets the caller away or back online; contacts are told (batched).
#[utoipa::path(put, path = "/me/presence", tag = "live", security(("bearer" = [])),
    request_body = SetPresenceRequest,
    responses((status = 200, body = Presence), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn set_presence(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<SetPresenceRequest>,
) -> ApiResult<Json<Presence>> {
    Ok(Json(s.domain.set_presence(&auth.principal, req.state)?))
}

#[utoipa::path(get, path = "/me/settings", tag = "live", security(("bearer" = [])),
    responses((status = 200, body = Settings), (status = 401, body = ErrorBody)))]
async fn settings(State(s): State<AppState>, auth: Auth) -> ApiResult<Json<Settings>> {
    Ok(Json(s.domain.settings(&auth.principal).await?))
}

/// Changes the given settings; every device of the caller gets a `settings` frame.
#[utoipa::path(patch, path = "/me/settings", tag = "live", security(("bearer" = [])),
    request_body = SettingsUpdate,
    responses((status = 200, body = Settings), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn update_settings(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<SettingsUpdate>,
) -> ApiResult<Json<Settings>> {
    Ok(Json(s.domain.update_settings(&auth.principal, req).await?))
}

/// The caller's read marker, unread count, mute and online count in each conversation.
#[utoipa::path(get, path = "/me/conversation-states", tag = "live", security(("bearer" = [])),
    responses((status = 200, body = [ConversationState]), (status = 401, body = ErrorBody)))]
async fn conversation_states(
    State(s): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<ConversationState>>> {
    Ok(Json(s.domain.conversation_states(&auth.principal).await?))
}

#[utoipa::path(get, path = "/conversations/{id}/state", tag = "live", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = ConversationState), (status = 400, body = ErrorBody, description = "malformed id"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn conversation_state(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ConversationState>> {
    Ok(Json(
        s.domain.conversation_state(&auth.principal, id).await?,
    ))
}

/// Moves the caller's read marker forward (never back) and answers the new state.
#[utoipa::path(post, path = "/conversations/{id}/read", tag = "live", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = ReadRequest,
    responses((status = 200, body = ConversationState), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn read(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ReadRequest>,
) -> ApiResult<Json<ConversationState>> {
    Ok(Json(s.domain.read(&auth.principal, id, req.seq).await?))
}

/// Announces that the caller is typing; it expires by itself after a few seconds.
#[utoipa::path(post, path = "/conversations/{id}/typing", tag = "live", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 400, body = ErrorBody, description = "malformed id"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn typing(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    s.domain.typing(&auth.principal, id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the caller's typing indicator at once.
#[utoipa::path(delete, path = "/conversations/{id}/typing", tag = "live", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 400, body = ErrorBody, description = "malformed id"), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn stop_typing(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    s.domain.typing(&auth.principal, id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who has one of the caller's messages (delivered to, read by).
#[utoipa::path(get, path = "/conversations/{id}/receipts", tag = "live", security(("bearer" = [])),
    params(("id" = i64, Path), ReceiptsQuery),
    responses((status = 200, body = MessageReceipts), (status = 400, body = ErrorBody, description = "malformed id"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn receipts(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ReceiptsQuery>,
) -> ApiResult<Json<MessageReceipts>> {
    Ok(Json(s.domain.receipts(&auth.principal, id, q.seq).await?))
}

/// Mutes the conversation for the caller (on every device), for a while or until unmuted.
#[utoipa::path(put, path = "/conversations/{id}/mute", tag = "live", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = MuteRequest,
    responses((status = 200, body = ConversationState), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn mute(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<MuteRequest>,
) -> ApiResult<Json<ConversationState>> {
    Ok(Json(
        s.domain
            .mute(&auth.principal, id, true, req.for_secs)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/conversations/{id}/mute", tag = "live", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = ConversationState), (status = 400, body = ErrorBody, description = "malformed id"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn unmute(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ConversationState>> {
    Ok(Json(s.domain.mute(&auth.principal, id, false, None).await?))
}
