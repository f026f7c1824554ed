//! Account-management routes: `/sessions` (the caller's own logins) and `/admin/...`
//! (server admins only; everyone else gets 403 `forbidden`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use natter_protocol::{
    AdminUser, CreateInviteRequest, ErrorBody, InviteInfo, PasswordRequest, ServerStats,
    SessionInfo,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiPath, AppState, Auth};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(users))
        .routes(routes!(disable))
        .routes(routes!(enable))
        .routes(routes!(reset_password))
        .routes(routes!(make_admin))
        .routes(routes!(revoke_admin))
        .routes(routes!(stats))
        .routes(routes!(create_invite, invites))
        .routes(routes!(revoke_invite))
}

/// The caller's live sessions; `current` marks the one this request used.
#[utoipa::path(get, path = "/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = [SessionInfo]), (status = 401, body = ErrorBody)))]
async fn sessions(State(s): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<SessionInfo>>> {
    Ok(Json(s.domain.sessions(&auth.principal, &auth.token).await?))
}

/// Revokes one of the caller's sessions (its token stops working at once).
#[utoipa::path(delete, path = "/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_session(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    s.domain.revoke_session(&auth.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [AdminUser]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn users(State(s): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<AdminUser>>> {
    Ok(Json(s.domain.admin_users(&auth.principal).await?))
}

/// Disables an account: its sessions are revoked and its sockets closed at once.
#[utoipa::path(post, path = "/admin/users/{username}/disable", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn disable(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.domain
        .set_disabled(&auth.principal, &username, true)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/users/{username}/enable", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn enable(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.domain
        .set_disabled(&auth.principal, &username, false)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a new password; every session of the account is revoked.
#[utoipa::path(post, path = "/admin/users/{username}/password", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path)), request_body = PasswordRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reset_password(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(username): ApiPath<String>,
    ApiJson(req): ApiJson<PasswordRequest>,
) -> ApiResult<StatusCode> {
    s.domain
        .reset_password(&auth.principal, &username, &req.password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/users/{username}/admin", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn make_admin(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.domain.set_admin(&auth.principal, &username, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/admin/users/{username}/admin", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_admin(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.domain
        .set_admin(&auth.principal, &username, false)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/admin/stats", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = ServerStats), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn stats(State(s): State<AppState>, auth: Auth) -> ApiResult<Json<ServerStats>> {
    Ok(Json(s.domain.stats(&auth.principal).await?))
}

/// Creates an invite code; the code is in this answer only.
#[utoipa::path(post, path = "/admin/invites", tag = "admin", security(("bearer" = [])),
    request_body = CreateInviteRequest,
    responses((status = 201, body = InviteInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_invite(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<CreateInviteRequest>,
) -> ApiResult<(StatusCode, Json<InviteInfo>)> {
    let info = s
        .domain
        .create_invite(&auth.principal, req.uses, req.expires_in_secs)
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

#[utoipa::path(get, path = "/admin/invites", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [InviteInfo]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn invites(State(s): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<InviteInfo>>> {
    Ok(Json(s.domain.invites(&auth.principal).await?))
}

#[utoipa::path(delete, path = "/admin/invites/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_invite(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    s.domain.revoke_invite(&auth.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
