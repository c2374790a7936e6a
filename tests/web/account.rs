//! The forced password change: a generated first admin password, or one an admin set
//! for someone else, must be replaced before anything else; the operator's own
//! `BATCHBOARD_ADMIN_PASSWORD` and `user passwd` do not force it. And the generated
//! password is printed on stderr, away from the logs.

use std::io::{BufRead as _, Read as _};

use batchboard::store::Role;
use batchboard::users::{FirstAdmin, ensure_first_admin};
use batchboard::web::pages::account::CHANGE_FIRST;
use reqwest::StatusCode;

use crate::helpers::{
    ADMIN_PASSWORD, TestApp, USER_PASSWORD, assert_redirect_to, spawn_app, spawn_app_with,
    start_time, test_settings,
};

/// An app whose first admin got a generated password, and that password.
pub async fn spawn_app_with_generated_admin() -> (TestApp, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = test_settings(dir.path());
    settings.admin_password = None;
    // The same first start as `serve`, done first so the test learns the password
    // (`serve` prints it on stderr).
    let store = batchboard::store::connect(&settings.database_url)
        .await
        .expect("the database opens");
    let created = ensure_first_admin(&store, None, start_time())
        .await
        .expect("the admin is created");
    let Some(FirstAdmin::Generated(password)) = created else {
        panic!("a generated password, got {created:?}");
    };
    drop(store);
    (spawn_app_with(settings, dir).await, password)
}

async fn must_change(app: &TestApp, name: &str) -> bool {
    app.store
        .user_by_name(name)
        .await
        .expect("the store answers")
        .expect("the user exists")
        .must_change_password
}

#[tokio::test]
async fn a_generated_first_password_allows_nothing_but_changing_it() {
    let (app, generated) = spawn_app_with_generated_admin().await;
    assert!(must_change(&app, "admin").await);
    assert_redirect_to(&app.login("admin", &generated).await, "/account/password");

    assert_redirect_to(&app.get("/").await, "/account/password");
    assert_redirect_to(
        &app.get("/jobs/inventory-sync?tab=runs").await,
        "/account/password?next=/jobs/inventory-sync%3Ftab%3Druns",
    );
    assert_redirect_to(&app.get("/users").await, "/account/password?next=/users");
    let api = app.get("/api/v1/jobs").await;
    assert_eq!(api.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = api.json().await.expect("a JSON body");
    assert_eq!(body["error"], CHANGE_FIRST);
    let partial = app
        .client
        .get(app.url("/jobs/inventory-sync/summary"))
        .header("HX-Request", "true")
        .send()
        .await
        .expect("answered");
    assert_eq!(partial.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        partial.headers().get("hx-redirect").map(|v| v.as_bytes()),
        Some(&b"/account/password"[..])
    );
    // Signing out stays possible.
    assert_eq!(app.get("/logout").await.status(), StatusCode::OK);

    let page = app.get("/account/password").await;
    assert_eq!(page.status(), StatusCode::OK);
    let body = page.text().await.expect("a body");
    assert!(body.contains(r#"id="password-reason""#), "{body}");

    let changed = app
        .change_password(&generated, "the-admins-own-password")
        .await;
    assert_redirect_to(&changed, "/");
    assert!(!must_change(&app, "admin").await);
    assert_eq!(app.get("/").await.status(), StatusCode::OK);
    assert_eq!(app.get("/api/v1/jobs").await.status(), StatusCode::OK);
    let other = app.with_new_client();
    assert_eq!(
        other.login("admin", &generated).await.status(),
        StatusCode::UNAUTHORIZED
    );
    other.login_ok("admin", "the-admins-own-password").await;
}

#[tokio::test]
async fn a_refused_password_change_names_its_field_and_saves_nothing() {
    let (app, generated) = spawn_app_with_generated_admin().await;
    app.login("admin", &generated).await;
    let cases = [
        (
            "not-the-current-one",
            "a-good-new-password",
            "a-good-new-password",
            "current-error",
        ),
        (generated.as_str(), "short", "short", "new_password-error"),
        (
            generated.as_str(),
            generated.as_str(),
            generated.as_str(),
            "new_password-error",
        ),
        (
            generated.as_str(),
            "a-good-new-password",
            "a-different-password",
            "confirm-error",
        ),
    ];
    for (current, new, confirm, error_id) in cases {
        let page = app
            .get("/account/password")
            .await
            .text()
            .await
            .expect("a body");
        let token = crate::helpers::scrape_csrf(&page).expect("a token");
        let response = app
            .post_form(
                "/account/password",
                &[
                    ("csrf_token", token.as_str()),
                    ("current", current),
                    ("new_password", new),
                    ("confirm", confirm),
                ],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{error_id}"
        );
        let body = response.text().await.expect("a body");
        assert!(
            body.contains(&format!(r#"id="{error_id}""#)),
            "{error_id}: {body}"
        );
    }
    assert!(must_change(&app, "admin").await);
    assert_redirect_to(
        &app.with_new_client().login("admin", &generated).await,
        "/account/password",
    );
}

#[tokio::test]
async fn the_operators_admin_password_and_the_cli_never_force_a_change() {
    let app = spawn_app().await;
    assert!(!must_change(&app, "admin").await);
    app.login_ok("admin", ADMIN_PASSWORD).await;

    // A password the admin set in the console for ann must be replaced by ann...
    app.create_user("ann", Role::Viewer).await;
    let ann = app
        .store
        .user_by_name("ann")
        .await
        .expect("store")
        .expect("ann");
    let token = app.csrf_token().await;
    app.post_form(
        &format!("/users/{}/password", ann.id),
        &[("csrf_token", &token), ("password", "set-by-the-admin")],
    )
    .await;
    assert!(must_change(&app, "ann").await);
    let listed = app.get("/users").await.text().await.expect("a body");
    assert!(listed.contains("must choose a new password"), "{listed}");
    // ...unless the operator sets one with `batchboard user passwd`.
    batchboard::users::set_password(&app.store, "ann", USER_PASSWORD, start_time())
        .await
        .expect("the password is set");
    assert!(!must_change(&app, "ann").await);
    app.with_new_client().login_ok("ann", USER_PASSWORD).await;
}

#[tokio::test]
async fn serve_prints_a_generated_first_password_on_stderr_and_never_in_the_log() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("fresh.db").display()
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_batchboard"))
        .arg("serve")
        .env("BATCHBOARD_DATABASE_URL", &database_url)
        .env("BATCHBOARD_BIND", "127.0.0.1:0")
        .env_remove("BATCHBOARD_ADMIN_PASSWORD")
        .env_remove("BATCHBOARD_CONFIG")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let (found, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.split_once("with the password ").map(|(_, rest)| rest) {
                let _ = found.send(rest.trim().to_owned());
                return;
            }
        }
    });
    let password = lines.recv_timeout(std::time::Duration::from_secs(60));
    child.kill().expect("the server is stopped");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("stdout is read");
    child.wait().expect("the server ends");
    let password = password.expect("the password is announced on stderr");
    assert_eq!(password.len(), 20, "{password}");
    assert!(
        !stdout.contains(&password),
        "the log holds the password: {stdout}"
    );
}

#[tokio::test]
async fn parallel_guesses_at_the_current_password_get_a_few_checks_then_the_session_ends() {
    let app = spawn_app().await;
    app.login_ok("admin", ADMIN_PASSWORD).await;
    let max = batchboard::web::pages::account::MAX_WRONG_CURRENT;
    let page = app
        .get("/account/password")
        .await
        .text()
        .await
        .expect("a body");
    let token = crate::helpers::scrape_csrf(&page).expect("a token");
    // All at once, as whoever holds a stolen session cookie would send them.
    let guesses = (0..20).map(|n| {
        let form = [
            ("csrf_token", token.clone()),
            ("current", format!("wrong-guess-number-{n}")),
            ("new_password", "a-good-new-password".to_owned()),
            ("confirm", "a-good-new-password".to_owned()),
        ];
        let request = app.client.post(app.url("/account/password")).form(&form);
        async move { request.send().await.expect("answered").status() }
    });
    let answers = futures::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|status| **status == StatusCode::UNPROCESSABLE_ENTITY)
        .count();
    assert_eq!(checked, usize::try_from(max).expect("small"), "{answers:?}");
    let signed_out = answers
        .iter()
        .filter(|status| **status == StatusCode::SEE_OTHER)
        .count();
    assert_eq!(checked + signed_out, answers.len(), "{answers:?}");
    assert_redirect_to(&app.get("/").await, "/login?next=/");
    app.with_new_client()
        .login_ok("admin", ADMIN_PASSWORD)
        .await;
}
