//! `/v1/tokens…` (admin): create, list and revoke API tokens.
//!
//! The replica that leads creates the secret (256 bits from the OS), commits only its hash,
//! and answers the secret once. A follower forwards the request as it came, so the secret is
//! made where it is committed. Listing reads the replicated records: names, roles, keys.

use std::sync::Arc;

use axum::Json;
use axum::extract::Path;
use axum::extract::State;
use axum::extract::rejection::PathRejection;
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::response::Response;

use super::error::ApiError;
use super::error::path_error;
use super::tasks::Body;
use super::tasks::Proposed;
use super::tasks::propose;
use crate::node::Node;
use crate::proto::tokens::CreateToken;
use crate::proto::tokens::CreatedToken;
use crate::proto::tokens::TokenInfo;
use crate::proto::tokens::TokenList;
use crate::proto::tokens::generate_token;
use crate::proto::tokens::token_record;
use crate::scheduler;
use crate::scheduler::Command;
use crate::util::now_ms;

/// `POST /v1/tokens` `{"name", "role", "worker_id"?}` → 201 with the secret, shown only here.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "tokens",
    operation_id = "create_token",
    request_body(content = CreateToken, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `token` is the secret, shown only in this answer", body = CreatedToken),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn create(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = body?;
    let req: CreateToken =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body)).map_err(path_error)?;
    let secret = generate_token();
    let record = token_record(&secret, &req, now_ms()).expect("generated tokens are well formed");
    record.validate().map_err(|e| ApiError::invalid(format!("{}: {}", e.field, e.message)))?;
    let cmd = Command::CreateToken { now_ms: record.created_ms, token: record };
    match propose(&node, cmd, Method::POST, &uri, &headers, body).await? {
        Proposed::Forwarded(relayed) => Ok(relayed),
        Proposed::Applied(resp) => match *resp {
            scheduler::Response::Token { token, created: true } => {
                tracing::info!(key = %token.key, name = %token.name, role = %token.role, "created an API token");
                let created = CreatedToken { token: secret, info: TokenInfo::from(&token) };
                Ok((StatusCode::CREATED, Json(created)).into_response())
            }
            // Only a record with this very secret's hash matches an existing one: impossible
            // for a fresh secret, so this is another token under the same key.
            other => Err(ApiError::internal(format!("unexpected answer to a token creation: {other:?}"))),
        },
    }
}

/// `GET /v1/tokens`: every token, without secrets.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    tag = "tokens",
    operation_id = "list_tokens",
    responses(
        (status = 200, description = "Every token by key, without secrets", body = TokenList),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn list(State(node): State<Arc<Node>>) -> Result<Json<TokenList>, ApiError> {
    node.read_barrier(tokio::time::Instant::now() + node.config.request_timeout).await?;
    let tokens = node.view.read(|a| a.state.tokens().map(TokenInfo::from).collect());
    Ok(Json(TokenList { tokens }))
}

/// `DELETE /v1/tokens/{key}` (the key or the name): requests with it are refused from the
/// moment the revocation is applied on each replica.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{key}",
    tag = "tokens",
    operation_id = "revoke_token",
    params(("key" = String, Path, description = "The token's key (16 hex digits) or its name")),
    responses(
        (status = 200, description = "The revoked token", body = TokenInfo),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn revoke(
    State(node): State<Arc<Node>>,
    key: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(key) = key?;
    let body = body?;
    let cmd = Command::RevokeToken { now_ms: now_ms(), key_or_name: key };
    match propose(&node, cmd, Method::DELETE, &uri, &headers, body).await? {
        Proposed::Forwarded(relayed) => Ok(relayed),
        Proposed::Applied(resp) => match *resp {
            scheduler::Response::TokenRevoked { token } => {
                tracing::info!(key = %token.key, name = %token.name, "revoked an API token");
                Ok(Json(TokenInfo::from(&token)).into_response())
            }
            other => Err(ApiError::internal(format!("unexpected answer to a token revocation: {other:?}"))),
        },
    }
}
