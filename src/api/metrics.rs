//! `GET /metrics`, and the middleware that counts and times every API request.
//!
//! The path of a request through [`track`]:
//! 1. The router has matched the request; its *route template* (`/v1/tasks/{id}`, from
//!    [`MatchedPath`]) is the label, never the raw path, so the number of series stays bounded
//!    by the routes we define whatever clients send. No match (404 fallback) → `unmatched`.
//! 2. The handler runs; the status of its response completes the label set.
//! 3. The request counter and the latency histogram of that label set are bumped. Building the
//!    label set allocates nothing: the template is an `Arc<str>` the router already holds,
//!    the method and status are a `&'static str` and an integer, and the series themselves
//!    are created once per label set and found by hash afterwards.
//!
//! Latency is measured until the response head is ready (a long-poll counts its wait; a
//! streamed body's transfer does not).

use std::hash::Hash;
use std::hash::Hasher;
use std::sync::Arc;

use axum::extract::MatchedPath;
use axum::extract::Request;
use axum::extract::State;
use axum::http::Method;
use axum::http::header;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::EncodeLabelValue;
use prometheus_client::encoding::LabelValueEncoder;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use super::ApiError;
use crate::node::Node;
use crate::node::metrics::CONTENT_TYPE;
use crate::node::metrics::LATENCY_BUCKETS;

/// The labels of one series of the HTTP instruments.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: Route,
    status: u16,
}

/// The matched route template, or none (`unmatched`). Cloning it clones an `Arc`.
#[derive(Clone, Debug)]
struct Route(Option<MatchedPath>);

impl Route {
    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("unmatched", MatchedPath::as_str)
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl Hash for Route {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Methods we route, by name; anything else is one `OTHER` series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        _ => "OTHER",
    }
}

/// The HTTP instruments of one replica's API.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    latency: Family<HttpLabels, Histogram>,
}

impl HttpMetrics {
    /// Creates the instruments and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "taskraft_http_requests",
            "API requests by method, route template and status",
            requests.clone(),
        );
        let latency = Family::<HttpLabels, Histogram>::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register(
            "taskraft_http_request_duration_seconds",
            "API request latency until the response head, by method, route template and status",
            latency.clone(),
        );
        HttpMetrics { requests, latency }
    }
}

/// The middleware: see the module documentation.
pub async fn track(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = Route(req.extensions().get::<MatchedPath>().cloned());
    let response = next.run(req).await;
    let labels = HttpLabels { method, route, status: response.status().as_u16() };
    metrics.requests.get_or_create(&labels).inc();
    metrics.latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: this replica's metrics in the OpenMetrics text format. Served from local
/// state (no read barrier): a scrape asks *this* replica how it is doing.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "cluster",
    operation_id = "metrics",
    responses(
        (status = 200, description = "This replica's metrics (OpenMetrics text; names in the README)", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
    ),
)]
pub async fn scrape(State(node): State<Arc<Node>>) -> Response {
    match node.telemetry.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => ApiError::internal(format!("encoding the metrics failed: {e}")).into_response(),
    }
}
