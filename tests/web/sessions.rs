//! Sessions and cookies: cookie flags and names, HSTS, `no-store`, a new session id at
//! every sign-in, sessions and tokens ended by changes to their user, the sign-in form's
//! session-less CSRF token, expired-session cleanup, and user and token management
//! refused to API tokens.

use batchboard::store::{NewApiToken, Role};
use batchboard::web::sessions::Sessions;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, COOKIE, HeaderMap, SET_COOKIE};

use crate::helpers::{
    ADMIN_PASSWORD, TestApp, TestClient, USER_PASSWORD, assert_redirect_to, new_client,
    scrape_csrf, spawn_app, spawn_app_with, start_time, test_settings,
};
use crate::raw_db::RawDb;

/// The whole `Set-Cookie` line of the cookie called `name`, if the answer sets it.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|line| line.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The `name=value` part of a `Set-Cookie` line, to send back by hand.
fn pair(line: &str) -> &str {
    line.split(';').next().unwrap_or_default()
}

/// How many sessions the session table holds.
async fn session_rows(app: &TestApp) -> i64 {
    RawDb::open(app)
        .await
        .count("SELECT COUNT(*) FROM {sessions}", None)
        .await
}

/// Whether the session table still holds the session whose cookie value is `id`.
async fn session_exists(app: &TestApp, id: &str) -> bool {
    let db = RawDb::open(app).await;
    db.count("SELECT COUNT(*) FROM {sessions} WHERE id = $1", Some(id))
        .await
        == 1
}

/// A client signed in as `name`, and its session id.
async fn signed_in(app: &TestApp, name: &str, password: &str) -> (TestClient, String) {
    let client = app.with_new_client();
    let response = client.login(name, password).await;
    assert_redirect_to(&response, "/");
    let id = TestApp::session_cookie(response.headers()).expect("a session cookie");
    (client, id)
}

/// A live API token of user `name`, created in the store.
async fn token_of(app: &TestApp, name: &str, role: Role) -> String {
    let owner = app
        .store
        .user_by_name(name)
        .await
        .expect("the store answers")
        .expect("the user exists");
    let (token, secret) =
        NewApiToken::issue(&owner, "script", role, None, start_time()).expect("a valid token");
    app.store
        .create_token(&token, start_time())
        .await
        .expect("the token is stored");
    secret.expose().to_owned()
}

async fn bearer_get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    new_client()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("answered")
}

async fn user_id(app: &TestApp, name: &str) -> i64 {
    app.store
        .user_by_name(name)
        .await
        .expect("the store answers")
        .expect("the user exists")
        .id
}

/// Posts a change of user `name` on the users page as `admin`.
async fn change_user(admin: &TestClient, id: i64, what: &str, field: (&str, &str)) {
    let token = admin.csrf_token().await;
    let response = admin
        .post_form(
            &format!("/users/{id}/{what}"),
            &[("csrf_token", token.as_str()), field],
        )
        .await;
    assert_redirect_to(&response, "/users");
}

#[tokio::test]
async fn signed_in_pages_partials_api_answers_and_the_login_page_are_never_stored() {
    let app = spawn_app().await;
    let login = app.get("/login").await;
    assert_eq!(
        login.headers().get(CACHE_CONTROL).map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    app.login_ok("admin", ADMIN_PASSWORD).await;
    for path in [
        "/",
        "/jobs/inventory-sync",
        "/jobs/inventory-sync/summary",
        "/api/v1/jobs",
        "/users",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let cache = response.headers().get(CACHE_CONTROL);
        assert_eq!(
            cache.map(|v| v.as_bytes()),
            Some(&b"no-store"[..]),
            "{path}"
        );
    }
    // Refusals too: they say which pages and jobs exist.
    let anonymous = app.with_new_client();
    let refused = anonymous.get("/api/v1/jobs").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.headers().get(CACHE_CONTROL).map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    // Static files stay cacheable.
    let css = app.get("/static/app.css").await;
    assert_ne!(
        css.headers().get(CACHE_CONTROL).map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
}

#[tokio::test]
async fn without_secure_cookies_cookies_are_plain_named_httponly_and_samesite_and_not_secure() {
    let app = spawn_app().await;
    let page = app.get("/login").await;
    let login_cookie = set_cookie(page.headers(), "batchboard_login").expect("a sign-in cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(login_cookie.contains(flag), "{login_cookie}");
    }
    assert!(!login_cookie.contains("Secure"), "{login_cookie}");
    let token = scrape_csrf(&page.text().await.expect("a body")).expect("a token");
    let response = app
        .post_form(
            "/login",
            &[
                ("name", "admin"),
                ("password", ADMIN_PASSWORD),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_redirect_to(&response, "/");
    let session = set_cookie(response.headers(), "batchboard_session").expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(flag), "{session}");
    }
    assert!(!session.contains("Secure"), "{session}");
    assert!(set_cookie(response.headers(), "__Host-batchboard_session").is_none());
}

#[tokio::test]
async fn with_secure_cookies_every_cookie_is_secure_and_host_prefixed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = test_settings(dir.path());
    settings.web.secure_cookies = true;
    let app = spawn_app_with(settings, dir).await;
    // A browser keeps `Secure` cookies only over HTTPS, so they are sent back by hand.
    let client = new_client();
    let page = client
        .get(app.url("/login"))
        .send()
        .await
        .expect("answered");
    let login_cookie =
        set_cookie(page.headers(), "__Host-batchboard_login").expect("a prefixed sign-in cookie");
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(login_cookie.contains(flag), "{login_cookie}");
    }
    assert!(!login_cookie.contains("Domain"), "{login_cookie}");
    let token = scrape_csrf(&page.text().await.expect("a body")).expect("a token");
    let response = client
        .post(app.url("/login"))
        .header(COOKIE, pair(&login_cookie))
        .form(&[
            ("name", "admin"),
            ("password", ADMIN_PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .expect("answered");
    assert_redirect_to(&response, "/");
    let session =
        set_cookie(response.headers(), "__Host-batchboard_session").expect("a prefixed session");
    for flag in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(flag), "{session}");
    }
    assert!(!session.contains("Domain"), "{session}");
    assert!(set_cookie(response.headers(), "batchboard_session").is_none());
    // The prefixed cookie is the session.
    let users = client
        .get(app.url("/users"))
        .header(COOKIE, pair(&session))
        .send()
        .await
        .expect("answered");
    assert_eq!(users.status(), StatusCode::OK);
}

#[tokio::test]
async fn hsts_is_sent_on_every_answer_when_configured_and_never_otherwise() {
    let plain = spawn_app().await;
    for path in ["/login", "/healthz", "/"] {
        let response = plain.get(path).await;
        assert!(
            response
                .headers()
                .get("strict-transport-security")
                .is_none(),
            "{path}"
        );
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = test_settings(dir.path());
    settings.web.hsts = Some(std::time::Duration::from_secs(365 * 24 * 60 * 60));
    let app = spawn_app_with(settings, dir).await;
    for path in ["/login", "/healthz", "/", "/static/app.css"] {
        let response = app.get(path).await;
        let hsts = response.headers().get("strict-transport-security");
        assert_eq!(
            hsts.map(|v| v.as_bytes()),
            Some(&b"max-age=31536000"[..]),
            "{path}"
        );
    }
}

#[tokio::test]
async fn anonymous_visits_to_the_login_page_write_no_session_row() {
    let app = spawn_app().await;
    for _ in 0..25 {
        let response = new_client()
            .get(app.url("/login"))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(TestApp::session_cookie(response.headers()).is_none());
    }
    // A browser that comes back with its cookie writes none either.
    for _ in 0..5 {
        assert_eq!(app.get("/login").await.status(), StatusCode::OK);
    }
    assert_eq!(session_rows(&app).await, 0);
    // The form still works, and signing in writes exactly one.
    app.login_ok("admin", ADMIN_PASSWORD).await;
    assert_eq!(session_rows(&app).await, 1);
}

#[tokio::test]
async fn the_login_form_refuses_a_missing_or_forged_csrf_token() {
    let app = spawn_app().await;
    let page = app.get("/login").await;
    let token = scrape_csrf(&page.text().await.expect("a body")).expect("a token");
    let attempt = |token: Option<String>| {
        let mut form = vec![
            ("name", "admin".to_owned()),
            ("password", ADMIN_PASSWORD.to_owned()),
        ];
        if let Some(token) = token {
            form.push(("csrf_token", token));
        }
        app.client.post(app.url("/login")).form(&form).send()
    };
    let missing = attempt(None).await.expect("answered");
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    // The form comes back, fresh, saying why.
    let body = missing.text().await.expect("a body");
    assert!(
        body.contains(batchboard::web::login::FORM_EXPIRED),
        "{body}"
    );
    assert!(scrape_csrf(&body).is_some(), "{body}");
    // Another value signed by someone without the server's key.
    let (value, _) = token.rsplit_once('.').expect("a signed token");
    let forged = format!("{value}.{}", "0".repeat(64));
    assert_eq!(
        attempt(Some(forged)).await.expect("answered").status(),
        StatusCode::FORBIDDEN
    );
    // A real token of another browser does not match this browser's cookie.
    let other_page = new_client()
        .get(app.url("/login"))
        .send()
        .await
        .expect("answered");
    let other = scrape_csrf(&other_page.text().await.expect("a body")).expect("a token");
    assert_eq!(
        attempt(Some(other)).await.expect("answered").status(),
        StatusCode::FORBIDDEN
    );
    // The right token without its cookie is refused too.
    let cookieless = new_client()
        .post(app.url("/login"))
        .form(&[
            ("name", "admin"),
            ("password", ADMIN_PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .expect("answered");
    assert_eq!(cookieless.status(), StatusCode::FORBIDDEN);
    assert_eq!(session_rows(&app).await, 0, "nothing signed in");
    assert_redirect_to(&attempt(Some(token)).await.expect("answered"), "/");
}

#[tokio::test]
async fn the_session_id_changes_at_sign_in_also_over_a_signed_in_session() {
    let app = spawn_app().await;
    app.create_user("ann", Role::Viewer).await;
    // A session id planted in the browser beforehand is not kept.
    let planted = "AAAAAAAAAAAAAAAAAAAAAA";
    let client = app.with_new_client();
    let page = client.get("/login").await;
    let login_cookie = set_cookie(page.headers(), "batchboard_login").expect("a sign-in cookie");
    let token = scrape_csrf(&page.text().await.expect("a body")).expect("a token");
    let first = new_client()
        .post(app.url("/login"))
        .header(
            COOKIE,
            format!("{}; batchboard_session={planted}", pair(&login_cookie)),
        )
        .form(&[
            ("name", "admin"),
            ("password", ADMIN_PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .expect("answered");
    assert_redirect_to(&first, "/");
    let first = TestApp::session_cookie(first.headers()).expect("a session cookie");
    assert_ne!(first, planted);

    // Signing in again over a signed-in session, as someone else or as the same user.
    let (client, before) = signed_in(&app, "admin", ADMIN_PASSWORD).await;
    for (name, password) in [("ann", USER_PASSWORD), ("admin", ADMIN_PASSWORD)] {
        let token = client.csrf_token().await;
        let response = client
            .post_form(
                "/login",
                &[
                    ("name", name),
                    ("password", password),
                    ("csrf_token", &token),
                ],
            )
            .await;
        assert_redirect_to(&response, "/");
        let after = TestApp::session_cookie(response.headers()).expect("a new session cookie");
        assert_ne!(before, after, "signing in as {name}");
        assert!(
            !session_exists(&app, &before).await,
            "the old id names nothing"
        );
        let stale = new_client()
            .get(app.url("/"))
            .header(COOKIE, format!("batchboard_session={before}"))
            .send()
            .await
            .expect("answered");
        assert_redirect_to(&stale, "/login?next=/");
    }
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_and_tokens_and_enabling_brings_none_back() {
    let app = spawn_app().await;
    app.create_user("ann", Role::Operator).await;
    let (ann, ann_session) = signed_in(&app, "ann", USER_PASSWORD).await;
    let ann_token = token_of(&app, "ann", Role::Operator).await;
    assert_eq!(ann.get("/").await.status(), StatusCode::OK);
    assert_eq!(
        bearer_get(&app, &ann_token, "/api/v1/jobs").await.status(),
        StatusCode::OK
    );
    let (admin, admin_session) = signed_in(&app, "admin", ADMIN_PASSWORD).await;
    let id = user_id(&app, "ann").await;

    change_user(&admin, id, "disabled", ("disabled", "true")).await;
    assert!(!session_exists(&app, &ann_session).await);
    assert_redirect_to(&ann.get("/").await, "/login?next=/");
    assert_eq!(
        bearer_get(&app, &ann_token, "/api/v1/jobs").await.status(),
        StatusCode::UNAUTHORIZED
    );

    change_user(&admin, id, "disabled", ("disabled", "false")).await;
    assert_redirect_to(&ann.get("/").await, "/login?next=/");
    let after = bearer_get(&app, &ann_token, "/api/v1/jobs").await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = after.json().await.expect("a JSON body");
    assert_eq!(body["error"], "the API token was revoked");
    // The acting admin's own session is untouched.
    assert!(session_exists(&app, &admin_session).await);
    assert_eq!(admin.get("/users").await.status(), StatusCode::OK);
    // Ann signs in again as usual.
    signed_in(&app, "ann", USER_PASSWORD).await;
}

#[tokio::test]
async fn a_reset_password_ends_the_users_other_sessions_and_tokens() {
    let app = spawn_app().await;
    app.create_user("ann", Role::Operator).await;
    let (ann_laptop, laptop) = signed_in(&app, "ann", USER_PASSWORD).await;
    let (ann_phone, phone) = signed_in(&app, "ann", USER_PASSWORD).await;
    let ann_token = token_of(&app, "ann", Role::Viewer).await;
    let (admin, admin_session) = signed_in(&app, "admin", ADMIN_PASSWORD).await;
    let id = user_id(&app, "ann").await;

    change_user(
        &admin,
        id,
        "password",
        ("password", "a-new-password-for-ann"),
    )
    .await;
    for (client, session) in [(&ann_laptop, &laptop), (&ann_phone, &phone)] {
        assert!(!session_exists(&app, session).await);
        assert_redirect_to(&client.get("/").await, "/login?next=/");
    }
    assert_eq!(
        bearer_get(&app, &ann_token, "/api/v1/jobs").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(session_exists(&app, &admin_session).await);
    assert_eq!(admin.get("/users").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_role_change_ends_the_users_sessions_but_not_the_admins() {
    let app = spawn_app().await;
    app.create_user("ann", Role::Operator).await;
    let (ann, ann_session) = signed_in(&app, "ann", USER_PASSWORD).await;
    let ann_token = token_of(&app, "ann", Role::Operator).await;
    let (admin, admin_session) = signed_in(&app, "admin", ADMIN_PASSWORD).await;
    let id = user_id(&app, "ann").await;

    change_user(&admin, id, "role", ("role", "viewer")).await;
    assert!(!session_exists(&app, &ann_session).await);
    assert_redirect_to(&ann.get("/").await, "/login?next=/");
    // A token is not ended by a role change: it is capped at the user's new role.
    assert_eq!(
        bearer_get(&app, &ann_token, "/api/v1/jobs").await.status(),
        StatusCode::OK
    );
    assert!(session_exists(&app, &admin_session).await);
    assert_eq!(admin.get("/users").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_admin_resetting_their_own_password_keeps_their_session_and_ends_the_others() {
    let app = spawn_app().await;
    let (elsewhere, _) = signed_in(&app, "admin", ADMIN_PASSWORD).await;
    let (admin, _) = signed_in(&app, "admin", ADMIN_PASSWORD).await;
    let id = user_id(&app, "admin").await;
    change_user(
        &admin,
        id,
        "password",
        ("password", "the-admins-new-password"),
    )
    .await;
    assert_eq!(admin.get("/users").await.status(), StatusCode::OK);
    assert_redirect_to(&elsewhere.get("/").await, "/login?next=/");
    let me = app
        .store
        .user_by_id(id)
        .await
        .expect("store")
        .expect("admin");
    assert!(!me.must_change_password, "an admin's own choice is final");
    signed_in(&app, "admin", "the-admins-new-password").await;
}

#[tokio::test]
async fn an_api_token_is_refused_on_user_and_token_management() {
    let app = spawn_app().await;
    let token = token_of(&app, "admin", Role::Admin).await;
    for path in ["/users", "/tokens", "/account/password"] {
        let response = bearer_get(&app, &token, path).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let body: serde_json::Value = response.json().await.expect("a JSON body");
        assert_eq!(
            body["error"],
            batchboard::web::auth::SESSION_REQUIRED,
            "{path}"
        );
    }
    let create = new_client()
        .post(app.url("/users"))
        .bearer_auth(&token)
        .form(&[
            ("name", "mallory"),
            ("role", "admin"),
            ("password", "a-permanent-account"),
        ])
        .send()
        .await
        .expect("answered");
    assert_eq!(create.status(), StatusCode::FORBIDDEN);
    assert!(
        app.store
            .user_by_name("mallory")
            .await
            .expect("store")
            .is_none()
    );
    let id = user_id(&app, "admin").await;
    let reset = new_client()
        .post(app.url(&format!("/users/{id}/password")))
        .bearer_auth(&token)
        .form(&[("password", "taken-over-by-a-token")])
        .send()
        .await
        .expect("answered");
    assert_eq!(reset.status(), StatusCode::FORBIDDEN);
    app.with_new_client()
        .login_ok("admin", ADMIN_PASSWORD)
        .await;
}

#[tokio::test]
async fn the_start_up_deletes_unindexed_sessions_and_the_cleanup_expired_ones_and_their_index_rows()
{
    let app = spawn_app().await;
    app.create_user("ann", Role::Viewer).await;
    let (_, live) = signed_in(&app, "ann", USER_PASSWORD).await;
    let (_, expired) = signed_in(&app, "admin", ADMIN_PASSWORD).await;
    let db = RawDb::open(&app).await;
    // Sessions expire by the real clock (tower-sessions reads it), so the row is aged.
    // In the RFC 3339 form the SQLite session store writes (PostgreSQL reads it too).
    db.execute(
        "UPDATE {sessions} SET expiry_date = '2001-01-01T00:00:00Z' WHERE id = $1",
        Some(&expired),
    )
    .await;
    // A session from before the index (or an anonymous one) cannot be ended by a change
    // to its user, so the start-up deletes it.
    db.execute(
        "INSERT INTO {sessions} (id, data, expiry_date) \
         VALUES ('unindexed', {zero_byte}, '2999-01-01T00:00:00Z')",
        None,
    )
    .await;
    let sessions = Sessions::open(app.store.clone())
        .await
        .expect("the session store");
    assert!(!session_exists(&app, "unindexed").await);
    assert!(session_exists(&app, &live).await);
    assert!(
        session_exists(&app, &expired).await,
        "not yet: the cleanup's job"
    );
    sessions.delete_expired().await.expect("the cleanup runs");
    assert!(!session_exists(&app, &expired).await);
    assert!(session_exists(&app, &live).await);
    let indexed = db.strings("SELECT session_id FROM user_sessions").await;
    assert_eq!(indexed, [live]);
}
