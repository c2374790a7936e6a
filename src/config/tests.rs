use super::*;
use crate::job::{JobContext, JobError, JobHandler, Outcome, Registry};

const FULL: &str = r#"
database_url = "postgres://batch:secret@db.internal/batchboard"
bind = "0.0.0.0:9000"

[scheduler]
max_concurrent_runs = 32
shutdown_grace = "1m"
timeout_grace = "5s"
listen = false

[runlog]
max_lines_per_run = 500
redact = ["iban", " card "]

[[jobs]]
name = "inventory-sync"
handler = "demo_inventory"
every = "5m"
description = "Checks stock levels against the supplier"
timeout = "10m"
max_attempts = 5
backoff = "30s"
max_backoff = "1h"
concurrency = "forbid"
misfire = "run_once"
params = { supplier = "acme" }

[[jobs]]
name = "nightly-report"
handler = "demo_inventory"
cron = "0 3 * * *"
timezone = "Europe/Berlin"
params = { supplier = "globex" }
"#;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryParams {
    #[allow(dead_code, reason = "only decoded, to check the params")]
    supplier: String,
}

struct Inventory;

impl JobHandler for Inventory {
    type Params = InventoryParams;

    async fn run(&self, _: InventoryParams, _: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::default())
    }
}

fn registry() -> Registry {
    Registry::builder()
        .handler("demo_inventory", Inventory)
        .build()
}

fn path() -> &'static Path {
    Path::new("batchboard.toml")
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn problems(error: ConfigError) -> String {
    match error {
        ConfigError::Invalid(_) => error.to_string(),
        other => panic!("expected invalid values, got {other:?}"),
    }
}

#[test]
fn a_full_valid_file_is_read_with_every_value() {
    let settings = Settings::from_toml(FULL, path()).expect("a valid file");
    assert_eq!(
        settings.database_url,
        "postgres://batch:secret@db.internal/batchboard"
    );
    assert_eq!(settings.bind, "0.0.0.0:9000".parse().expect("an address"));
    assert_eq!(settings.admin_password, None);
    assert_eq!(
        settings.scheduler,
        SchedulerSettings {
            max_concurrent_runs: 32,
            shutdown_grace: Duration::from_secs(60),
            timeout_grace: Duration::from_secs(5),
            listen: false,
        }
    );
    assert_eq!(
        settings.runlog,
        RunLogSettings {
            max_lines_per_run: 500,
            redact: vec!["iban".to_owned(), "card".to_owned()],
        }
    );
    assert_eq!(settings.source.as_deref(), Some(path()));

    let specs = settings.job_specs(&registry()).expect("valid jobs");
    let names: Vec<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
    assert_eq!(names, ["inventory-sync", "nightly-report"]);
    assert_eq!(specs[0].retry.max_attempts, 5);
    assert_eq!(
        specs[1].schedule.describe(),
        "at 03:00 every day (Europe/Berlin)"
    );
}

#[test]
fn an_empty_file_gives_the_defaults() {
    let settings = Settings::from_toml("", path()).expect("valid");
    assert_eq!(
        settings,
        Settings {
            source: Some(path().to_path_buf()),
            ..Settings::default()
        }
    );
    assert_eq!(settings.database_url, "sqlite://batchboard.db?mode=rwc");
    assert_eq!(settings.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.scheduler.max_concurrent_runs, 256);
    assert_eq!(settings.scheduler.shutdown_grace, Duration::from_secs(30));
    assert_eq!(settings.scheduler.timeout_grace, Duration::from_secs(10));
    assert_eq!(settings.runlog.max_lines_per_run, 10_000);
}

#[test]
fn a_bad_job_field_is_named_with_the_file_and_the_job() {
    let text = r#"
[[jobs]]
name = "inventory-sync"
handler = "demo_inventory"
every = "500ms"
params = { supplier = "acme" }
"#;
    let settings = Settings::from_toml(text, path()).expect("the file itself is fine");
    let error = settings.job_specs(&registry()).expect_err("a bad interval");
    assert_eq!(
        problems(error),
        "batchboard.toml: job \"inventory-sync\": every: \"500ms\" is missing a number before 's'"
    );
}

#[test]
fn an_interval_below_a_second_is_refused_in_words() {
    let text = r#"
[[jobs]]
name = "inventory-sync"
handler = "demo_inventory"
every = "0s"
params = { supplier = "acme" }
"#;
    let settings = Settings::from_toml(text, path()).expect("the file itself is fine");
    let error = settings.job_specs(&registry()).expect_err("zero");
    assert_eq!(
        problems(error),
        "batchboard.toml: job \"inventory-sync\": every: an interval must be at least 1 second"
    );
}

#[test]
fn every_bad_job_is_reported_one_per_line() {
    let text = r#"
[[jobs]]
name = "Bad Name"
handler = "demo_inventory"
every = "5m"
params = { supplier = "acme" }

[[jobs]]
name = "unknown"
handler = "nope"
cron = "0 3 * * *"
timezone = "Europe/Berln"

[[jobs]]
name = "wrong-params"
handler = "demo_inventory"
every = "1h"
params = { vendor = "acme" }

[[jobs]]
name = "unknown"
handler = "demo_inventory"
every = "1h"
params = { supplier = "acme" }
"#;
    let settings = Settings::from_toml(text, path()).expect("the file itself is fine");
    let error = settings.job_specs(&registry()).expect_err("bad jobs");
    let text = problems(error);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(
        lines[0],
        "batchboard.toml: jobs[0]: name: a job name must start with a lowercase letter or a digit"
    );
    assert_eq!(
        lines[1],
        "batchboard.toml: job \"unknown\": timezone: unknown time zone \"Europe/Berln\": use an IANA name like Europe/Berlin"
    );
    assert_eq!(
        lines[2],
        "batchboard.toml: job \"unknown\": handler: unknown handler \"nope\": use one of demo_inventory"
    );
    assert!(
        lines[3].starts_with(
            "batchboard.toml: job \"wrong-params\": params: the params do not suit handler \"demo_inventory\": "
        ),
        "{}",
        lines[3]
    );
    assert_eq!(
        lines[4],
        "batchboard.toml: job \"unknown\": name: the name \"unknown\" is already used by jobs[1]"
    );
}

#[test]
fn missing_params_are_checked_against_the_handler() {
    let text = r#"
[[jobs]]
name = "no-params"
handler = "demo_inventory"
every = "1h"
"#;
    let settings = Settings::from_toml(text, path()).expect("the file itself is fine");
    let text = problems(
        settings
            .job_specs(&registry())
            .expect_err("missing supplier"),
    );
    assert!(text.contains("params: the params do not suit"), "{text}");
    assert!(text.contains("supplier"), "{text}");
}

#[test]
fn toml_syntax_errors_keep_the_line_and_column() {
    let error = Settings::from_toml("bind = \"127.0.0.1:80\"\ndatabase_url = \n", path())
        .expect_err("bad syntax");
    let ConfigError::Syntax { path: at, message } = &error else {
        panic!("expected a syntax error, got {error:?}");
    };
    assert_eq!(at, path());
    assert!(message.contains("line 2"), "{message}");
    assert!(
        error.to_string().starts_with("batchboard.toml: "),
        "{error}"
    );
}

#[test]
fn unknown_keys_are_refused() {
    for text in [
        "databse_url = \"sqlite://x.db\"",
        "[scheduler]\nmax_runs = 3",
        "[runlog]\nlines = 3",
        "[[jobs]]\nname = \"a\"\nhandler = \"b\"\nevery = \"5m\"\nretries = 3",
    ] {
        let error = Settings::from_toml(text, path()).expect_err("an unknown key");
        assert!(
            matches!(&error, ConfigError::Syntax { message, .. } if message.contains("unknown field")),
            "{text}: {error}"
        );
    }
}

#[test]
fn out_of_bounds_settings_are_all_reported() {
    let text = r#"
database_url = "mysql://db/x"
bind = "localhost"
admin_password = "hunter2"

[scheduler]
max_concurrent_runs = 0
shutdown_grace = "30x"
timeout_grace = ""

[runlog]
max_lines_per_run = 0
redact = ["iban", " "]
"#;
    let text = problems(Settings::from_toml(text, path()).expect_err("bad values"));
    let expected = [
        "batchboard.toml: database_url: \"mysql://db/x\" is not a supported database: use sqlite://FILE?mode=rwc or postgres://USER@HOST/DATABASE",
        "batchboard.toml: bind: \"localhost\" is not an address to listen on: write an IP address and a port, like 127.0.0.1:8080 or 0.0.0.0:8080",
        "batchboard.toml: admin_password: the admin password is never read from the settings file: set BATCHBOARD_ADMIN_PASSWORD instead",
        "batchboard.toml: scheduler.max_concurrent_runs: must be between 1 and 100000 (found 0)",
        "batchboard.toml: scheduler.shutdown_grace: \"30x\" has an unknown unit 'x': use s, m, h or d",
        "batchboard.toml: scheduler.timeout_grace: \"\" is empty: write a duration like 30s, 5m or 1h30m",
        "batchboard.toml: runlog.max_lines_per_run: must be between 1 and 10000000 (found 0)",
        "batchboard.toml: runlog.redact[1]: a field-name fragment to redact cannot be empty",
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn the_environment_wins_over_the_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("batchboard.toml");
    std::fs::write(
        &file,
        "database_url = \"sqlite://file.db\"\nbind = \"127.0.0.1:1111\"\n",
    )
    .expect("write the file");
    let env = |name: &str| match name {
        ENV_DATABASE_URL => Some("postgres://env/db".to_owned()),
        ENV_BIND => Some("0.0.0.0:2222".to_owned()),
        ENV_ADMIN_PASSWORD => Some("s3cret".to_owned()),
        _ => None,
    };
    let settings = Settings::load_with_env(Some(&file), &env).expect("valid");
    assert_eq!(settings.database_url, "postgres://env/db");
    assert_eq!(settings.bind.to_string(), "0.0.0.0:2222");
    assert_eq!(settings.admin_password.as_deref(), Some("s3cret"));
    assert_eq!(settings.source.as_deref(), Some(file.as_path()));

    let settings = Settings::load_with_env(Some(&file), &no_env).expect("valid");
    assert_eq!(settings.database_url, "sqlite://file.db");
    assert_eq!(settings.bind.to_string(), "127.0.0.1:1111");
    assert_eq!(settings.admin_password, None);
}

#[test]
fn an_overridden_file_value_is_not_checked_but_a_bad_environment_value_is() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("batchboard.toml");
    std::fs::write(&file, "bind = \"nowhere\"\n").expect("write the file");
    let good = |name: &str| (name == ENV_BIND).then(|| "127.0.0.1:3000".to_owned());
    assert!(Settings::load_with_env(Some(&file), &good).is_ok());

    let bad = |name: &str| (name == ENV_BIND).then(|| "eight thousand".to_owned());
    let text = problems(Settings::load_with_env(None, &bad).expect_err("bad bind"));
    assert!(
        text.starts_with("BATCHBOARD_BIND: \"eight thousand\" is not an address"),
        "{text}"
    );
}

#[test]
fn an_explicit_path_must_exist() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let missing = dir.path().join("missing.toml");
    let error = Settings::load_with_env(Some(&missing), &no_env).expect_err("missing");
    assert!(matches!(&error, ConfigError::NotFound { path } if path == &missing));
    assert_eq!(
        error.to_string(),
        format!("{}: no such settings file", missing.display())
    );

    let by_env = |name: &str| (name == ENV_CONFIG).then(|| missing.display().to_string());
    let error = Settings::load_with_env(None, &by_env).expect_err("missing");
    assert!(matches!(error, ConfigError::NotFound { .. }));
}

#[test]
fn the_config_variable_names_the_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("elsewhere.toml");
    std::fs::write(&file, "bind = \"127.0.0.1:4444\"\n").expect("write the file");
    let env = |name: &str| (name == ENV_CONFIG).then(|| file.display().to_string());
    let settings = Settings::load_with_env(None, &env).expect("valid");
    assert_eq!(settings.bind.to_string(), "127.0.0.1:4444");
    assert_eq!(settings.source.as_deref(), Some(file.as_path()));
}

#[test]
fn the_default_file_is_optional() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let default_file = dir.path().join("batchboard.toml");
    let settings = Settings::load_from(None, &no_env, &default_file).expect("no file is fine");
    assert_eq!(settings, Settings::default());
    assert_eq!(settings.source, None);

    std::fs::write(&default_file, "[scheduler]\nmax_concurrent_runs = 8\n")
        .expect("write the file");
    let settings = Settings::load_from(None, &no_env, &default_file).expect("valid");
    assert_eq!(settings.scheduler.max_concurrent_runs, 8);
    assert_eq!(settings.source.as_deref(), Some(default_file.as_path()));
}

#[test]
fn empty_environment_values_count_as_unset() {
    let env = |name: &str| (name == ENV_ADMIN_PASSWORD || name == ENV_BIND).then(String::new);
    let settings = Settings::load_with_env(None, &env).expect("valid");
    assert_eq!(settings.admin_password, None);
    assert_eq!(settings.bind, DEFAULT_BIND);
}

#[test]
fn debug_output_hides_the_passwords() {
    let settings = Settings {
        admin_password: Some("hunter2".to_owned()),
        database_url: "postgres://batch:secret@db.internal:5432/batchboard".to_owned(),
        ..Settings::default()
    };
    let shown = format!("{settings:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("secret"), "{shown}");
    assert!(
        shown.contains("postgres://batch:***@db.internal:5432/batchboard"),
        "{shown}"
    );
    assert!(shown.contains("<hidden>"), "{shown}");
}

#[test]
fn the_metrics_table_sets_a_token_and_a_separate_address() {
    let text = "[metrics]\ntoken = \"a-long-metrics-token\"\nbind = \"127.0.0.1:9464\"\n";
    let settings = Settings::from_toml(text, Path::new("batchboard.toml")).expect("valid");
    assert_eq!(
        settings.metrics.token.as_deref(),
        Some("a-long-metrics-token")
    );
    assert_eq!(
        settings.metrics.bind,
        Some("127.0.0.1:9464".parse().expect("an address"))
    );
    let shown = format!("{settings:?}");
    assert!(!shown.contains("a-long-metrics-token"), "{shown}");
}

#[test]
fn the_metrics_token_from_the_environment_wins_over_the_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("batchboard.toml");
    std::fs::write(&path, "[metrics]\ntoken = \"the-token-in-the-file\"\n").expect("written");
    let env = |name: &str| (name == ENV_METRICS_TOKEN).then(|| "the-token-from-the-env".to_owned());
    let settings = Settings::load_with_env(Some(&path), &env).expect("valid");
    assert_eq!(
        settings.metrics.token.as_deref(),
        Some("the-token-from-the-env")
    );
}

#[test]
fn a_short_metrics_token_and_a_bad_metrics_address_are_both_reported() {
    let text = "[metrics]\ntoken = \"short\"\nbind = \"nowhere\"\n";
    let error = Settings::from_toml(text, Path::new("batchboard.toml")).expect_err("invalid");
    let message = error.to_string();
    assert!(
        message.contains("batchboard.toml: metrics.token: the metrics token must be at least 16"),
        "{message}"
    );
    assert!(
        message.contains("batchboard.toml: metrics.bind: \"nowhere\" is not an address"),
        "{message}"
    );
}

#[test]
fn without_a_metrics_table_metrics_need_a_session() {
    let settings = Settings::from_toml("", Path::new("batchboard.toml")).expect("valid");
    assert_eq!(settings.metrics, MetricsSettings::default());
}

#[test]
fn the_web_table_sets_cookies_hsts_and_trusted_proxies() {
    let text = "[web]\nsecure_cookies = true\nhsts = \"365d\"\ntrusted_proxies = [\"10.0.0.0/8\", \"192.168.1.10\", \"fd00::/8\"]\n";
    let settings = Settings::from_toml(text, path()).expect("valid");
    assert!(settings.web.secure_cookies);
    assert_eq!(settings.web.hsts, Some(Duration::from_secs(365 * 86_400)));
    let proxies: Vec<String> = settings
        .web
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.10/32", "fd00::/8"]);
    assert_eq!(Settings::default().web, WebSettings::default());
    assert!(!WebSettings::default().secure_cookies);
}

#[test]
fn bad_web_values_are_each_named() {
    let text =
        "[web]\nhsts = \"a year\"\ntrusted_proxies = [\"10.0.0.0/33\", \"proxy.internal\"]\n";
    let text = problems(Settings::from_toml(text, path()).expect_err("invalid"));
    assert!(text.contains("batchboard.toml: web.hsts: "), "{text}");
    assert!(
        text.contains("web.trusted_proxies[0]: \"10.0.0.0/33\" is not an address or network"),
        "{text}"
    );
    assert!(text.contains("web.trusted_proxies[1]: "), "{text}");
}

#[test]
fn secure_cookies_come_from_the_environment_too() {
    let on = |name: &str| (name == ENV_SECURE_COOKIES).then(|| "true".to_owned());
    let settings = Settings::load_with_env(None, &on).expect("valid");
    assert!(settings.web.secure_cookies);
    let bad = |name: &str| (name == ENV_SECURE_COOKIES).then(|| "maybe".to_owned());
    let text = problems(Settings::load_with_env(None, &bad).expect_err("invalid"));
    assert!(
        text.starts_with("BATCHBOARD_SECURE_COOKIES: \"maybe\" is not a yes or no"),
        "{text}"
    );
}

#[test]
fn grace_periods_longer_than_their_bound_are_refused_not_overflowed() {
    let text = r#"
[scheduler]
shutdown_grace = "100000d"
timeout_grace = "2h"
"#;
    let text = problems(Settings::from_toml(text, path()).expect_err("too long"));
    let expected = [
        "batchboard.toml: scheduler.shutdown_grace: \"100000d\" is too long: at most 1d",
        "batchboard.toml: scheduler.timeout_grace: \"2h\" is too long: at most 1h",
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), expected);
    let bounds = "[scheduler]\nshutdown_grace = \"1d\"\ntimeout_grace = \"1h\"\n";
    let settings = Settings::from_toml(bounds, path()).expect("the bounds themselves are fine");
    assert_eq!(
        settings.scheduler.shutdown_grace,
        Duration::from_secs(86_400)
    );
}
