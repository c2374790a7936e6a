//! The `batchboard` command line, run as a real process.

use std::path::Path;
use std::process::{Command, Output};

fn batchboard(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_batchboard"))
        .args(args)
        .current_dir(dir)
        .env(
            "BATCHBOARD_DATABASE_URL",
            format!("sqlite://{}", dir.join("cli.db").display()),
        )
        .env_remove("BATCHBOARD_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .expect("the batchboard binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const VALID: &str = r#"
[[jobs]]
name = "say-hello"
handler = "command"
every = "1h"
params = { program = "sh", args = ["-c", "echo hello; echo 'BATCHBOARD checked=4 updated=1'"] }
"#;

const INVALID: &str = r#"
[[jobs]]
name = "too-fast"
handler = "command"
every = "500ms"
params = { program = "true" }

[[jobs]]
name = "mystery"
handler = "no_such_handler"
every = "1m"
"#;

#[test]
fn an_invalid_settings_file_is_refused_naming_file_job_and_field_without_touching_the_database() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = dir.path().join("bad.toml");
    std::fs::write(&settings, INVALID).expect("written");
    let settings = settings.to_str().expect("a UTF-8 path");
    for args in [
        vec!["check-config", settings],
        vec!["--config", settings, "serve"],
    ] {
        let output = batchboard(dir.path(), &args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("bad.toml: job \"too-fast\": every:"),
            "{stderr}"
        );
        assert!(stderr.contains("job \"mystery\": handler:"), "{stderr}");
        assert!(
            !dir.path().join("cli.db").exists(),
            "{args:?} created the database"
        );
    }
}

const CYCLE: &str = r#"
[[jobs]]
name = "extract"
handler = "command"
after = ["load"]
params = { program = "true" }

[[jobs]]
name = "transform"
handler = "command"
after = ["extract"]
params = { program = "true" }

[[jobs]]
name = "load"
handler = "command"
after = ["transform", "publish"]
params = { program = "true" }
"#;

#[test]
fn a_chain_that_loops_or_names_no_job_is_refused_at_load_naming_the_cycle() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = dir.path().join("cycle.toml");
    std::fs::write(&settings, CYCLE).expect("written");
    let settings = settings.to_str().expect("a UTF-8 path");
    for args in [
        vec!["check-config", settings],
        vec!["--config", settings, "serve"],
    ] {
        let output = batchboard(dir.path(), &args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("job \"load\": after: \"publish\" is not a job"),
            "{stderr}"
        );
        assert!(
            stderr.contains(
                "job \"transform\": after: the chain extract → transform → load → extract leads back to where it started"
            ),
            "{stderr}"
        );
        assert!(
            !dir.path().join("cli.db").exists(),
            "{args:?} created the database"
        );
    }
}

#[test]
fn check_config_accepts_a_valid_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("good.toml"), VALID).expect("written");
    let output = batchboard(dir.path(), &["check-config", "good.toml"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("1 jobs, all valid"),
        "{}",
        text(&output.stdout)
    );
    assert!(!dir.path().join("cli.db").exists());
}

#[test]
fn run_records_one_run_and_jobs_lists_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("batchboard.toml"), VALID).expect("written");
    let migrate = batchboard(dir.path(), &["migrate"]);
    assert!(migrate.status.success(), "{}", text(&migrate.stderr));

    let run = batchboard(dir.path(), &["run", "say-hello"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let stdout = text(&run.stdout);
    assert!(stdout.contains("run 1 of say-hello: succeeded"), "{stdout}");
    assert!(stdout.contains("4 checked, 1 updated"), "{stdout}");

    let jobs = batchboard(dir.path(), &["jobs"]);
    assert!(jobs.status.success(), "{}", text(&jobs.stderr));
    let listing = text(&jobs.stdout);
    let line = listing
        .lines()
        .find(|line| line.starts_with("say-hello"))
        .expect("the job is listed");
    assert!(
        line.contains("every 1h") && line.contains("#1 succeeded"),
        "{listing}"
    );

    let unknown = batchboard(dir.path(), &["run", "nope"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("no job named \"nope\""),
        "{}",
        text(&unknown.stderr)
    );
}

const STATES: &str = r#"
[[jobs]]
name = "say-hello"
handler = "command"
every = "1h"
params = { program = "true" }

[[jobs]]
name = "switched-off"
handler = "command"
every = "1h"
enabled = false
params = { program = "true" }

[[jobs]]
name = "gives-up"
handler = "command"
every = "1h"
max_attempts = 1
params = { program = "false" }
"#;

#[test]
fn jobs_lists_each_jobs_state_as_the_console_and_the_api_name_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("batchboard.toml"), STATES).expect("written");
    let run = batchboard(dir.path(), &["run", "gives-up"]);
    assert!(!run.status.success(), "{}", text(&run.stdout));
    assert!(
        text(&run.stdout).contains("run 1 of gives-up: dead"),
        "{}",
        text(&run.stdout)
    );

    let jobs = batchboard(dir.path(), &["jobs"]);
    assert!(jobs.status.success(), "{}", text(&jobs.stderr));
    let listing = text(&jobs.stdout);
    let state_of = |job: &str| {
        listing
            .lines()
            .find(|line| line.starts_with(&format!("{job} ")))
            .and_then(|line| line.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    assert_eq!(
        state_of("say-hello").as_deref(),
        Some("enabled"),
        "{listing}"
    );
    assert_eq!(
        state_of("switched-off").as_deref(),
        Some("disabled"),
        "{listing}"
    );
    assert_eq!(
        state_of("gives-up").as_deref(),
        Some("attention"),
        "{listing}"
    );
}

#[test]
fn the_demo_chains_commands_succeed() {
    // With no settings file the demo jobs are used; their shell scripts must work, or a
    // new user's first chain shows a failure.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let migrate = batchboard(dir.path(), &["migrate"]);
    assert!(migrate.status.success(), "{}", text(&migrate.stderr));
    for job in ["report-extract", "report-build", "report-publish"] {
        let run = batchboard(dir.path(), &["run", job]);
        let stdout = text(&run.stdout);
        assert!(
            run.status.success(),
            "{job}: {stdout} {}",
            text(&run.stderr)
        );
        assert!(stdout.contains(&format!("of {job}: succeeded")), "{stdout}");
    }
    let jobs = text(&batchboard(dir.path(), &["jobs"]).stdout);
    let build = jobs
        .lines()
        .find(|line| line.starts_with("report-build"))
        .expect("listed");
    assert!(build.contains("after report-extract"), "{jobs}");
}
