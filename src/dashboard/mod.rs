//! # The web dashboard, served at `/` by every replica
//!
//! Six static files (`static/index.html`, `app.js`, `pages.js`, `workflows.js`, `dag.js`,
//! `app.css`) are compiled into the binary with `include_str!`: no npm, no build step, no
//! asset from the network. The page is plain JavaScript that polls the public JSON API of the
//! replica that served it, so it works through any replica (writes reaching a follower are
//! forwarded to the leader, as for any client).
//!
//! The path of a page view:
//! 1. `GET /` answers `index.html`; it loads `/ui/app.js`, `/ui/dag.js`, `/ui/workflows.js`,
//!    `/ui/pages.js` and `/ui/app.css` ([`assets`]).
//!    Static files are open (no token): they hold no data.
//! 2. The script routes on the URL fragment (`#/cluster`, `#/workers`, `#/tasks`,
//!    `#/tasks/{id}`, `#/schedules`, `#/workflows`, `#/workflows/{id}`) and polls the API about
//!    once a second, sending the bearer token kept in `localStorage`; a 401 brings up a token
//!    prompt. A workflow's page lays its DAG out in the browser (`dag.js`: layers by longest
//!    path, barycenter ordering) and draws it as inline SVG once; each poll only restyles the
//!    node boxes.
//! 3. Besides the ordinary endpoints it reads the two [`views`] nothing else offers: every
//!    member's own status, probed by the answering replica (`/v1/dashboard/replicas`), and
//!    the leader's heartbeat ages (`/v1/dashboard/leases`).
//!
//! With auth on, `/` and `/ui/*` stay open (a token prompt must load without a token) and
//! `/v1/dashboard/*` need the same role as `GET /v1/cluster` (reader); a follower answering
//! `/v1/dashboard/leases` forwards the caller's token with the request.
//!
//! What it deliberately does not do: hold any state on the server, push (the browser polls),
//! or render API strings as markup (the script only ever sets `textContent`).

mod assets;
pub(crate) mod views;

use std::sync::Arc;

use axum::Router;

use crate::node::Node;

/// The dashboard's routes, merged into the API router.
pub fn routes() -> Router<Arc<Node>> {
    // The JSON views are registered with the documented API (`crate::api::router`).
    assets::routes()
}
