//! HTTP and WebSocket transport: axum routes, bearer-token extraction, and the mapping
//! of domain errors to stable wire errors. Internal details go to the log, never to the
//! client.

mod admin;
mod files;
mod groups;
mod live;
mod rest;
mod ws;
mod wsconn;

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use natter_protocol::{ErrorBody, ErrorCode};
use tokio_util::task::TaskTracker;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::config::Config;
use crate::domain::{Domain, DomainError, Principal};
use crate::hub::Hub;

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub domain: Arc<Domain>,
    pub hub: Arc<Hub>,
    pub config: Arc<Config>,
    /// WebSocket sessions, so shutdown can wait for their goodbyes.
    pub sessions: TaskTracker,
}

/// An error on its way to the client: a stable code and one sentence.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// For `rate_limited`: when to try again (sent as `Retry-After`).
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        if let DomainError::Internal(detail) = &e {
            tracing::error!(%detail, "internal error");
        }
        let retry_after = match &e {
            DomainError::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        ApiError {
            code: e.code(),
            message: e.to_string(),
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (
            status,
            Json(ErrorBody {
                code: self.code,
                message: self.message,
            }),
        )
            .into_response();
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: a client that waits that long gets through.
            let secs = wait.as_millis().div_ceil(1000).max(1);
            if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large");
        }
        ApiError::new(
            ErrorCode::BadRequest,
            format!("invalid request body: {}", r.body_text()),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("invalid query: {}", r.body_text()),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("invalid path: {}", r.body_text()),
        )
    }
}

/// `axum::Json` with our error body on rejection.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Query` with our error body on rejection.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `axum::extract::Path` with our error body on rejection.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// The peer's IP address, when the server was started with connection info (it always
/// is by [`crate::Server::serve`]).
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The caller, from `Authorization: Bearer TOKEN`.
pub struct Auth {
    pub principal: Principal,
    pub token: String,
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "missing bearer token: log in first",
                )
            })?
            .to_owned();
        let principal = state.domain.authenticate(&token).await?;
        Ok(Auth { principal, token })
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Natter API", description = "Natter chat server: REST under /api/v1 and a WebSocket at /api/v1/ws. See docs/API.md."),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and sessions"),
        (name = "conversations", description = "Direct and group conversations and their messages"),
        (name = "groups", description = "Groups and membership"),
        (name = "realtime", description = "The WebSocket event stream"),
        (name = "admin", description = "Server administration (server admins only)"),
        (name = "live", description = "Presence, typing, read markers, receipts, mutes and settings"),
        (name = "files", description = "File uploads, downloads and image previews"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The API routes and their OpenAPI document, built from the same handler list.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest(
            "/api/v1",
            rest::routes()
                .merge(live::routes())
                .merge(admin::routes())
                .merge(groups::routes())
                .merge(files::routes())
                .merge(ws::routes()),
        )
        .split_for_parts();
    document_rejections(&mut doc);
    (router, doc)
}

/// Any operation with path or query parameters or a body can be answered 400
/// `bad_request` (an extractor rejects the request before the handler runs), and any
/// body over the limit 413: documented here once rather than on every handler.
fn document_rejections(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| -> RefOr<utoipa::openapi::Response> {
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build();
        ResponseBuilder::new()
            .description(description)
            .content("application/json", content)
            .build()
            .into()
    };
    for item in doc.paths.paths.values_mut() {
        let path_params = item.parameters.as_ref().is_some_and(|p| !p.is_empty());
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let params = path_params || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let body = op.request_body.is_some();
            let responses = &mut op.responses.responses;
            if params || body {
                responses.entry("400".into()).or_insert_with(|| {
                    error("a parameter or the body is malformed or fails validation")
                });
            }
            if body {
                responses
                    .entry("413".into())
                    .or_insert_with(|| error("the request body is over the size limit"));
            }
        }
    }
}

/// The OpenAPI document as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

pub fn router(state: AppState) -> Router {
    let (router, doc) = api();
    let doc = Arc::new(doc);
    let body_limit = state.config.max_frame_bytes;
    router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async {
            ApiError::new(
                ErrorCode::NotFound,
                "no such endpoint: see /api/v1/openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
