//! The `command` handler against real child processes.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::job::Progress;
use crate::jobs::test_support::{collect_events, context, snapshot};

fn sh(script: &str) -> CommandParams {
    params(serde_json::json!({ "program": "sh", "args": ["-c", script] }))
}

fn params(json: serde_json::Value) -> CommandParams {
    serde_json::from_value(json).expect("valid params")
}

#[tokio::test]
async fn a_successful_script_reports_its_counts_through_the_protocol_lines() {
    let ctx = context(CancellationToken::new());
    let script = "echo working; echo 'BATCHBOARD checked=10 updated=2'; \
                  echo 'BATCHBOARD checked=5 done=15 total=20'";
    let outcome = CommandHandler
        .run(sh(script), ctx.clone())
        .await
        .expect("the script succeeds");
    assert_eq!(outcome.summary.as_deref(), Some("sh exited with status 0"));
    assert_eq!(
        ctx.counters(),
        Progress {
            checked: 15,
            updated: 2,
            done: 15,
            total: Some(20)
        }
    );
}

#[tokio::test]
async fn stdout_and_stderr_lines_become_info_and_warn_events_with_their_stream() {
    let (events, _guard) = collect_events();
    let ctx = context(CancellationToken::new());
    CommandHandler
        .run(sh("echo out-line; echo err-line >&2"), ctx)
        .await
        .expect("the script succeeds");
    let events = snapshot(&events);
    let out = events
        .iter()
        .find(|e| e.message == "out-line")
        .expect("stdout line logged");
    assert_eq!(out.level, tracing::Level::INFO);
    assert_eq!(out.fields["stream"], "stdout");
    let err = events
        .iter()
        .find(|e| e.message == "err-line")
        .expect("stderr line logged");
    assert_eq!(err.level, tracing::Level::WARN);
    assert_eq!(err.fields["stream"], "stderr");
}

#[tokio::test]
async fn environment_values_reach_the_program_but_never_the_log() {
    let (events, _guard) = collect_events();
    let ctx = context(CancellationToken::new());
    let params = params(serde_json::json!({
        "program": "sh",
        // The length proves the program got the value without printing it.
        "args": ["-c", "echo \"length ${#API_TOKEN}\""],
        "env": { "API_TOKEN": "s3cret-value" },
    }));
    CommandHandler.run(params, ctx).await.expect("succeeds");
    let events = snapshot(&events);
    assert!(
        events.iter().any(|e| e.message == "length 12"),
        "{events:?}"
    );
    let logged = format!("{events:?}");
    assert!(logged.contains("API_TOKEN"), "{logged}");
    assert!(!logged.contains("s3cret-value"), "{logged}");
}

#[tokio::test]
async fn the_program_sees_only_the_allowlist_the_named_extras_and_its_own_env() {
    let (events, _guard) = collect_events();
    // Cargo sets these for every test process; Batchboard's environment stands in.
    let params = params(serde_json::json!({
        "program": "sh",
        "args": ["-c", "env"],
        "env": { "OWN_VARIABLE": "own-value" },
        "inherit_env": ["CARGO_PKG_NAME"],
    }));
    CommandHandler
        .run(params, context(CancellationToken::new()))
        .await
        .expect("succeeds");
    let names: Vec<String> = snapshot(&events)
        .iter()
        .filter(|e| e.fields.get("stream").map(String::as_str) == Some("stdout"))
        .filter_map(|e| e.message.split_once('=').map(|(name, _)| name.to_owned()))
        .collect();
    assert!(names.contains(&"PATH".to_owned()), "{names:?}");
    assert!(names.contains(&"OWN_VARIABLE".to_owned()), "{names:?}");
    assert!(names.contains(&"CARGO_PKG_NAME".to_owned()), "{names:?}");
    assert!(
        !names.contains(&"CARGO_MANIFEST_DIR".to_owned()),
        "{names:?}"
    );
    // What `sh` adds itself aside, nothing else came through.
    for name in &names {
        assert!(
            INHERITED_BY_DEFAULT.contains(&name.as_str())
                || [
                    "OWN_VARIABLE",
                    "CARGO_PKG_NAME",
                    "PWD",
                    "SHLVL",
                    "_",
                    "OLDPWD"
                ]
                .contains(&name.as_str()),
            "{name} reached the program: {names:?}"
        );
    }
}

#[test]
fn batchboard_variables_are_refused_in_inherit_env_and_env() {
    for json in [
        serde_json::json!({ "program": "true", "inherit_env": ["BATCHBOARD_ADMIN_PASSWORD"] }),
        serde_json::json!({ "program": "true", "env": { "BATCHBOARD_X": "1" } }),
    ] {
        let error = serde_json::from_value::<CommandParams>(json)
            .expect_err("refused")
            .to_string();
        assert!(error.contains("never reach a job"), "{error}");
    }
    let error = serde_json::from_value::<CommandParams>(
        serde_json::json!({ "program": "true", "inherit_env": ["NOT VALID"] }),
    )
    .expect_err("refused")
    .to_string();
    assert!(
        error.contains("not an environment variable name"),
        "{error}"
    );
}

#[tokio::test]
async fn logged_arguments_are_masked_with_the_runs_secrets() {
    let (events, _guard) = collect_events();
    let ctx = context(CancellationToken::new());
    ctx.mask_secret("arg-s3cret");
    CommandHandler
        .run(sh("true # --password=arg-s3cret"), ctx)
        .await
        .expect("succeeds");
    let logged = format!("{:?}", snapshot(&events));
    assert!(logged.contains("--password=[redacted]"), "{logged}");
    assert!(!logged.contains("arg-s3cret"), "{logged}");
}

#[tokio::test]
async fn a_non_zero_exit_is_retryable_and_names_the_status_and_last_stderr_line() {
    let ctx = context(CancellationToken::new());
    let error = CommandHandler
        .run(sh("echo first >&2; echo 'disk full' >&2; exit 3"), ctx)
        .await
        .expect_err("the script fails");
    assert!(matches!(error, JobError::Retryable(_)), "{error:?}");
    assert_eq!(error.to_string(), "sh exited with status 3: disk full");
}

#[tokio::test]
async fn listed_exit_codes_count_as_success() {
    let ctx = context(CancellationToken::new());
    let mut params = sh("exit 1");
    params.ok_exit_codes = vec![0, 1];
    CommandHandler
        .run(params, ctx)
        .await
        .expect("exit code 1 is ok here");
}

#[tokio::test]
async fn a_program_that_does_not_exist_is_a_fatal_error_naming_it() {
    let ctx = context(CancellationToken::new());
    let params = params(serde_json::json!({ "program": "no-such-program-batchboard" }));
    let error = CommandHandler
        .run(params, ctx)
        .await
        .expect_err("nothing to start");
    assert!(matches!(error, JobError::Fatal(_)), "{error:?}");
    assert!(
        error.to_string().contains("no-such-program-batchboard"),
        "{error}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn cancelling_the_run_kills_what_the_program_started_too() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pid_file = dir.path().join("grandchild.pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
    let cancel = CancellationToken::new();
    let ctx = context(cancel.clone());
    let run = tokio::spawn(async move { CommandHandler.run(sh(&script), ctx).await });
    let deadline = Instant::now() + Duration::from_secs(5);
    let grandchild = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "the script never started its child"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("stops")
        .expect("joins");
    assert!(matches!(result, Err(JobError::Cancelled)), "{result:?}");
    // The orphaned `sleep` is reaped by init a moment after the kill.
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(grandchild) {
        assert!(
            Instant::now() < deadline,
            "the script's child {grandchild} survived the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cancelling_the_run_kills_the_program_at_once() {
    let cancel = CancellationToken::new();
    let ctx = context(cancel.clone());
    let params = params(serde_json::json!({ "program": "sleep", "args": ["30"] }));
    let started = Instant::now();
    let run = tokio::spawn(async move { CommandHandler.run(params, ctx).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run stops quickly")
        .expect("the run did not panic");
    assert!(matches!(result, Err(JobError::Cancelled)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_very_long_line_is_cut_and_invalid_utf8_is_replaced() {
    let (events, _guard) = collect_events();
    let ctx = context(CancellationToken::new());
    let script = "head -c 100000 /dev/zero | tr '\\0' x; echo; printf 'bad \\377 byte\\n'";
    CommandHandler
        .run(sh(script), ctx)
        .await
        .expect("the script succeeds");
    let events = snapshot(&events);
    let stdout: Vec<&str> = events
        .iter()
        .filter(|e| e.fields.get("stream").map(String::as_str) == Some("stdout"))
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(stdout.len(), 2, "{stdout:?}");
    assert_eq!(stdout[0].len(), MAX_LINE_BYTES);
    assert_eq!(stdout[1], "bad \u{fffd} byte");
}

#[test]
fn unknown_params_are_refused() {
    let result = serde_json::from_value::<CommandParams>(serde_json::json!({
        "program": "true",
        "shell": true,
    }));
    assert!(result.is_err());
}
