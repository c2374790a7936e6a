//! API tokens: created on the /tokens page or with the CLI, used as `Authorization:
//! Bearer`, limited by role, expiry and revocation, and stored only as a hash.

use batchboard::clock::Clock as _;
use batchboard::store::{ApiToken, ChangeFilter, Role, UserUpdate};
use chrono::Duration;
use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;

use crate::helpers::{TestApp, TestClient, USER_PASSWORD, assert_redirect_to, spawn_app};
use crate::raw_db::RawDb;

const JOB: &str = "inventory-sync";

/// A client of `app` signed in as a new user `name` with `role`.
async fn signed_in(app: &TestApp, name: &str, role: Role) -> TestClient {
    app.create_user(name, role).await;
    let client = app.with_new_client();
    client.login_ok(name, USER_PASSWORD).await;
    client
}

/// Posts the create form of /tokens.
async fn create_on_page(
    client: &TestClient,
    name: &str,
    role: &str,
    expires: &str,
) -> reqwest::Response {
    let csrf = client.csrf_token().await;
    client
        .post_form(
            "/tokens",
            &[
                ("name", name),
                ("role", role),
                ("expires", expires),
                ("csrf_token", &csrf),
            ],
        )
        .await
}

/// The token shown once on the page answering a successful create.
fn scrape_secret(html: &str) -> Option<String> {
    let field = html.find(r#"id="new-token-secret""#)?;
    let start = html[field..].find(r#"value=""#)? + field + r#"value=""#.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// Creates a token on the page and returns its text.
async fn token_from_page(client: &TestClient, name: &str, role: &str, expires: &str) -> String {
    let response = create_on_page(client, name, role, expires).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let html = response.text().await.expect("a body");
    scrape_secret(&html).expect("the new token is on the page")
}

/// A cookie-less request to `path` with `token` as bearer.
async fn bearer_get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.with_new_client()
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("the request is answered")
}

/// A cookie-less POST (no CSRF token) to `path` with `token` as bearer.
async fn bearer_post(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.with_new_client()
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("the request is answered")
}

async fn paused(app: &TestApp) -> bool {
    app.store
        .job_by_name(JOB)
        .await
        .expect("store")
        .expect("the job")
        .paused
}

async fn stored_tokens(app: &TestApp, user: &str) -> Vec<ApiToken> {
    let user = app
        .store
        .user_by_name(user)
        .await
        .expect("store")
        .expect("the user");
    app.store.tokens_of_user(user.id).await.expect("store")
}

/// Asserts a 401 in the API's JSON error shape with the bearer challenge, whose message
/// contains `says`.
async fn assert_refused_token(response: reqwest::Response, says: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok()),
        Some(r#"Bearer error="invalid_token""#)
    );
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    let message = body["error"].as_str().expect("an error message");
    assert!(message.contains(says), "{message}");
    assert_eq!(body["fields"], serde_json::json!({}));
}

#[tokio::test]
async fn a_token_from_the_page_is_shown_once_and_reads_and_changes_without_csrf() {
    let app = spawn_app().await;
    let otto = signed_in(&app, "otto", Role::Operator).await;
    let token = token_from_page(&otto, "ci", "operator", "30d").await;
    assert!(token.starts_with("bb_"));

    let list = otto.get("/tokens").await.text().await.expect("a body");
    assert!(list.contains("<th scope=\"row\">ci</th>"), "{list}");
    assert!(!list.contains(&token), "the token is shown only once");

    assert_eq!(bearer_get(&app, &token, "/").await.status(), StatusCode::OK);
    let response = bearer_post(&app, &token, &format!("/jobs/{JOB}/pause")).await;
    assert_redirect_to(&response, &format!("/jobs/{JOB}"));
    assert!(paused(&app).await);
    let changes = app
        .store
        .job_changes(&ChangeFilter {
            limit: 100,
            ..ChangeFilter::default()
        })
        .await
        .expect("store");
    assert!(changes.iter().any(|change| change.actor == "otto"));
}

#[tokio::test]
async fn an_expired_token_gets_401_json_on_reads_and_changes() {
    let app = spawn_app().await;
    let otto = signed_in(&app, "otto", Role::Operator).await;
    let token = token_from_page(&otto, "short", "operator", "1h").await;
    assert_eq!(bearer_get(&app, &token, "/").await.status(), StatusCode::OK);

    app.clock.advance(Duration::hours(1));
    assert_refused_token(bearer_get(&app, &token, "/").await, "expired").await;
    assert_refused_token(
        bearer_post(&app, &token, &format!("/jobs/{JOB}/pause")).await,
        "expired",
    )
    .await;
    assert!(!paused(&app).await);
    let list = otto.get("/tokens").await.text().await.expect("a body");
    assert!(list.contains("(expired)"), "{list}");
}

#[tokio::test]
async fn a_revoked_token_gets_401_and_changes_nothing() {
    let app = spawn_app().await;
    let otto = signed_in(&app, "otto", Role::Operator).await;
    let token = token_from_page(&otto, "ci", "operator", "").await;
    let id = stored_tokens(&app, "otto").await[0].id;

    let csrf = otto.csrf_token().await;
    let response = otto
        .post_form(&format!("/tokens/{id}/revoke"), &[("csrf_token", &csrf)])
        .await;
    assert_redirect_to(&response, "/tokens");
    assert!(stored_tokens(&app, "otto").await.is_empty());

    assert_refused_token(bearer_get(&app, &token, "/").await, "revoked").await;
    assert_refused_token(
        bearer_post(&app, &token, &format!("/jobs/{JOB}/pause")).await,
        "revoked",
    )
    .await;
    assert!(!paused(&app).await);
}

#[tokio::test]
async fn nobody_revokes_someone_elses_token() {
    let app = spawn_app().await;
    let otto = signed_in(&app, "otto", Role::Operator).await;
    let token = token_from_page(&otto, "ci", "operator", "").await;
    let id = stored_tokens(&app, "otto").await[0].id;

    let mallory = signed_in(&app, "mallory", Role::Operator).await;
    let csrf = mallory.csrf_token().await;
    let response = mallory
        .post_form(&format!("/tokens/{id}/revoke"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(bearer_get(&app, &token, "/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_viewer_token_gets_403_on_a_change() {
    let app = spawn_app().await;
    let otto = signed_in(&app, "otto", Role::Operator).await;
    let token = token_from_page(&otto, "read-only", "viewer", "").await;
    assert_eq!(bearer_get(&app, &token, "/").await.status(), StatusCode::OK);
    let response = bearer_post(&app, &token, &format!("/jobs/{JOB}/pause")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!paused(&app).await);
}

#[tokio::test]
async fn a_token_cannot_have_more_than_its_users_role() {
    let app = spawn_app().await;
    let vera = signed_in(&app, "vera", Role::Viewer).await;
    let response = create_on_page(&vera, "ci", "operator", "30d").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("a body");
    assert!(
        html.contains(r#"id="token-role-error">a token cannot have more than its user's role"#)
            || html.contains("a token cannot have more than its user&#39;s role"),
        "{html}"
    );
    // The form offers only the roles the user has.
    assert!(!html.contains(r#"<option value="operator""#), "{html}");
    assert!(stored_tokens(&app, "vera").await.is_empty());
}

#[tokio::test]
async fn invalid_fields_are_named_next_to_the_form_and_nothing_is_created() {
    let app = spawn_app().await;
    let otto = signed_in(&app, "otto", Role::Operator).await;
    let response = create_on_page(&otto, "Not A Slug", "viewer", "5x").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("a body");
    assert!(html.contains(r#"id="token-name-error""#), "{html}");
    assert!(html.contains(r#"id="token-expires-error""#), "{html}");
    assert!(stored_tokens(&app, "otto").await.is_empty());

    token_from_page(&otto, "ci", "viewer", "").await;
    let again = create_on_page(&otto, "ci", "viewer", "").await;
    assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = again.text().await.expect("a body");
    assert!(
        html.contains("you already have a token with this name"),
        "{html}"
    );
}

#[tokio::test]
async fn a_demoted_or_disabled_user_takes_their_tokens_down_with_them() {
    let app = spawn_app().await;
    let otto = signed_in(&app, "otto", Role::Operator).await;
    let token = token_from_page(&otto, "ci", "operator", "").await;
    let id = app
        .store
        .user_by_name("otto")
        .await
        .expect("store")
        .expect("otto")
        .id;
    let now = app.clock.now();

    let demote = UserUpdate {
        role: Some(Role::Viewer),
        ..UserUpdate::default()
    };
    app.store
        .update_user(id, &demote, now)
        .await
        .expect("store");
    let response = bearer_post(&app, &token, &format!("/jobs/{JOB}/pause")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!paused(&app).await);

    let disable = UserUpdate {
        disabled: Some(true),
        ..UserUpdate::default()
    };
    app.store
        .update_user(id, &disable, now)
        .await
        .expect("store");
    assert_refused_token(bearer_get(&app, &token, "/").await, "not valid").await;
}

#[tokio::test]
async fn last_use_is_recorded_at_most_once_a_minute() {
    let app = spawn_app().await;
    let otto = signed_in(&app, "otto", Role::Operator).await;
    let token = token_from_page(&otto, "ci", "viewer", "30d").await;
    assert_eq!(stored_tokens(&app, "otto").await[0].last_used_at, None);

    let first = app.clock.now();
    bearer_get(&app, &token, "/").await;
    assert_eq!(
        stored_tokens(&app, "otto").await[0].last_used_at,
        Some(first)
    );

    app.clock.advance(Duration::seconds(30));
    bearer_get(&app, &token, "/").await;
    assert_eq!(
        stored_tokens(&app, "otto").await[0].last_used_at,
        Some(first)
    );

    app.clock.advance(Duration::seconds(31));
    bearer_get(&app, &token, "/").await;
    assert_eq!(
        stored_tokens(&app, "otto").await[0].last_used_at,
        Some(first + Duration::seconds(61))
    );
    let list = otto.get("/tokens").await.text().await.expect("a body");
    assert!(!list.contains("<td>never</td>"), "{list}");
}

/// Every byte the app's database holds: on SQLite, the main file and the write-ahead log;
/// on PostgreSQL, every row of every table as text, and the sessions' binary data.
async fn stored_bytes(app: &TestApp) -> Vec<u8> {
    let mut bytes = Vec::new();
    match RawDb::open(app).await {
        RawDb::Sqlite(_) => {
            for file in ["batchboard.db", "batchboard.db-wal"] {
                if let Ok(content) = std::fs::read(app.dir.path().join(file)) {
                    bytes.extend(content);
                }
            }
        }
        db @ RawDb::Postgres(_) => {
            let tables = db
                .strings(
                    "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) \
                     FROM information_schema.tables \
                     WHERE table_schema IN ('public', 'tower_sessions')",
                )
                .await;
            for table in tables {
                let sql = format!("SELECT to_jsonb(t)::TEXT FROM {table} AS t");
                for row in db.strings(&sql).await {
                    bytes.extend(row.into_bytes());
                }
            }
            let RawDb::Postgres(pool) = &db else {
                unreachable!("matched above")
            };
            let sessions: Vec<Vec<u8>> =
                sqlx::query_scalar("SELECT data FROM tower_sessions.session")
                    .fetch_all(pool)
                    .await
                    .expect("the sessions are read");
            bytes.extend(sessions.into_iter().flatten());
        }
    }
    bytes
}

#[tokio::test]
async fn only_a_hash_of_the_token_reaches_the_database() {
    let app = spawn_app().await;
    let otto = signed_in(&app, "otto", Role::Operator).await;
    let token = token_from_page(&otto, "ci", "viewer", "").await;
    bearer_get(&app, &token, "/").await;

    let stored = &stored_tokens(&app, "otto").await[0];
    assert_eq!(stored.token_hash, batchboard::store::hash_token(&token));
    let bytes = stored_bytes(&app).await;
    assert!(!bytes.is_empty());
    let secret = token.as_bytes();
    assert!(
        !bytes.windows(secret.len()).any(|window| window == secret),
        "the token's text is in the database"
    );
    // Nor its random part alone.
    let random = &secret[3..];
    assert!(!bytes.windows(random.len()).any(|window| window == random));
}

#[tokio::test]
async fn a_bad_bearer_token_is_refused_even_with_a_session_and_csrf_token() {
    let app = spawn_app().await;
    let otto = signed_in(&app, "otto", Role::Operator).await;
    let csrf = otto.csrf_token().await;
    let response = otto
        .client
        .post(otto.url(&format!("/jobs/{JOB}/pause")))
        .bearer_auth("bb_0000")
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("answered");
    assert_refused_token(response, "not valid").await;
    assert!(!paused(&app).await);

    let response = otto
        .client
        .get(otto.url("/"))
        .bearer_auth("not-even-ours")
        .send()
        .await
        .expect("answered");
    assert_refused_token(response, "not valid").await;

    // Another scheme is no token at all: the session decides.
    let response = otto
        .client
        .get(otto.url("/"))
        .basic_auth("otto", Some(USER_PASSWORD))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    // Public routes stay public whatever they are sent.
    assert_eq!(
        bearer_get(&app, "bb_0000", "/healthz").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn token_create_and_revoke_on_the_command_line() {
    let app = spawn_app().await;
    app.create_user("otto", Role::Operator).await;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_batchboard"))
            .args(args)
            .env("BATCHBOARD_DATABASE_URL", &app.database_url)
            .env_remove("BATCHBOARD_CONFIG")
            .current_dir(app.dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("the binary runs")
    };

    let too_high = run(&["token", "create", "ci", "--user", "otto", "--role", "admin"]);
    assert!(!too_high.status.success());
    assert!(
        String::from_utf8_lossy(&too_high.stderr).contains("more than its user's role"),
        "{}",
        String::from_utf8_lossy(&too_high.stderr)
    );

    // The binary runs on the real clock, the app on its manual one: only a token without
    // expiry means the same to both.
    let created = run(&[
        "token", "create", "ci", "--user", "otto", "--role", "viewer",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let token = String::from_utf8(created.stdout).expect("text");
    let token = token.trim();
    assert!(token.starts_with("bb_"), "{token}");
    let stored = &stored_tokens(&app, "otto").await[0];
    assert_eq!(stored.role, Role::Viewer);
    assert_eq!(stored.expires_at, None);
    assert_eq!(bearer_get(&app, token, "/").await.status(), StatusCode::OK);

    let before = chrono::Utc::now();
    let dated = run(&[
        "token",
        "create",
        "dated",
        "--user",
        "otto",
        "--expires",
        "30d",
    ]);
    assert!(dated.status.success());
    let dated = stored_tokens(&app, "otto")
        .await
        .into_iter()
        .find(|token| token.name == "dated")
        .expect("the dated token");
    // The user's role, since none was asked for.
    assert_eq!(dated.role, Role::Operator);
    let expires = dated.expires_at.expect("an expiry");
    assert!(expires >= before + Duration::days(30));
    assert!(expires <= chrono::Utc::now() + Duration::days(30));

    let taken = run(&["token", "create", "ci", "--user", "otto"]);
    assert!(!taken.status.success());

    let revoked = run(&["token", "revoke", "ci", "--user", "otto"]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert_refused_token(bearer_get(&app, token, "/").await, "revoked").await;
    let again = run(&["token", "revoke", "ci", "--user", "otto"]);
    assert!(!again.status.success());
}

#[tokio::test]
async fn a_token_cannot_create_or_revoke_tokens() {
    let app = spawn_app().await;
    let admin = app.with_new_client();
    admin
        .login_ok("admin", crate::helpers::ADMIN_PASSWORD)
        .await;
    let viewer_token = token_from_page(&admin, "reader", "viewer", "").await;
    let id = stored_tokens(&app, "admin").await[0].id;

    // A viewer token of an admin must not mint itself an admin token.
    let response = app
        .with_new_client()
        .client
        .post(app.url("/tokens"))
        .bearer_auth(&viewer_token)
        .form(&[("name", "escalated"), ("role", "admin"), ("expires", "")])
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = bearer_post(&app, &viewer_token, &format!("/tokens/{id}/revoke")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let names: Vec<_> = stored_tokens(&app, "admin")
        .await
        .into_iter()
        .map(|token| token.name)
        .collect();
    assert_eq!(names, ["reader"]);
    // Not even reading the list: token management needs a signed-in session.
    let read = bearer_get(&app, &viewer_token, "/tokens").await;
    assert_eq!(read.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = read.json().await.expect("a JSON body");
    assert_eq!(body["error"], batchboard::web::auth::SESSION_REQUIRED);
}
