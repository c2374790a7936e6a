//! htmx on the server side, in one place: whether a request came from htmx (then a
//! partial answers it), and the headers that steer it — a full navigation
//! (`HX-Redirect`), the address shown in the bar (`HX-Push-Url`) and events
//! (`HX-Trigger`).

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

/// Whether htmx made the request (it sends `HX-Request: true`) for a part of a page. A
/// history restore (the back button after a pushed address missed htmx's cache) is
/// sent with the same header but wants the whole page, so it does not count.
pub fn is_htmx(headers: &HeaderMap) -> bool {
    let restore = headers
        .get("HX-History-Restore-Request")
        .is_some_and(|value| value == "true");
    headers
        .get("HX-Request")
        .is_some_and(|value| value == "true")
        && !restore
}

/// Whether htmx made the request to swap the element with id `target` (`HX-Target`):
/// a page that other htmx requests read whole answers this one with that part alone.
pub fn aims_at(headers: &HeaderMap, target: &str) -> bool {
    is_htmx(headers)
        && headers
            .get("HX-Target")
            .is_some_and(|value| value == target)
}

/// Tells htmx to leave the page for `to` with a full navigation. A redirect (303) would
/// be followed by the browser's XMLHttpRequest and its target swapped into the page.
pub fn redirect(to: &str) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert("HX-Redirect", value);
    }
    response
}

/// Where to go after an action: htmx is told to navigate, a plain form post is
/// redirected (303).
pub fn go_to(headers: &HeaderMap, to: &str) -> Response {
    if is_htmx(headers) {
        redirect(to)
    } else {
        Redirect::to(to).into_response()
    }
}

/// `response` with `HX-Push-Url: url`, so that the address bar (and the browser's
/// history) shows the filters a partial was made for.
pub fn push_url(mut response: Response, url: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(url) {
        response.headers_mut().insert("HX-Push-Url", value);
    }
    response
}

/// `response` with `HX-Trigger: event`, which listeners elsewhere on the page hear.
pub fn trigger(mut response: Response, event: &'static str) -> Response {
    response
        .headers_mut()
        .insert("HX-Trigger", HeaderValue::from_static(event));
    response
}

/// The path and query of the page an htmx request was made from (`HX-Current-URL`), so
/// a sign-in can bring the user back to the page rather than to a partial of it.
pub fn current_page(headers: &HeaderMap) -> Option<&str> {
    let url = headers.get("HX-Current-URL")?.to_str().ok()?;
    let (_, rest) = url.split_once("://")?;
    let path = &rest[rest.find('/')?..];
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    axum::http::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn only_htmx_own_header_value_counts() {
        assert!(is_htmx(&headers(&[("hx-request", "true")])));
        assert!(!is_htmx(&headers(&[("hx-request", "false")])));
        assert!(!is_htmx(&HeaderMap::new()));
        let restore = headers(&[
            ("hx-request", "true"),
            ("hx-history-restore-request", "true"),
        ]);
        assert!(!is_htmx(&restore), "a history restore wants the whole page");
        let runs = headers(&[("hx-request", "true"), ("hx-target", "runs")]);
        assert!(aims_at(&runs, "runs"));
        assert!(!aims_at(&runs, "job-settings"));
        assert!(!aims_at(&headers(&[("hx-target", "runs")]), "runs"));
    }

    #[test]
    fn the_current_page_is_the_path_and_query_of_htmx_current_url() {
        let from = headers(&[("hx-current-url", "https://ops.example/jobs/a?status=failed")]);
        assert_eq!(current_page(&from), Some("/jobs/a?status=failed"));
        assert_eq!(
            current_page(&headers(&[("hx-current-url", "https://ops.example")])),
            None
        );
        assert_eq!(current_page(&HeaderMap::new()), None);
    }

    #[test]
    fn an_htmx_action_navigates_and_a_form_post_is_redirected() {
        let htmx = go_to(&headers(&[("hx-request", "true")]), "/runs/4");
        assert_eq!(htmx.status(), StatusCode::NO_CONTENT);
        assert_eq!(htmx.headers()["HX-Redirect"], "/runs/4");
        let plain = go_to(&HeaderMap::new(), "/runs/4");
        assert_eq!(plain.status(), StatusCode::SEE_OTHER);
    }
}
