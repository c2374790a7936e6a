//! A `command` job's child process, run by the real `batchboard run` with Batchboard's
//! own secrets in its environment: what reaches the child, and what its run records.

use std::path::Path;
use std::process::{Command, Output};

use batchboard::clock::ManualClock;
use batchboard::job::{JobContext, JobError, JobHandler, JobSettings, Outcome, Registry};
use batchboard::scheduler::{self, SchedulerParts};
use batchboard::store::writer::Writer;
use batchboard::store::{self, LogLine, RunRecord};

use crate::support::{config, t0};

/// The job's own secret, which the script prints every way it can.
const PGPASSWORD: &str = "pg-s3cr3t-value-77";
/// Batchboard's own secrets, set in the server process's environment.
const SERVER_SECRETS: [(&str, &str); 3] = [
    ("BATCHBOARD_ADMIN_PASSWORD", "admin-s3cr3t-value"),
    ("BATCHBOARD_METRICS_TOKEN", "metrics-s3cr3t-value"),
    ("BATCHBOARD_CONFIG_HINT", "config-s3cr3t-value"),
];

/// A job that dumps its environment, prints its secret on stdout and stderr, has the
/// secret among its arguments, and fails with the secret as its last stderr line.
fn settings() -> String {
    format!(
        r#"
[[jobs]]
name = "dump-env"
handler = "command"
every = "1h"
max_attempts = 1
[jobs.params]
program = "sh"
args = ["-c", "env; echo \"password is $PGPASSWORD\"; echo \"$PGPASSWORD\" >&2; exit 3", "{PGPASSWORD}"]
env = {{ PGPASSWORD = "{PGPASSWORD}" }}
inherit_env = ["SECRETS_TEST_PROXY"]
"#
    )
}

fn batchboard(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_batchboard"));
    command
        .args(args)
        .current_dir(dir)
        .env(
            "BATCHBOARD_DATABASE_URL",
            format!("sqlite://{}", dir.join("secrets.db").display()),
        )
        .env_remove("BATCHBOARD_CONFIG")
        .env("SECRETS_TEST_PROXY", "http://proxy.example:3128")
        .env("SECRETS_TEST_NOT_INHERITED", "left-behind")
        .env("RUST_LOG", "warn");
    for (name, value) in SERVER_SECRETS {
        command.env(name, value);
    }
    command.output().expect("the batchboard binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn recorded_run(dir: &Path) -> (RunRecord, Vec<LogLine>) {
    let store = store::connect(&format!("sqlite://{}", dir.join("secrets.db").display()))
        .await
        .expect("the database opens");
    let run = store
        .run(1)
        .await
        .expect("the run is read")
        .expect("the run was recorded");
    let lines = store
        .run_logs(1, None, 10_000)
        .await
        .expect("the log is read")
        .into_iter()
        .map(|(_, line)| line)
        .collect();
    (run, lines)
}

#[tokio::test]
async fn a_command_child_gets_no_batchboard_variable_and_its_secrets_are_masked_in_the_stored_run()
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("batchboard.toml"), settings()).expect("written");
    let run = batchboard(dir.path(), &["run", "dump-env"]);
    let stdout = text(&run.stdout);
    assert!(
        stdout.contains("run 1 of dump-env"),
        "{stdout}\n{}",
        text(&run.stderr)
    );

    let (record, lines) = recorded_run(dir.path()).await;
    let messages: Vec<&str> = lines.iter().map(|line| line.message.as_str()).collect();
    let everything = format!(
        "{lines:?} {:?} {:?} {stdout}",
        record.error_message, record.summary
    );

    // The child ran `env`: the allowlist and the named variable came through, the rest not.
    assert!(
        messages.iter().any(|m| m.starts_with("PATH=")),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"SECRETS_TEST_PROXY=http://proxy.example:3128"),
        "{messages:?}"
    );
    assert!(
        !everything.contains("SECRETS_TEST_NOT_INHERITED"),
        "{everything}"
    );
    assert!(!everything.contains("BATCHBOARD_"), "{everything}");
    for (_, value) in SERVER_SECRETS {
        assert!(!everything.contains(value), "{everything}");
    }

    // The job's own secret reached the child, and was masked wherever it was captured:
    // the `env` dump, the echoed lines, the logged arguments, the error message.
    assert!(!everything.contains(PGPASSWORD), "{everything}");
    assert!(messages.contains(&"PGPASSWORD=[redacted]"), "{messages:?}");
    assert!(messages.contains(&"password is [redacted]"), "{messages:?}");
    let start = lines
        .iter()
        .find(|line| line.message == "starting program")
        .expect("the start is logged");
    assert!(
        start.fields["args"]
            .as_str()
            .is_some_and(|args| args.contains("[redacted]")),
        "{start:?}"
    );
    assert_eq!(
        record.error_message.as_deref(),
        Some("sh exited with status 3: [redacted]")
    );
}

#[test]
fn inherit_env_naming_a_batchboard_variable_is_refused_when_the_settings_are_read() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = settings().replace("SECRETS_TEST_PROXY", "BATCHBOARD_ADMIN_PASSWORD");
    std::fs::write(dir.path().join("bad.toml"), settings).expect("written");
    let check = batchboard(dir.path(), &["check-config", "bad.toml"]);
    assert!(!check.status.success());
    let stderr = text(&check.stderr);
    assert!(
        stderr.contains("job \"dump-env\": params:")
            && stderr.contains("\"BATCHBOARD_ADMIN_PASSWORD\": variables named BATCHBOARD_*"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_jobs_listing_shows_no_secret() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("batchboard.toml"), settings()).expect("written");
    let run = batchboard(dir.path(), &["run", "dump-env"]);
    assert!(
        text(&run.stdout).contains("run 1 of dump-env"),
        "{}",
        text(&run.stderr)
    );
    let jobs = batchboard(dir.path(), &["jobs"]);
    assert!(jobs.status.success(), "{}", text(&jobs.stderr));
    let listing = text(&jobs.stdout);
    assert!(listing.contains("dump-env"), "{listing}");
    assert!(!listing.contains(PGPASSWORD), "{listing}");
}

/// The secret [`FetchesASecret`] comes by while it runs.
const FETCHED_SECRET: &str = "fetched-s3cr3t-9000";

/// A handler that obtains a secret at run time, registers it, then logs it and fails
/// with it in its error message.
struct FetchesASecret;

impl JobHandler for FetchesASecret {
    type Params = serde_json::Value;

    async fn run(&self, _: serde_json::Value, ctx: JobContext) -> Result<Outcome, JobError> {
        ctx.mask_secret(FETCHED_SECRET);
        tracing::info!(session = %FETCHED_SECRET, "signed in with {FETCHED_SECRET}");
        Err(JobError::fatal(format!("{FETCHED_SECRET} was refused")))
    }
}

#[tokio::test]
async fn a_secret_a_handler_registers_at_run_time_is_masked_in_the_stored_log_and_error() {
    batchboard::telemetry::init_for_tests();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .expect("the database opens");
    let job = JobSettings {
        name: "fetcher".into(),
        handler: "fetcher".into(),
        every: Some("1h".into()),
        ..JobSettings::default()
    };
    store
        .sync_jobs(&[job], t0())
        .await
        .expect("the job is saved");
    let (writer, writer_task) = Writer::start(store.clone());
    let parts = SchedulerParts {
        store: store.clone(),
        writer,
        registry: Registry::builder()
            .handler("fetcher", FetchesASecret)
            .build(),
        clock: ManualClock::new(t0()).shared(),
        config: config(),
        leading: None,
    };
    let run_id = scheduler::run_once(parts, "fetcher")
        .await
        .expect("the run is made");
    writer_task.await.expect("the writer finishes");

    let run = store.run(run_id).await.expect("read").expect("the run");
    assert_eq!(run.error_message.as_deref(), Some("[redacted] was refused"));
    let logs = store.run_logs(run_id, None, 100).await.expect("logs load");
    let logged = format!("{logs:?}");
    assert!(!logged.contains(FETCHED_SECRET), "{logged}");
    assert!(
        logs.iter()
            .any(|(_, line)| line.message == "signed in with [redacted]"),
        "{logged}"
    );
}
