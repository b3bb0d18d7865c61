//! # The OpenAPI 3.1 document of the public API, served at `GET /v1/openapi.json`
//!
//! Generated from the code, so it cannot drift from what is served:
//! 1. Every public route is registered in [`super::router`] with `utoipa_axum`'s
//!    `OpenApiRouter::routes(routes!(handler, …))`, which takes the handler together with its
//!    `#[utoipa::path]` description: a route is never served without being documented. Only
//!    `/v1/internal/*` is added with a plain `.route` (replica to replica, not public).
//! 2. Schemas are derived (`utoipa::ToSchema`) from the wire types in [`crate::proto`] and the
//!    scheduler types that appear on the wire, honouring their serde attributes; the few types
//!    with a hand-written JSON form (task origin, checkpoint) take the schema of that form.
//! 3. [`finish`] adds what every route shares: the `bearer` security scheme, 401 and 403 on
//!    every route but `/health` and `/ready`, 431 everywhere (the header limit wraps the whole
//!    router).
//!
//! Error responses are components, one per status, each with the error body
//! `{"error": {"code", "message"}}` ([`ErrorBody`]); 503 also carries `Retry-After`.
//!
//! The document is built once, on first request, and served from memory. There is no Swagger
//! UI: any OpenAPI viewer can read the JSON.

use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::response::Response;
use utoipa::openapi::ContentBuilder;
use utoipa::openapi::HeaderBuilder;
use utoipa::openapi::ObjectBuilder;
use utoipa::openapi::OpenApi;
use utoipa::openapi::Ref;
use utoipa::openapi::RefOr;
use utoipa::openapi::ResponseBuilder;
use utoipa::openapi::Schema;
use utoipa::openapi::Type;
use utoipa::openapi::security::HttpAuthScheme;
use utoipa::openapi::security::HttpBuilder;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::security::SecurityScheme;

use crate::proto::ErrorBody;
use crate::proto::ErrorCode;
use crate::proto::ErrorDetail;
use crate::proto::MAX_REQUEST_ID_BYTES;
use crate::proto::tasks::Consistency;
use crate::scheduler::TaskState;

/// Name of the security scheme (bearer tokens).
pub const SECURITY_SCHEME: &str = "bearer";
/// Routes anyone may call: no token, so no 401 or 403.
pub const OPEN_ROUTES: &[&str] = &["/health", "/ready"];
/// Path of the document.
pub const SPEC_PATH: &str = "/v1/openapi.json";

/// The parts of the document that are not routes: info, tags, error components.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "taskraft",
        description = "A highly available task scheduler cluster on Raft. Every replica serves \
            this API; writes that reach a follower are forwarded to the leader. Reads are \
            linearizable unless `?consistency=stale`. Errors are `{\"error\": {\"code\", \
            \"message\"}}`: 400/401/403/404/409/413/422/431 and 503 are definite (nothing was \
            written), 504 `outcome_unknown` is not (retry with the same request id or \
            idempotency key).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(
        // Types only query parameters refer to (`IntoParams` does not collect them).
        schemas(ErrorBody, ErrorDetail, ErrorCode, Consistency, TaskState),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            Invalid,
            HeadersTooLarge,
            Unavailable,
            Timeout
        ),
    ),
    tags(
        (name = "tasks", description = "Submit, read, cancel and wait for tasks"),
        (name = "schedules", description = "Timed triggers: cron, intervals, one-shots"),
        (name = "workflows", description = "DAGs of tasks: edge conditions, shards, results passed to children"),
        (name = "limits", description = "Cluster-wide concurrency limits by key"),
        (name = "workers", description = "The worker protocol and worker administration"),
        (name = "cluster", description = "Membership, status, health and this document"),
        (name = "tokens", description = "API tokens and their roles (admin)"),
    ),
)]
pub struct ApiDoc;

macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident = $description:literal,)*) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<utoipa::openapi::Response>) {
                    (stringify!($name), error_response($description, false).into())
                }
            }
        )*
    };
}

error_responses! {
    /// 400.
    BadRequest = "The request cannot be parsed (malformed JSON, a path segment of the wrong type). Nothing was written.",
    /// 401.
    Unauthorized = "No valid bearer token. Nothing was written.",
    /// 403.
    Forbidden = "The token's role does not allow this. Nothing was written.",
    /// 404.
    NotFound = "No such task, schedule, worker or member (code `not_found`), or a task or workflow that finished longer ago than the retention horizon and was forgotten (code `forgotten`). Nothing was written.",
    /// 409.
    Conflict = "The request conflicts with the current state (see the code). Nothing was written.",
    /// 413.
    PayloadTooLarge = "The body is over `max_body_bytes` (or a checkpoint over its limit). Nothing was written.",
    /// 422.
    Invalid = "A field or query parameter has an invalid value; the message names it. Nothing was written.",
    /// 431.
    HeadersTooLarge = "The request's headers are over the limits (count or bytes). Nothing was written.",
    /// 504.
    Timeout = "Deadline passed. For a write (`outcome_unknown`) it may still take effect: retry with the same request id or idempotency key. For a read (`timeout`) nothing changed.",
}

/// 503 + `Retry-After`.
pub struct Unavailable;

impl<'r> utoipa::ToResponse<'r> for Unavailable {
    fn response() -> (&'r str, RefOr<utoipa::openapi::Response>) {
        let description = "No leader, no quorum, or this replica cannot serve right now; retry after \
            `Retry-After` seconds (or read with `?consistency=stale`). Nothing was written.";
        ("Unavailable", error_response(description, true).into())
    }
}

fn error_response(description: &str, retry_after: bool) -> utoipa::openapi::Response {
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build());
    if retry_after {
        let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0));
        let header = HeaderBuilder::new().schema(seconds).description(Some("Seconds to wait before retrying."));
        response = response.header("Retry-After", header.build());
    }
    response.build()
}

/// The optional request-id header of writes that de-duplicate (`x-taskraft-request-id`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct RequestIdHeader {
    /// Client id + serial: apply de-duplicates it, so a retried write never doubles. Takes
    /// precedence over a `request_id` body field. 1 to 256 visible ASCII characters.
    #[param(rename = "x-taskraft-request-id", min_length = 1, max_length = 256, pattern = "^[\\x21-\\x7e]+$")]
    #[allow(dead_code, reason = "documentation only: handlers read the header map")]
    request_id: Option<String>,
}

const _: () = assert!(MAX_REQUEST_ID_BYTES == 256, "update RequestIdHeader's max_length");

/// The raw bytes of a checkpoint.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/octet-stream")
            .description(Some("Opaque bytes"))
            .into()
    }
}

impl utoipa::ToSchema for Binary {}

/// Adds what every route shares (see the module docs). Idempotent.
pub fn finish(spec: &mut OpenApi) {
    let components = spec.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        SECURITY_SCHEME,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    spec.security = Some(vec![SecurityRequirement::new(SECURITY_SCHEME, Vec::<String>::new())]);
    for (path, item) in spec.paths.paths.iter_mut() {
        let open = OPEN_ROUTES.contains(&path.as_str());
        for op in operations(item) {
            let responses = &mut op.responses.responses;
            let mut add = |status: &str, name: &str| {
                responses.entry(status.to_string()).or_insert_with(|| Ref::from_response_name(name).into());
            };
            add("431", "HeadersTooLarge");
            if let Some(body) = op.request_body.as_mut() {
                unwrap_optional_body(body);
            }
            if open {
                op.security = Some(vec![SecurityRequirement::default()]);
            } else {
                add("401", "Unauthorized");
                add("403", "Forbidden");
            }
        }
    }
}

/// An optional body (`request_body(content = Option<T>)`) is not required, but utoipa also
/// makes its schema "null or T"; a JSON `null` is not what "no body" means, so keep only T.
fn unwrap_optional_body(body: &mut utoipa::openapi::request_body::RequestBody) {
    if body.required == Some(utoipa::openapi::Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else { continue };
        let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == utoipa::openapi::schema::SchemaType::Type(Type::Null));
        if let [a, b] = one_of.items.as_slice()
            && (is_null(a) || is_null(b))
        {
            content.schema = Some(if is_null(a) { b.clone() } else { a.clone() });
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The document as JSON, built once.
static SPEC_JSON: LazyLock<axum::body::Bytes> = LazyLock::new(|| {
    let spec = super::openapi();
    axum::body::Bytes::from(spec.to_json().expect("the OpenAPI document serializes"))
});

/// `GET /v1/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "cluster",
    operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = serde_json::Value),
    ),
)]
pub async fn serve() -> Response {
    ([(CONTENT_TYPE, "application/json")], SPEC_JSON.clone()).into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::from_slice(&SPEC_JSON).unwrap()
    }

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn document_is_openapi_3_1_and_every_reference_resolves() {
        let doc = document();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "{}", doc["openapi"]);
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external reference {r}"));
            assert!(doc.pointer(pointer).is_some(), "unresolved reference {r}");
        }
    }

    #[test]
    fn every_operation_has_a_unique_id_auth_errors_and_json_errors() {
        let doc = document();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            assert!(!path.starts_with("/v1/internal/"), "{path} is internal");
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
                assert!(ids.insert(id.to_string()), "operationId {id} twice");
                let responses = op["responses"].as_object().unwrap();
                let open = OPEN_ROUTES.contains(&path.as_str());
                for status in ["401", "403"] {
                    assert_eq!(responses.contains_key(status), !open, "{method} {path}: {status}");
                }
                assert_eq!(op.get("security").is_some(), open, "{method} {path}: security override");
                assert!(responses.contains_key("431"), "{method} {path}: 431");
                assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no 2xx");
                for (status, r) in responses {
                    if status.starts_with('4') || (status.starts_with('5') && path != "/ready") {
                        let name =
                            r["$ref"].as_str().unwrap_or_else(|| panic!("{method} {path} {status}: inline error"));
                        let response = doc.pointer(name.strip_prefix('#').unwrap()).unwrap();
                        let schema = &response["content"]["application/json"]["schema"]["$ref"];
                        assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path} {status}");
                    }
                    if status == "503" && path != "/ready" {
                        assert_eq!(r["$ref"], "#/components/responses/Unavailable", "{method} {path}");
                    }
                }
            }
        }
        let retry_after = &doc["components"]["responses"]["Unavailable"]["headers"]["Retry-After"];
        assert!(retry_after.is_object(), "503 documents Retry-After");
        assert_eq!(doc["components"]["securitySchemes"][SECURITY_SCHEME]["scheme"], "bearer");
    }

    /// Spot checks that the derived schemas say what serde does, for the shapes serde writes by
    /// hand or through attributes (the full check is schemathesis against a live cluster).
    #[test]
    fn schemas_follow_serde() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        // deny_unknown_fields, and container `default`: nothing but the struct's own fields,
        // none required.
        assert_eq!(schemas["TaskSpec"]["additionalProperties"], false);
        assert!(schemas["TaskSpec"].get("required").is_none(), "{}", schemas["TaskSpec"]);
        // The submission adds the input shortcuts.
        for field in ["request_id", "max_attempts", "labels", "command"] {
            assert!(schemas["TaskSubmission"]["properties"][field].is_object(), "{field}");
        }
        // Hand-written JSON forms.
        let checkpoint = &schemas["Checkpoint"]["properties"];
        for field in ["attempt", "token", "at_ms", "size", "text", "base64"] {
            assert!(checkpoint[field].is_object(), "checkpoint.{field}");
        }
        assert!(checkpoint.get("data").is_none());
        let result = &schemas["TaskResult"]["properties"];
        for field in ["attempt", "token", "at_ms", "size", "text", "base64"] {
            assert!(result[field].is_object(), "result.{field}");
        }
        assert!(schemas["Task"]["properties"]["result"].is_object(), "{}", schemas["Task"]);
        let data = &schemas["ResultData"]["properties"];
        assert!(data["text"].is_object() && data["base64"].is_object() && data.get("attempt").is_none());
        // An assignment's inputs may be missing (a leader of before workflows sends none).
        let assignment = &schemas["Assignment"];
        let required: Vec<&str> =
            assignment["required"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert_eq!(required, ["attempt", "token", "task"], "{assignment}");
        assert!(assignment["properties"]["inputs_error"].is_object(), "{assignment}");
        assert_eq!(assignment["properties"]["inputs"]["items"]["$ref"], "#/components/schemas/TaskInput");
        assert_eq!(schemas["TaskInput"]["properties"]["data"]["$ref"], "#/components/schemas/ResultData");
        let origin = serde_json::to_string(&schemas["TaskOrigin"]).unwrap();
        assert!(origin.contains("\"api\"") && origin.contains("nominal_ms"), "{origin}");
        // Flattened answers are the flattened type plus their own fields.
        assert_eq!(schemas["Registered"]["allOf"][0]["$ref"], "#/components/schemas/WorkerInfo");
        assert_eq!(schemas["StopOrder"]["allOf"][0]["$ref"], "#/components/schemas/AttemptId");
        // Every error code, and an optional body is "T", not "null or T".
        let codes = schemas["ErrorCode"]["enum"].as_array().unwrap();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
        let cancel = &doc["paths"]["/v1/tasks/{id}/cancel"]["post"]["requestBody"];
        assert_eq!(cancel["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/CancelRequest");
        assert_ne!(cancel["required"], true);
    }
}
