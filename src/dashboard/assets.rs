//! The static files: `GET /` and `GET /ui/{file}`, with content types, an ETag and
//! `Cache-Control: no-cache` (a browser revalidates on each load and gets a 304 until the
//! binary changes).

use axum::Router;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;

use crate::api::ApiError;

/// One embedded file.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: u64,
}

const fn asset(body: &'static str, content_type: &'static str) -> Asset {
    Asset { body, content_type, etag: fnv1a(body.as_bytes()) }
}

/// FNV-1a, computed at compile time: a new binary with changed files gets new ETags.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

static INDEX: Asset = asset(include_str!("static/index.html"), "text/html; charset=utf-8");
static APP_JS: Asset = asset(include_str!("static/app.js"), "text/javascript; charset=utf-8");
static PAGES_JS: Asset = asset(include_str!("static/pages.js"), "text/javascript; charset=utf-8");
static WORKFLOWS_JS: Asset = asset(include_str!("static/workflows.js"), "text/javascript; charset=utf-8");
static DAG_JS: Asset = asset(include_str!("static/dag.js"), "text/javascript; charset=utf-8");
static APP_CSS: Asset = asset(include_str!("static/app.css"), "text/css; charset=utf-8");

/// Only our own script and style; the API on the same origin; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `GET /` and `GET /ui/{file}`. Generic over the router state: the files need none.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route("/ui/{file}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match name.as_str() {
        "app.js" => serve(&APP_JS, &headers),
        "pages.js" => serve(&PAGES_JS, &headers),
        "workflows.js" => serve(&WORKFLOWS_JS, &headers),
        "dag.js" => serve(&DAG_JS, &headers),
        "app.css" => serve(&APP_CSS, &headers),
        _ => ApiError::not_found(format!("no such dashboard file: /ui/{name}")).into_response(),
    }
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", asset.etag);
    let fresh = request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        })
    });
    let mut resp = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPTS: [(&str, &Asset); 4] =
        [("app.js", &APP_JS), ("pages.js", &PAGES_JS), ("workflows.js", &WORKFLOWS_JS), ("dag.js", &DAG_JS)];

    #[test]
    fn etags_differ_per_file_and_the_page_loads_only_local_assets() {
        let mut etags: Vec<u64> = SCRIPTS.iter().map(|(_, a)| a.etag).chain([INDEX.etag, APP_CSS.etag]).collect();
        etags.sort_unstable();
        etags.dedup();
        assert_eq!(etags.len(), SCRIPTS.len() + 2, "every file has its own ETag");
        for (file, _) in SCRIPTS {
            assert!(INDEX.body.contains(&format!("/ui/{file}")), "index.html loads /ui/{file}");
        }
        assert!(INDEX.body.contains("/ui/app.css"), "index.html loads /ui/app.css");
        assert!(!INDEX.body.contains("http://") && !INDEX.body.contains("https://"), "no external assets");
        for (file, js) in SCRIPTS {
            for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
                assert!(
                    !js.body.contains(sink),
                    "{file} uses {sink}: API strings reach the DOM through textContent only"
                );
            }
        }
    }

    #[tokio::test]
    async fn every_script_and_the_stylesheet_are_served() {
        for (file, asset) in SCRIPTS.into_iter().chain([("app.css", &APP_CSS)]) {
            let resp = super::file(Path(file.to_string()), HeaderMap::new()).await;
            assert_eq!(resp.status(), StatusCode::OK, "/ui/{file}");
            assert_eq!(resp.headers()[header::CONTENT_TYPE], asset.content_type, "/ui/{file}");
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
            assert_eq!(body, asset.body.as_bytes(), "/ui/{file}");
        }
        let resp = super::file(Path("nope.js".to_string()), HeaderMap::new()).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn workflows_load_before_pages_which_lists_them() {
        // pages.js builds PAGES from workflowsPage, defined in workflows.js; classic deferred
        // scripts run in document order.
        let at = |f: &str| INDEX.body.find(&format!("/ui/{f}")).unwrap_or_else(|| panic!("{f} is loaded"));
        assert!(at("dag.js") < at("workflows.js") && at("workflows.js") < at("pages.js"));
        assert!(PAGES_JS.body.contains("workflows: workflowsPage"));
    }

    #[test]
    fn a_matching_etag_is_answered_304() {
        let mut req = HeaderMap::new();
        req.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&format!("\"{:016x}\"", APP_JS.etag)).unwrap());
        assert_eq!(serve(&APP_JS, &req).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(serve(&APP_JS, &HeaderMap::new()).status(), StatusCode::OK);
    }
}
