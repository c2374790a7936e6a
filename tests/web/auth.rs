//! Sign-in, sessions, the guard, CSRF, throttling, roles and security headers.

use batchboard::store::Role;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::helpers::{
    ADMIN_PASSWORD, TestApp, USER_PASSWORD, assert_redirect_to, new_client, spawn_app,
    spawn_app_with, test_settings,
};

#[tokio::test]
async fn pages_without_a_session_redirect_to_login_with_the_path_and_query() {
    let app = spawn_app().await;
    assert_redirect_to(&app.get("/").await, "/login?next=/");
    assert_redirect_to(
        &app.get("/jobs/inventory-sync?page=2").await,
        "/login?next=/jobs/inventory-sync%3Fpage%3D2",
    );
    assert_redirect_to(&app.get("/users").await, "/login?next=/users");
    assert_redirect_to(&app.get("/no-such-page").await, "/login?next=/no-such-page");
}

#[tokio::test]
async fn the_api_without_a_session_answers_401_json() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/jobs").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    assert!(body["error"].is_string());
    assert_eq!(body["fields"], serde_json::json!({}));
}

#[tokio::test]
async fn healthz_and_static_files_need_no_session() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/static/app.css").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_message() {
    let app = spawn_app().await;
    let wrong_password = app.login("admin", "not-the-password").await;
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    let wrong_password = wrong_password.text().await.expect("a body");
    let unknown_user = app.login("nobody", "not-the-password").await;
    assert_eq!(unknown_user.status(), StatusCode::UNAUTHORIZED);
    let unknown_user = unknown_user.text().await.expect("a body");
    let message = batchboard::web::login::BAD_CREDENTIALS;
    assert!(wrong_password.contains(message));
    assert!(unknown_user.contains(message));
}

#[tokio::test]
async fn a_disabled_user_cannot_sign_in_and_gets_the_same_message() {
    let app = spawn_app().await;
    app.create_user("ann", Role::Operator).await;
    let ann = app
        .store
        .user_by_name("ann")
        .await
        .expect("store")
        .expect("ann");
    let update = batchboard::store::UserUpdate {
        disabled: Some(true),
        ..Default::default()
    };
    app.store
        .update_user(ann.id, &update, crate::helpers::start_time())
        .await
        .expect("disabled");
    let response = app.login("ann", USER_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = response.text().await.expect("a body");
    assert!(body.contains(batchboard::web::login::BAD_CREDENTIALS));
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_until_the_delay_passes() {
    let app = spawn_app().await;
    for _ in 0..batchboard::web::throttle::PER_NAME_AND_ADDRESS.free_failures {
        let response = app.login("admin", "not-the-password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused while the delay runs.
    let refused = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("30")
    );
    let body = refused.text().await.expect("a body");
    assert!(body.contains("Try again in 30 s"), "{body}");
    app.clock.advance(chrono::Duration::seconds(31));
    app.login_ok("admin", ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn signing_in_opens_the_dashboard_with_an_httponly_samesite_cookie() {
    let app = spawn_app().await;
    let response = app.login("admin", ADMIN_PASSWORD).await;
    assert_redirect_to(&response, "/");
    let cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("batchboard_session="))
        .expect("a session cookie")
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "not configured for TLS: {cookie}"
    );
    let dashboard = app.get("/").await;
    // The dashboard is the pages engineer's; until it is merged the route may be absent.
    assert_ne!(dashboard.status(), StatusCode::SEE_OTHER);
    assert_ne!(dashboard.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/users").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn signing_in_goes_to_next_but_never_off_site() {
    let app = spawn_app().await;
    let token = app.csrf_token().await;
    let response = app
        .post_form(
            "/login",
            &[
                ("name", "admin"),
                ("password", ADMIN_PASSWORD),
                ("csrf_token", &token),
                ("next", "/users?x=1"),
            ],
        )
        .await;
    assert_redirect_to(&response, "/users?x=1");

    let other = app.with_new_client();
    let token = other.csrf_token().await;
    let response = other
        .post_form(
            "/login",
            &[
                ("name", "admin"),
                ("password", ADMIN_PASSWORD),
                ("csrf_token", &token),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_redirect_to(&response, "/");
}

#[tokio::test]
async fn logging_out_invalidates_the_session_cookie() {
    let app = spawn_app().await;
    let response = app.login("admin", ADMIN_PASSWORD).await;
    let session = TestApp::session_cookie(response.headers()).expect("a session cookie");
    let with_old_cookie = || {
        new_client()
            .get(app.url("/users"))
            .header(COOKIE, format!("batchboard_session={session}"))
            .send()
    };
    assert_eq!(
        with_old_cookie().await.expect("answered").status(),
        StatusCode::OK
    );
    let token = app.csrf_token().await;
    let logout = app.post_form("/logout", &[("csrf_token", &token)]).await;
    assert_redirect_to(&logout, "/login");
    assert_eq!(
        with_old_cookie().await.expect("answered").status(),
        StatusCode::SEE_OTHER
    );
    assert_redirect_to(&app.get("/users").await, "/login?next=/users");
}

#[tokio::test]
async fn posts_without_or_with_a_wrong_csrf_token_are_forbidden() {
    let app = spawn_app().await;
    app.login_ok("admin", ADMIN_PASSWORD).await;
    let form = [
        ("name", "bob"),
        ("role", "viewer"),
        ("password", USER_PASSWORD),
    ];
    let without = app.post_form("/users", &form).await;
    assert_eq!(without.status(), StatusCode::FORBIDDEN);
    let mut wrong = form.to_vec();
    wrong.push(("csrf_token", "0000"));
    assert_eq!(
        app.post_form("/users", &wrong).await.status(),
        StatusCode::FORBIDDEN
    );
    let wrong_header = app
        .client
        .post(app.url("/users"))
        .header("X-CSRF-Token", "0000")
        .form(&form)
        .send()
        .await
        .expect("answered");
    assert_eq!(wrong_header.status(), StatusCode::FORBIDDEN);
    // Logging out needs the token too.
    assert_eq!(
        app.post_form("/logout", &[]).await.status(),
        StatusCode::FORBIDDEN
    );
    assert!(
        app.store
            .user_by_name("bob")
            .await
            .expect("store")
            .is_none()
    );

    let token = app.csrf_token().await;
    let mut right = form.to_vec();
    right.push(("csrf_token", &token));
    assert_redirect_to(&app.post_form("/users", &right).await, "/users");
    assert!(
        app.store
            .user_by_name("bob")
            .await
            .expect("store")
            .is_some()
    );
}

#[tokio::test]
async fn the_token_from_before_sign_in_is_not_valid_after_it() {
    let app = spawn_app().await;
    let before = app.csrf_token().await;
    app.login_ok("admin", ADMIN_PASSWORD).await;
    let after = app.csrf_token().await;
    assert_ne!(before, after);
    let response = app.post_form("/logout", &[("csrf_token", &before)]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_htmx_poll_whose_session_ended_is_sent_to_sign_in_not_given_the_login_page() {
    let app = spawn_app().await;
    app.login_ok("admin", ADMIN_PASSWORD).await;
    let token = app.csrf_token().await;
    let logout = app.post_form("/logout", &[("csrf_token", &token)]).await;
    assert_redirect_to(&logout, "/login");
    // The dashboard's table poll, made from a filtered dashboard.
    let poll = |current: Option<String>| {
        let request = app
            .client
            .get(app.url("/?state=paused"))
            .header("HX-Request", "true");
        match current {
            Some(url) => request.header("HX-Current-URL", url),
            None => request,
        }
        .send()
    };
    let response = poll(Some(app.url("/?q=sync&state=paused")))
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        response.headers().get(LOCATION).is_none(),
        "no 303 to swap in"
    );
    assert_eq!(
        response.headers()["HX-Redirect"],
        "/login?next=/%3Fq%3Dsync%26state%3Dpaused"
    );
    assert!(response.text().await.expect("a body").is_empty());
    // Without the page's address, the sign-in leads to the home page, not to a partial.
    let response = poll(None).await.expect("answered");
    assert_eq!(response.headers()["HX-Redirect"], "/login?next=/");
    // Not htmx: the usual 303.
    assert_redirect_to(
        &app.get("/?state=paused").await,
        "/login?next=/%3Fstate%3Dpaused",
    );
}

#[tokio::test]
async fn an_htmx_request_passes_with_the_token_in_its_header() {
    let app = spawn_app().await;
    app.login_ok("admin", ADMIN_PASSWORD).await;
    let token = app.csrf_token().await;
    let response = app
        .client
        .post(app.url("/logout"))
        .header("X-CSRF-Token", &token)
        .header("HX-Request", "true")
        .send()
        .await
        .expect("answered");
    assert_redirect_to(&response, "/login");
}

#[tokio::test]
async fn a_viewer_and_an_operator_get_403_on_the_users_page_and_its_changes() {
    let app = spawn_app().await;
    for (name, role) in [("vera", Role::Viewer), ("otto", Role::Operator)] {
        app.create_user(name, role).await;
        let client_app = app.with_new_client();
        client_app.login_ok(name, USER_PASSWORD).await;
        assert_eq!(
            client_app.get("/users").await.status(),
            StatusCode::FORBIDDEN
        );
        let token = client_app.csrf_token().await;
        let admin = app
            .store
            .user_by_name("admin")
            .await
            .expect("store")
            .expect("admin");
        for path in [
            "/users".to_owned(),
            format!("/users/{}/role", admin.id),
            format!("/users/{}/disabled", admin.id),
            format!("/users/{}/password", admin.id),
        ] {
            let response = client_app
                .post_form(
                    &path,
                    &[
                        ("csrf_token", &token),
                        ("name", "mallory"),
                        ("role", "admin"),
                        ("disabled", "true"),
                        ("password", "a-new-password-123"),
                    ],
                )
                .await;
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{name} POST {path}"
            );
        }
    }
    let admin = app
        .store
        .user_by_name("admin")
        .await
        .expect("store")
        .expect("admin");
    assert!(!admin.disabled);
    assert!(
        app.store
            .user_by_name("mallory")
            .await
            .expect("store")
            .is_none()
    );
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let app = spawn_app().await;
    for path in ["/login", "/healthz", "/static/app.css", "/", "/api/v1/jobs"] {
        let response = app.get(path).await;
        let headers = response.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(
            header("content-security-policy"),
            batchboard::web::security::CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert!(header("content-security-policy").contains("script-src 'self'"));
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
    }
}

#[tokio::test]
async fn the_users_page_refuses_invalid_input_next_to_the_field_and_saves_nothing() {
    let app = spawn_app().await;
    app.login_ok("admin", ADMIN_PASSWORD).await;
    let token = app.csrf_token().await;
    let response = app
        .post_form(
            "/users",
            &[
                ("csrf_token", &token),
                ("name", "Bad Name"),
                ("role", "operator"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = response.text().await.expect("a body");
    assert!(body.contains(r#"id="new-name-error""#), "{body}");
    assert!(body.contains("use at least 12 characters"), "{body}");
    assert_eq!(app.store.count_users().await.expect("store"), 1);
}

#[tokio::test]
async fn an_admin_changes_roles_disables_and_resets_passwords() {
    let app = spawn_app().await;
    app.create_user("ann", Role::Viewer).await;
    let ann = app
        .store
        .user_by_name("ann")
        .await
        .expect("store")
        .expect("ann");
    app.login_ok("admin", ADMIN_PASSWORD).await;
    let token = app.csrf_token().await;
    let role = app
        .post_form(
            &format!("/users/{}/role", ann.id),
            &[("csrf_token", &token), ("role", "operator")],
        )
        .await;
    assert_redirect_to(&role, "/users");
    let password = app
        .post_form(
            &format!("/users/{}/password", ann.id),
            &[
                ("csrf_token", &token),
                ("password", "another-long-password"),
            ],
        )
        .await;
    assert_redirect_to(&password, "/users");
    // A password the admin chose is ann's to replace first.
    let ann_app = app.with_new_client();
    let signed_in = ann_app.login("ann", "another-long-password").await;
    assert_redirect_to(&signed_in, "/account/password");
    let changed = ann_app
        .change_password("another-long-password", "anns-own-password")
        .await;
    assert_redirect_to(&changed, "/");
    assert_eq!(ann_app.get("/").await.status(), StatusCode::OK);
    let disable = app
        .post_form(
            &format!("/users/{}/disabled", ann.id),
            &[("csrf_token", &token), ("disabled", "true")],
        )
        .await;
    assert_redirect_to(&disable, "/users");
    let ann = app
        .store
        .user_by_name("ann")
        .await
        .expect("store")
        .expect("ann");
    assert_eq!(ann.role, Role::Operator);
    assert!(ann.disabled);
    // A disabled user's open session stops working.
    assert_redirect_to(&ann_app.get("/").await, "/login?next=/");
}

#[tokio::test]
async fn the_first_start_creates_admin_with_the_configured_password() {
    let app = spawn_app().await;
    let users = app.store.users().await.expect("store");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].name, "admin");
    assert_eq!(users[0].role, Role::Admin);
    assert!(users[0].password_hash.starts_with("$argon2id$"));
    app.login_ok("admin", ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn a_restart_with_users_creates_no_admin_and_keeps_passwords() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = test_settings(dir.path());
    // The database lives in `dir` (the settings say so); the apps' own folders are spare.
    let first = spawn_app_with(settings.clone(), tempfile::tempdir().expect("dir")).await;
    first.stop().await;
    settings.admin_password = Some("a-different-password".into());
    let app = spawn_app_with(settings, dir).await;
    assert_eq!(app.store.count_users().await.expect("store"), 1);
    app.login_ok("admin", ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn user_add_on_the_command_line_reads_the_password_from_stdin() {
    let app = spawn_app().await;
    let run = |args: &[&str], stdin: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_batchboard"))
            .args(args)
            .env("BATCHBOARD_DATABASE_URL", &app.database_url)
            .env_remove("BATCHBOARD_CONFIG")
            .current_dir(app.dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary starts");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("the password is written");
        child.wait_with_output().expect("the binary finishes")
    };
    let short = run(
        &["user", "add", "carol", "--role", "operator"],
        "too-short\n",
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
    let added = run(
        &["user", "add", "carol", "--role", "operator"],
        "carols-long-password\nignored second line\n",
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let carol = app
        .store
        .user_by_name("carol")
        .await
        .expect("store")
        .expect("carol");
    assert_eq!(carol.role, Role::Operator);
    app.login_ok("carol", "carols-long-password").await;

    let changed = run(&["user", "passwd", "carol"], "carols-new-password\n");
    assert!(
        changed.status.success(),
        "{}",
        String::from_utf8_lossy(&changed.stderr)
    );
    app.with_new_client()
        .login_ok("carol", "carols-new-password")
        .await;
}
