//! `http` (`command: [url, method?, body?]`): one HTTP request; a 2xx answer succeeds, anything else
//! fails with the status in the error (the shape of Dkron's HTTP executor). The body's tail is
//! kept as the output. No retries here: retrying is the task's retry policy.
//!
//! This build of reqwest has no TLS, so only `http://` URLs are accepted.

use std::error::Error;
use std::sync::OnceLock;

use reqwest::{Client, Method, Url};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::tail::TailBuffer;
use super::{DEFAULT_HTTP_TIMEOUT, ExecRequest, ExecResult, Stop, stop_signal};
use crate::scheduler::AttemptOutcome;

/// One client for every attempt: it pools connections and its construction is not free.
fn client() -> Result<&'static Client, String> {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = Client::builder().build().map_err(|e| format!("cannot create the HTTP client: {}", chain(&e)))?;
    Ok(CLIENT.get_or_init(|| client))
}

/// Sends the request and reads the answer, unless cancelled or out of time first.
pub(super) async fn run(req: &ExecRequest, cancel: &CancellationToken) -> ExecResult {
    let (method, url, body) = match parse(&req.spec.command) {
        Ok(parts) => parts,
        Err(e) => return ExecResult::failed(e),
    };
    let client = match client() {
        Ok(client) => client,
        Err(e) => return ExecResult::failed(e),
    };
    let mut request = client.request(method.clone(), url.clone());
    if let Some(body) = body {
        request = request.body(body);
    }
    let limit = req.timeout.unwrap_or(DEFAULT_HTTP_TIMEOUT);
    let deadline = Instant::now().checked_add(limit);
    let mut body_tail = TailBuffer::new(req.limits.output_tail_bytes);
    let exchange = async {
        let mut response = request.send().await?;
        let status = response.status();
        while let Some(chunk) = response.chunk().await? {
            body_tail.push(&chunk);
        }
        Ok::<_, reqwest::Error>(status)
    };
    let ended = tokio::select! {
        answer = exchange => Ok(answer),
        stop = stop_signal(cancel, deadline) => Err(stop),
    };
    let status_line = match &ended {
        Ok(Ok(status)) => format!("HTTP {status}\n"),
        _ => String::new(),
    };
    let mut result = match ended {
        Ok(Ok(status)) if status.is_success() => ExecResult::new(AttemptOutcome::Succeeded),
        Ok(Ok(status)) => ExecResult::failed(format!("{method} {url} answered HTTP {status}")),
        Ok(Err(e)) => ExecResult::failed(format!("{method} {url} failed: {}", chain(&e))),
        Err(Stop::TimedOut) if req.timeout.is_none() => {
            ExecResult::failed(format!("{method} {url} got no complete answer within {DEFAULT_HTTP_TIMEOUT:?}"))
        }
        Err(stop) => ExecResult::stopped(stop, req.timeout),
    };
    result.output_tail = status_line + &body_tail.section("body");
    result
}

/// `[url, method?, body?]` → a checked method and URL, and the body.
fn parse(args: &[String]) -> Result<(Method, Url, Option<String>), String> {
    const USAGE: &str = "the http executor's command is [URL, METHOD (default GET), BODY (optional)]";
    if args.len() > 3 {
        return Err(format!("the http executor takes at most 3 arguments, got {}; {USAGE}", args.len()));
    }
    let Some(raw_url) = args.first() else { return Err(format!("the http executor needs a URL; {USAGE}")) };
    let url = Url::parse(raw_url).map_err(|e| format!("invalid URL {raw_url:?}: {e}; {USAGE}"))?;
    match url.scheme() {
        "http" => {}
        "https" => return Err(format!("cannot fetch {url}: this worker is built without TLS, only http:// works")),
        other => return Err(format!("unsupported URL scheme {other:?} in {url}: only http:// works")),
    }
    let raw_method = args.get(1).map_or("GET", String::as_str);
    let method = Method::from_bytes(raw_method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid HTTP method {raw_method:?}; {USAGE}"))?;
    Ok((method, url, args.get(2).cloned()))
}

/// An error and its causes on one line: reqwest's own message rarely says what went wrong.
fn chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
