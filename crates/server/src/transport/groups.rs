//! Group moderation routes: roles, name and topic, ownership, deletion, leaving.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use natter_protocol::{ErrorBody, GroupInfo, GroupSettingsRequest, RoleRequest, TransferRequest};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiPath, AppState, Auth};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_role))
        .routes(routes!(transfer))
        .routes(routes!(leave))
}

/// Promotes a member to admin or demotes an admin (owner or admin only; never the owner).
#[utoipa::path(post, path = "/groups/{name}/members/{username}/role", tag = "groups", security(("bearer" = [])),
    params(("name" = String, Path), ("username" = String, Path)), request_body = RoleRequest,
    responses((status = 200, body = GroupInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_role(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath((name, username)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<RoleRequest>,
) -> ApiResult<Json<GroupInfo>> {
    Ok(Json(
        s.domain
            .set_role(&auth.principal, &name, &username, req.role)
            .await?,
    ))
}

/// Renames the group and/or sets its topic (owner or admin only).
#[utoipa::path(patch, path = "/groups/{name}", tag = "groups", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = GroupSettingsRequest,
    responses((status = 200, body = GroupInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn update_group(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<GroupSettingsRequest>,
) -> ApiResult<Json<GroupInfo>> {
    let info = s
        .domain
        .update_group(
            &auth.principal,
            &name,
            req.name.as_deref(),
            req.topic.as_deref(),
        )
        .await?;
    Ok(Json(info))
}

/// Deletes the group with its timeline (owner only).
#[utoipa::path(delete, path = "/groups/{name}", tag = "groups", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn delete_group(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.domain.delete_group(&auth.principal, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes another member the owner; the old owner becomes an admin (owner only).
#[utoipa::path(post, path = "/groups/{name}/owner", tag = "groups", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = TransferRequest,
    responses((status = 200, body = GroupInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn transfer(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<TransferRequest>,
) -> ApiResult<Json<GroupInfo>> {
    Ok(Json(
        s.domain
            .transfer_group(&auth.principal, &name, &req.username)
            .await?,
    ))
}

/// Leaves the group (the owner transfers ownership first).
#[utoipa::path(post, path = "/groups/{name}/leave", tag = "groups", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn leave(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.domain.leave_group(&auth.principal, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
