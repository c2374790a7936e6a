//! Sign-in under attack: attempts counted as they start, the bound on password checks,
//! the name-wide limit and device cookies, and client addresses behind trusted proxies.

use std::sync::Arc;

use batchboard::store::Role;
use batchboard::web::throttle::{PER_NAME, PER_NAME_AND_ADDRESS};
use futures::StreamExt as _;
use reqwest::StatusCode;
use reqwest::header::{RETRY_AFTER, SET_COOKIE};

use crate::helpers::{
    ADMIN_PASSWORD, TestApp, TestClient, USER_PASSWORD, assert_redirect_to, spawn_app,
    spawn_app_with, test_settings,
};

/// An app that reads client addresses from `X-Forwarded-For`, as behind a proxy on
/// 127.0.0.1 (the tests' only peer address).
async fn spawn_app_behind_a_proxy() -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = test_settings(dir.path());
    settings.web.trusted_proxies = vec!["127.0.0.1/32".parse().expect("a network")];
    spawn_app_with(settings, dir).await
}

/// `POST /login` from `client`, saying (to a proxy-trusting app) it comes from `from`.
async fn login_from(
    client: &TestClient,
    token: &str,
    name: &str,
    password: &str,
    from: &str,
) -> reqwest::Response {
    client
        .client
        .post(client.url("/login"))
        .header("X-Forwarded-For", from)
        .form(&[
            ("name", name),
            ("password", password),
            ("csrf_token", token),
        ])
        .send()
        .await
        .expect("the request is answered")
}

/// Fails sign-ins as `name` from enough addresses (each within its own limit) to reach
/// the name-wide limit, two at a time.
async fn block_name_wide(app: &TestApp, name: &str) {
    let attacker = app.with_new_client();
    let token = attacker.csrf_token().await;
    let per_address = PER_NAME_AND_ADDRESS.free_failures;
    let addresses = PER_NAME.free_failures.div_ceil(per_address);
    let attempts = (0..addresses)
        .flat_map(|address| (0..per_address).map(move |_| format!("203.0.113.{address}")))
        .take(PER_NAME.free_failures as usize);
    let statuses: Vec<StatusCode> = futures::stream::iter(attempts)
        .map(|from| {
            let (attacker, token) = (&attacker, &token);
            async move {
                login_from(attacker, token, name, "a-wrong-guess", &from)
                    .await
                    .status()
            }
        })
        .buffer_unordered(2)
        .collect()
        .await;
    assert!(
        statuses
            .iter()
            .all(|status| *status == StatusCode::UNAUTHORIZED),
        "every guess was checked and failed: {statuses:?}"
    );
}

#[tokio::test]
async fn forty_parallel_wrong_passwords_for_one_name_check_at_most_the_limit() {
    let app = spawn_app().await;
    let token = app.csrf_token().await;
    let guesses = (0..40).map(|n| {
        let password = format!("wrong-guess-{n}");
        let token = token.clone();
        let app = &app;
        async move {
            app.post_form(
                "/login",
                &[
                    ("name", "admin"),
                    ("password", &password),
                    ("csrf_token", &token),
                ],
            )
            .await
        }
    });
    let answers = futures::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|answer| answer.status() == StatusCode::UNAUTHORIZED)
        .count();
    assert!(
        checked <= PER_NAME_AND_ADDRESS.free_failures as usize,
        "{checked} passwords were checked"
    );
    for answer in &answers {
        let status = answer.status();
        assert!(
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::SERVICE_UNAVAILABLE
            ]
            .contains(&status),
            "{status}"
        );
        if status != StatusCode::UNAUTHORIZED {
            assert!(answer.headers().contains_key(RETRY_AFTER), "{status}");
        }
    }
    // And the right password waits like any other attempt from here.
    let right = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn twenty_failures_from_one_address_do_not_stop_the_right_password_from_another() {
    let app = spawn_app_behind_a_proxy().await;
    let attacker = app.with_new_client();
    let token = attacker.csrf_token().await;
    for _ in 0..20 {
        let status = login_from(&attacker, &token, "admin", "a-wrong-guess", "203.0.113.7")
            .await
            .status();
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&status),
            "{status}"
        );
    }
    let refused = login_from(&attacker, &token, "admin", ADMIN_PASSWORD, "203.0.113.7").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);

    let token = app.csrf_token().await;
    let admin = login_from(&app, &token, "admin", ADMIN_PASSWORD, "198.51.100.20").await;
    assert_redirect_to(&admin, "/");
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    let app = spawn_app().await;
    let attacker = app.with_new_client();
    let token = attacker.csrf_token().await;
    for _ in 0..PER_NAME_AND_ADDRESS.free_failures {
        let status = login_from(&attacker, &token, "admin", "a-wrong-guess", "203.0.113.7")
            .await
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Claiming another address changes nothing: the peer, 127.0.0.1, is the client.
    let token = app.csrf_token().await;
    let admin = login_from(&app, &token, "admin", ADMIN_PASSWORD, "198.51.100.20").await;
    assert_eq!(admin.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_browser_that_signed_in_before_gets_past_a_name_wide_block_and_a_new_one_does_not() {
    let app = spawn_app_behind_a_proxy().await;
    let token = app.csrf_token().await;
    assert_redirect_to(
        &login_from(&app, &token, "admin", ADMIN_PASSWORD, "198.51.100.20").await,
        "/",
    );
    let token = app.csrf_token().await;
    assert_redirect_to(
        &app.post_form("/logout", &[("csrf_token", &token)]).await,
        "/login",
    );

    block_name_wide(&app, "admin").await;

    let new_browser = app.with_new_client();
    let token = new_browser.csrf_token().await;
    let refused = login_from(
        &new_browser,
        &token,
        "admin",
        ADMIN_PASSWORD,
        "198.51.100.20",
    )
    .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key(RETRY_AFTER));
    let body = refused.text().await.expect("a body");
    assert!(
        body.contains("from a browser you have signed in with as this user before"),
        "{body}"
    );

    let token = app.csrf_token().await;
    let known = login_from(&app, &token, "admin", ADMIN_PASSWORD, "198.51.100.20").await;
    assert_redirect_to(&known, "/");
}

#[tokio::test]
async fn a_forged_or_another_users_device_cookie_does_not_get_past_a_name_wide_block() {
    let app = spawn_app_behind_a_proxy().await;
    app.create_user("ann", Role::Viewer).await;
    let anns_browser = app.with_new_client();
    let token = anns_browser.csrf_token().await;
    assert_redirect_to(
        &login_from(&anns_browser, &token, "ann", USER_PASSWORD, "198.51.100.30").await,
        "/",
    );
    let token = anns_browser.csrf_token().await;
    anns_browser
        .post_form("/logout", &[("csrf_token", &token)])
        .await;

    block_name_wide(&app, "admin").await;

    let token = anns_browser.csrf_token().await;
    let with_anns_cookie = login_from(
        &anns_browser,
        &token,
        "admin",
        ADMIN_PASSWORD,
        "198.51.100.30",
    )
    .await;
    assert_eq!(with_anns_cookie.status(), StatusCode::TOO_MANY_REQUESTS);

    let jar = Arc::new(reqwest::cookie::Jar::default());
    let base: reqwest::Url = app.base.parse().expect("a URL");
    let forged_value = format!("admin:{}:1800000000.{}", "ab".repeat(16), "00".repeat(32));
    jar.add_cookie_str(&format!("batchboard_device={forged_value}; Path=/"), &base);
    let forger = TestClient {
        base: app.base.clone(),
        client: reqwest::Client::builder()
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client"),
    };
    let token = forger.csrf_token().await;
    let with_forged_cookie =
        login_from(&forger, &token, "admin", ADMIN_PASSWORD, "198.51.100.31").await;
    assert_eq!(with_forged_cookie.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_known_browsers_own_failures_pause_it_wherever_it_signs_in_from() {
    let app = spawn_app_behind_a_proxy().await;
    let token = app.csrf_token().await;
    assert_redirect_to(
        &login_from(&app, &token, "admin", ADMIN_PASSWORD, "198.51.100.20").await,
        "/",
    );
    let token = app.csrf_token().await;
    app.post_form("/logout", &[("csrf_token", &token)]).await;
    // As with a stolen cookie: guesses from a new address each time.
    let token = app.csrf_token().await;
    for n in 0..PER_NAME_AND_ADDRESS.free_failures {
        let from = format!("192.0.2.{n}");
        let status = login_from(&app, &token, "admin", "a-wrong-guess", &from)
            .await
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let paused = login_from(&app, &token, "admin", ADMIN_PASSWORD, "192.0.2.99").await;
    assert_eq!(paused.status(), StatusCode::TOO_MANY_REQUESTS);

    let other_browser = app.with_new_client();
    let token = other_browser.csrf_token().await;
    let other = login_from(
        &other_browser,
        &token,
        "admin",
        ADMIN_PASSWORD,
        "192.0.2.99",
    )
    .await;
    assert_redirect_to(&other, "/");
}

#[tokio::test]
async fn signing_in_leaves_a_long_lived_httponly_device_cookie() {
    let app = spawn_app().await;
    let response = app.login("admin", ADMIN_PASSWORD).await;
    assert_redirect_to(&response, "/");
    let cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|cookie| cookie.starts_with("batchboard_device="))
        .expect("a device cookie")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=31536000"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("admin-password"), "{cookie}");
    // A failed attempt leaves none.
    let failed = app.with_new_client().login("admin", "a-wrong-guess").await;
    assert!(
        failed
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .all(|cookie| !cookie.starts_with("batchboard_device="))
    );
}

#[tokio::test]
async fn a_burst_of_sign_ins_gets_checked_or_told_to_come_back_never_anything_else() {
    let app = spawn_app_behind_a_proxy().await;
    let token = app.csrf_token().await;
    // Different names from different addresses: no throttle stands in the way, only the
    // bound on simultaneous password checks.
    let attempts = (0..100).map(|n| {
        let (app, token) = (&app, &token);
        async move {
            login_from(
                app,
                token,
                &format!("user-{n}"),
                "a-wrong-guess",
                &format!("198.18.0.{n}"),
            )
            .await
        }
    });
    for answer in futures::future::join_all(attempts).await {
        match answer.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                let retry_after = answer
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<u64>().ok());
                assert!(retry_after.is_some_and(|seconds| seconds >= 1));
                let body = answer.text().await.expect("a body");
                assert!(body.contains("busy checking other sign-ins"), "{body}");
            }
            other => panic!("unexpected {other}"),
        }
    }
}

#[tokio::test]
async fn an_impossible_name_fails_like_any_other_and_is_not_echoed_in_full() {
    let app = spawn_app().await;
    let long_name = "x".repeat(100_000);
    for name in [long_name.as_str(), "Admin", "admin\u{0}", ""] {
        let response = app.login(name, "a-wrong-guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = response.text().await.expect("a body");
        assert!(body.contains(batchboard::web::login::BAD_CREDENTIALS));
        assert!(body.len() < 50_000, "the page stays small");
    }
}
