//! Every route of the router is either public or refuses a request without credentials.
//! The routes walked here are the tables the router is built from, so a route added
//! without protection fails this test.

use batchboard::web::{api, pages};
use reqwest::{Method, StatusCode};

use crate::helpers::{new_client, spawn_app};

/// The routes anyone may reach, and what they answer.
const PUBLIC: [(&str, StatusCode); 5] = [
    ("/login", StatusCode::OK),
    ("/healthz", StatusCode::OK),
    ("/readyz", StatusCode::OK),
    ("/static/htmx.min.js", StatusCode::OK),
    ("/static/app.css", StatusCode::OK),
];

/// A concrete path for a route template: a real job and a run id.
fn concrete(template: &str) -> String {
    template
        .replace("{name}", "inventory-sync")
        .replace("{id}", "1")
}

#[tokio::test]
async fn every_route_is_public_or_refuses_a_request_without_credentials() {
    let app = spawn_app().await;
    let stranger = new_client();
    let mut walked = 0;
    for route in &pages::ROUTES {
        let method = Method::from_bytes(route.method.as_bytes()).expect("a method");
        let url = app.url(&concrete(route.path));
        let response = stranger
            .request(method, &url)
            .send()
            .await
            .expect("an answer");
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let refused = (status == StatusCode::SEE_OTHER && location.starts_with("/login?next="))
            || status == StatusCode::UNAUTHORIZED
            || status == StatusCode::FORBIDDEN;
        assert!(
            refused,
            "{} {} answered {status} (location {location:?}) without credentials",
            route.method, route.path
        );
        walked += 1;
    }
    for route in &api::ROUTES {
        let method = Method::from_bytes(route.method.as_bytes()).expect("a method");
        let url = app.url(&concrete(route.path));
        let response = stranger
            .request(method, &url)
            .send()
            .await
            .expect("an answer");
        let status = response.status();
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN,
            "{} {} answered {status} without credentials",
            route.method,
            route.path
        );
        let body: serde_json::Value = response.json().await.expect("a JSON error");
        assert!(
            body["error"].is_string(),
            "{} {}: {body}",
            route.method,
            route.path
        );
        walked += 1;
    }
    for (path, expected) in PUBLIC {
        let response = stranger.get(app.url(path)).send().await.expect("an answer");
        assert_eq!(response.status(), expected, "{path}");
    }
    assert_eq!(walked, pages::ROUTES.len() + api::ROUTES.len());
    assert!(walked > 30, "the tables hold every route ({walked})");
    // An unknown path reveals nothing either.
    let unknown = stranger
        .get(app.url("/no/such/page"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(unknown.status(), StatusCode::SEE_OTHER);
}
