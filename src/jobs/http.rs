//! The `http` handler: sends one HTTP request and judges the answer by its status.
//!
//! | answer                                   | result                                  |
//! |------------------------------------------|-----------------------------------------|
//! | a status in `expect_status` (any 2xx)    | success                                 |
//! | 429, or 503 with `Retry-After`           | rate limited: retried after `Retry-After` (60 s when absent) |
//! | another 5xx, no connection, timeout      | retryable                               |
//! | anything else                            | fatal, with the status and the start of the body |
//!
//! The log shows the method, the URL (its user info and secret-looking query values
//! replaced by `[redacted]`) and the status; never header values, which often hold
//! tokens. Header values and the URL's secrets are also masked wherever they would
//! appear in the run's output (see [`crate::secrets`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use tracing::info;

use crate::job::{JobContext, JobError, JobHandler, Outcome};
use crate::schedule::parse_duration;
use crate::secrets::{RedactionList, loggable_url};

/// Sends HTTP requests (the README's `http` section says how). Holds one connection
/// pool for all the runs of all `http` jobs.
pub struct HttpHandler {
    // Building a client only fails when TLS cannot be set up; keeping the error lets
    // the registry be built anyway and every `http` run explain what is wrong.
    client: Result<reqwest::Client, String>,
}

impl HttpHandler {
    /// A handler with its own connection pool.
    pub fn new() -> Self {
        let client = outbound_client()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|error| format!("the HTTP client could not be set up: {error}"));
        Self { client }
    }
}

/// A client builder for the requests Batchboard itself sends (`http` jobs, webhook
/// alerts): its user agent, and TLS with the crypto provider chosen here.
pub(crate) fn outbound_client() -> reqwest::ClientBuilder {
    // reqwest is built without a default crypto provider so that the choice is made
    // once, here. An error only means another part of the process installed one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().user_agent(concat!("batchboard/", env!("CARGO_PKG_VERSION")))
}

impl Default for HttpHandler {
    fn default() -> Self {
        Self::new()
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// An upstream asking for more than a day is more likely wrong than serious.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
const BODY_EXCERPT_CHARS: usize = 200;

/// The `http` handler's params, checked while decoding so that a bad URL, method or
/// header is refused when the settings are loaded.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawParams")]
pub struct HttpParams {
    /// An `http` or `https` URL.
    pub url: Url,
    /// `GET` unless given.
    pub method: Method,
    /// Request headers; their values are marked sensitive, so `Debug` hides them.
    pub headers: HeaderMap,
    /// The request body, if any.
    pub body: Option<RequestBody>,
    /// The statuses that mean success; `None` means any 2xx.
    pub expect_status: Option<Vec<StatusCode>>,
    /// How long the whole exchange may take, body included (30 s unless given).
    pub timeout: Duration,
}

/// What an `http` job sends as its body.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestBody {
    /// `body = "…"`, sent as it is.
    Text(String),
    /// `json = {…}`, sent with `Content-Type: application/json`.
    Json(serde_json::Value),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    json: Option<serde_json::Value>,
    #[serde(default)]
    expect_status: Option<Vec<u16>>,
    #[serde(default)]
    timeout: Option<String>,
}

impl TryFrom<RawParams> for HttpParams {
    type Error = String;

    fn try_from(raw: RawParams) -> Result<Self, Self::Error> {
        let url = Url::parse(&raw.url).map_err(|error| format!("url: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("url: only http and https URLs are supported".into());
        }
        let method = match raw.method {
            None => Method::GET,
            Some(text) => Method::from_bytes(text.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("method: {text:?} is not an HTTP method"))?,
        };
        let mut headers = HeaderMap::new();
        for (name, value) in raw.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("headers: {name:?} is not a valid header name"))?;
            // The value is left out of the message: it may be a token.
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                format!("headers: the value of {name:?} is not a valid header value")
            })?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        let body = match (raw.body, raw.json) {
            (Some(_), Some(_)) => return Err("give either body or json, not both".into()),
            (Some(text), None) => Some(RequestBody::Text(text)),
            (None, Some(json)) => Some(RequestBody::Json(json)),
            (None, None) => None,
        };
        let expect_status = raw
            .expect_status
            .map(|codes| {
                codes
                    .into_iter()
                    .map(|code| {
                        StatusCode::from_u16(code)
                            .map_err(|_| format!("expect_status: {code} is not an HTTP status"))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let timeout = raw
            .timeout
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|error| format!("timeout: {error}"))?
            .unwrap_or(DEFAULT_TIMEOUT);
        Ok(Self {
            url,
            method,
            headers,
            body,
            expect_status,
            timeout,
        })
    }
}

impl JobHandler for HttpHandler {
    type Params = HttpParams;

    async fn run(&self, params: HttpParams, ctx: JobContext) -> Result<Outcome, JobError> {
        let client = self.client.as_ref().map_err(JobError::fatal)?;
        // The built-in list: the settings' extra fragments are not known here, but every
        // value they would hide is masked in the run's output anyway.
        let shown_url = loggable_url(&params.url, &RedactionList::default());
        let method = params.method.clone();
        let mut request = client
            .request(params.method, params.url)
            .headers(params.headers)
            .timeout(params.timeout);
        request = match params.body {
            Some(RequestBody::Text(text)) => request.body(text),
            Some(RequestBody::Json(json)) => request.json(&json),
            None => request,
        };
        info!(method = %method, url = %shown_url, "sending request");

        let started = Instant::now();
        let expected = params.expect_status.as_deref();
        let exchange = async {
            let response = request.send().await?;
            let status = response.status();
            let excerpt = if is_expected(status, expected) {
                None
            } else {
                Some(excerpt(response).await)
            };
            Ok::<_, reqwest::Error>((status, excerpt))
        };
        let (status, excerpt) = tokio::select! {
            result = exchange => result.map_err(|error| {
                JobError::retryable(format!("{method} {shown_url}: {}", describe(&error)))
            })?,
            () = ctx.cancelled() => return Err(JobError::Cancelled),
        };
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        info!(status = status.as_u16(), elapsed_ms, "response received");
        ctx.add_checked(1);

        match excerpt {
            None => Ok(Outcome::summary(format!("{method} {shown_url} → {status}"))),
            Some(excerpt) => Err(classify_failure(status, &excerpt, ctx.now())),
        }
    }
}

fn is_expected(status: StatusCode, expected: Option<&[StatusCode]>) -> bool {
    match expected {
        Some(codes) => codes.contains(&status),
        None => status.is_success(),
    }
}

/// The error for an answer that was not expected.
fn classify_failure(status: StatusCode, excerpt: &Excerpt, now: DateTime<Utc>) -> JobError {
    let retry_after = excerpt
        .retry_after
        .as_deref()
        .map(|value| parse_retry_after(value, now));
    match (status, retry_after) {
        (StatusCode::TOO_MANY_REQUESTS, retry_after)
        | (StatusCode::SERVICE_UNAVAILABLE, retry_after @ Some(_)) => JobError::RateLimited {
            retry_after: retry_after.flatten().unwrap_or(DEFAULT_RETRY_AFTER),
            message: format!("the server answered {status}"),
        },
        (status, _) if status.is_server_error() => {
            JobError::retryable(format!("the server answered {status}"))
        }
        (status, _) if excerpt.text.is_empty() => {
            JobError::fatal(format!("the server answered {status}"))
        }
        (status, _) => JobError::fatal(format!("the server answered {status}: {}", excerpt.text)),
    }
}

/// What the handler keeps of an unexpected answer.
struct Excerpt {
    /// The `Retry-After` header, as sent.
    retry_after: Option<String>,
    /// The start of the body.
    text: String,
}

/// Reads just enough of `response` for an error message; the rest is never downloaded.
async fn excerpt(mut response: reqwest::Response) -> Excerpt {
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut bytes = Vec::new();
    // Four bytes per character at most, so this always holds the first 200 characters.
    while bytes.len() < BODY_EXCERPT_CHARS * 4 {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    Excerpt {
        retry_after,
        text: text.trim().chars().take(BODY_EXCERPT_CHARS).collect(),
    }
}

/// Parses a `Retry-After` value: a number of seconds or an HTTP date. A date in the
/// past means "now"; anything over a day is cut to a day.
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        // HTTP dates (`Sun, 06 Nov 1994 08:49:37 GMT`) are a subset of RFC 2822.
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&Utc) - now).to_std().unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// An error with its causes, which is where reqwest keeps the useful part ("connection
/// refused"), and without the URL, which the caller shows in its loggable form.
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::HeaderMap as AxumHeaders;
    use axum::routing::{any, get};
    use chrono::TimeZone;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::jobs::test_support::{collect_events, context, snapshot};

    /// A real server on a free local port, answering the way each path's name says.
    async fn spawn_server() -> String {
        let app = Router::new()
            .route("/ok", get(|| async { "fine" }))
            .route(
                "/created",
                any(|| async { (axum::http::StatusCode::CREATED, "made") }),
            )
            .route(
                "/broken",
                get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "oops") }),
            )
            .route(
                "/missing",
                get(|| async { (axum::http::StatusCode::NOT_FOUND, "x".repeat(5_000)) }),
            )
            .route(
                "/slow-down",
                get(|| async {
                    (
                        axum::http::StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "7")],
                        "slow down",
                    )
                }),
            )
            .route(
                "/unavailable",
                get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "later") }),
            )
            .route(
                "/hang",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "too late"
                }),
            )
            .route(
                "/echo",
                any(|headers: AxumHeaders, body: String| async move {
                    let key_ok = headers.get("x-api-key").is_some_and(|v| v == "k-123");
                    let json_ok = headers
                        .get("content-type")
                        .is_some_and(|v| v == "application/json")
                        && body == r#"{"a":1}"#;
                    if key_ok && json_ok {
                        axum::http::StatusCode::OK
                    } else {
                        axum::http::StatusCode::BAD_REQUEST
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let address = listener.local_addr().expect("a local address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }

    fn params(json: serde_json::Value) -> HttpParams {
        serde_json::from_value(json).expect("valid params")
    }

    async fn get_path(path: &str) -> Result<Outcome, JobError> {
        let base = spawn_server().await;
        let params = params(serde_json::json!({ "url": format!("{base}{path}") }));
        HttpHandler::new()
            .run(params, context(CancellationToken::new()))
            .await
    }

    #[tokio::test]
    async fn a_2xx_answer_is_a_success_that_counts_one_check() {
        let base = spawn_server().await;
        let ctx = context(CancellationToken::new());
        let params = params(serde_json::json!({ "url": format!("{base}/ok") }));
        let outcome = HttpHandler::new()
            .run(params, ctx.clone())
            .await
            .expect("ok");
        assert!(
            outcome
                .summary
                .as_deref()
                .is_some_and(|s| s.ends_with("200 OK")),
            "{outcome:?}"
        );
        assert_eq!(ctx.counters().checked, 1);
    }

    #[tokio::test]
    async fn a_500_answer_is_retryable() {
        let error = get_path("/broken").await.expect_err("server error");
        assert!(matches!(error, JobError::Retryable(_)), "{error:?}");
        assert!(error.to_string().contains("500"), "{error}");
    }

    #[tokio::test]
    async fn a_404_answer_is_fatal_with_the_start_of_the_body() {
        let error = get_path("/missing").await.expect_err("not found");
        assert!(matches!(error, JobError::Fatal(_)), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("404 Not Found"), "{message}");
        assert!(message.ends_with(&"x".repeat(200)), "{message}");
        assert!(!message.contains(&"x".repeat(201)), "{message}");
    }

    #[tokio::test]
    async fn a_429_answer_is_rate_limited_for_as_long_as_retry_after_says() {
        let error = get_path("/slow-down").await.expect_err("rate limited");
        match error {
            JobError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_secs(7));
            }
            other => panic!("expected rate limited, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_503_without_retry_after_is_an_ordinary_retryable_failure() {
        let error = get_path("/unavailable").await.expect_err("unavailable");
        assert!(matches!(error, JobError::Retryable(_)), "{error:?}");
    }

    #[tokio::test]
    async fn expect_status_decides_what_success_is() {
        let base = spawn_server().await;
        let handler = HttpHandler::new();
        let missing_is_fine = params(serde_json::json!({
            "url": format!("{base}/missing"),
            "expect_status": [404],
        }));
        handler
            .run(missing_is_fine, context(CancellationToken::new()))
            .await
            .expect("404 was expected");
        let only_201 = params(serde_json::json!({
            "url": format!("{base}/ok"),
            "expect_status": [201],
        }));
        let error = handler
            .run(only_201, context(CancellationToken::new()))
            .await
            .expect_err("200 was not expected");
        assert!(matches!(error, JobError::Fatal(_)), "{error:?}");
    }

    #[tokio::test]
    async fn method_headers_and_json_body_are_sent_and_header_values_never_logged() {
        let (events, _guard) = collect_events();
        let base = spawn_server().await;
        let params = params(serde_json::json!({
            "url": format!("{base}/echo?api_key=q-secret&page=2"),
            "method": "put",
            "headers": { "X-Api-Key": "k-123" },
            "json": { "a": 1 },
        }));
        assert!(!format!("{params:?}").contains("k-123"));
        HttpHandler::new()
            .run(params, context(CancellationToken::new()))
            .await
            .expect("the server saw the header and the body");
        let logged = format!("{:?}", snapshot(&events));
        assert!(!logged.contains("k-123"), "{logged}");
        assert!(!logged.contains("q-secret"), "{logged}");
        assert!(logged.contains("PUT"), "{logged}");
        assert!(logged.contains("page=2"), "{logged}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_retryable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let params = params(serde_json::json!({ "url": format!("http://{address}/") }));
        let error = HttpHandler::new()
            .run(params, context(CancellationToken::new()))
            .await
            .expect_err("nobody listens");
        assert!(matches!(error, JobError::Retryable(_)), "{error:?}");
        assert!(error.to_string().contains("could not connect"), "{error}");
    }

    #[tokio::test]
    async fn cancelling_the_run_abandons_a_hanging_request_at_once() {
        let base = spawn_server().await;
        let cancel = CancellationToken::new();
        let ctx = context(cancel.clone());
        let params = params(serde_json::json!({ "url": format!("{base}/hang") }));
        let run = tokio::spawn(async move { HttpHandler::new().run(params, ctx).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("the run stops quickly")
            .expect("no panic");
        assert!(matches!(result, Err(JobError::Cancelled)), "{result:?}");
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        let now = Utc
            .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("valid date");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 01 Mar 2026 12:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn logged_urls_hide_user_info_and_secret_query_values() {
        let url = Url::parse("https://bob:hunter2@example.com/p?token=abc&page=2&Signature=x")
            .expect("a URL");
        assert_eq!(
            loggable_url(&url, &RedactionList::default()),
            "https://[redacted]@example.com/p?token=[redacted]&page=2&Signature=[redacted]"
        );
    }

    #[test]
    fn bad_params_are_refused_with_the_field_named() {
        let refuse = |json: serde_json::Value| {
            serde_json::from_value::<HttpParams>(json)
                .expect_err("invalid")
                .to_string()
        };
        assert!(refuse(serde_json::json!({ "url": "ftp://x" })).contains("url"));
        assert!(
            refuse(serde_json::json!({ "url": "http://x", "method": "GE T" })).contains("method")
        );
        assert!(
            refuse(serde_json::json!({ "url": "http://x", "body": "a", "json": {} }))
                .contains("either body or json")
        );
        assert!(
            refuse(serde_json::json!({ "url": "http://x", "headers": { "a b": "c" } }))
                .contains("headers")
        );
        assert!(
            refuse(serde_json::json!({ "url": "http://x", "expect_status": [42] }))
                .contains("expect_status")
        );
    }
}
