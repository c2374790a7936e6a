//! The `command` handler: runs a program and turns its output into the run's log.
//!
//! The program is started directly, without a shell, so arguments need no quoting and
//! nothing is interpolated by accident. Write `program = "sh"`, `args = ["-c", "…"]`
//! when a shell is wanted. Every line on stdout becomes an `INFO` event and every line
//! on stderr a `WARN` event, each with a `stream` field.
//!
//! # Reporting counts
//!
//! A line on stdout of the form `BATCHBOARD checked=N updated=M` (either key may be
//! left out, in any order) adds to the run's counters, so that a script can tell the
//! console how much it did. `done=N total=M` on such a line reports progress.
//!
//! # Environment
//!
//! The program does not inherit Batchboard's environment, which holds its own secrets
//! (`BATCHBOARD_ADMIN_PASSWORD`, `BATCHBOARD_DATABASE_URL`, ...). It starts from an
//! empty one plus:
//!
//! - the variables of [`INHERITED_BY_DEFAULT`] that Batchboard has (`PATH`, `HOME`,
//!   `USER`, `LOGNAME`, `SHELL`, `LANG`, `LANGUAGE`, `LC_ALL`, `LC_CTYPE`,
//!   `LC_MESSAGES`, `TZ`, `TMPDIR`);
//! - the ones the job names in `inherit_env = ["HTTP_PROXY", ...]`, if set;
//! - the job's own `env`, which wins over both.
//!
//! No `BATCHBOARD_*` variable ever reaches the program: such names are refused in
//! `inherit_env` and `env` when the settings are read.
//!
//! # Secrets
//!
//! The values of `env` are the job's secrets: they are never shown in the console or
//! the API, and every occurrence of one in the program's output, in the logged
//! arguments, or in the run's error message is replaced by `[redacted]` (values under 4
//! characters excepted; see [`crate::secrets`]). A secret the program prints in pieces
//! or encoded (base64, URL-encoded) is not recognised.
//!
//! # Stopping
//!
//! The program runs in a process group of its own. A Ctrl-C at Batchboard's terminal
//! therefore does not reach it: Batchboard's own shutdown decides when it stops, after
//! the grace period. When the run is cancelled (or times out, or the grace period ends)
//! the whole group is killed, so a script and everything it started stop together.

use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tracing::{info, warn};

use crate::job::{JobContext, JobError, JobHandler, Outcome};

mod env;

pub use env::{INHERITED_BY_DEFAULT, VariableName};

/// Runs a program; see the [module documentation](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct CommandHandler;

/// The `command` handler's params.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandParams {
    /// The program to run: a path, or a name looked up in `PATH`.
    pub program: String,
    /// Its arguments, passed as they are.
    #[serde(default)]
    pub args: Vec<String>,
    /// The program's own environment variables. Their values are never shown and are
    /// masked in the run's output, so this is the place for tokens.
    #[serde(default)]
    pub env: BTreeMap<VariableName, String>,
    /// Variables of Batchboard's environment passed on, besides
    /// [`INHERITED_BY_DEFAULT`], when set there. `BATCHBOARD_*` names are refused.
    #[serde(default)]
    pub inherit_env: Vec<VariableName>,
    /// The working directory; Batchboard's own when absent.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Exit codes that count as success.
    #[serde(default = "default_ok_exit_codes")]
    pub ok_exit_codes: Vec<i32>,
}

fn default_ok_exit_codes() -> Vec<i32> {
    vec![0]
}

/// A line longer than this is cut, so a program writing without newlines cannot make
/// the log (or this process) grow without bound.
const MAX_LINE_BYTES: usize = 16 * 1024;

/// How long to keep reading output after the program exited: a child it left running
/// in the background may hold the pipes open forever.
const OUTPUT_DRAIN_GRACE: Duration = Duration::from_secs(2);

const COUNTS_PREFIX: &str = "BATCHBOARD ";

impl JobHandler for CommandHandler {
    type Params = CommandParams;

    async fn run(&self, params: CommandParams, ctx: JobContext) -> Result<Outcome, JobError> {
        let program = params.program.as_str();
        let env_keys: Vec<&str> = params.env.keys().map(VariableName::as_str).collect();
        let inherited = env::inherited(&params.inherit_env, |name| std::env::var_os(name));
        let inherited_keys: Vec<&str> = inherited.iter().map(|(name, _)| name.as_str()).collect();
        // Masked before formatting: `?` escapes quotes and backslashes, after which a
        // secret would no longer be found as written.
        let shown_args: Vec<_> = params
            .args
            .iter()
            .map(|arg| ctx.secrets().mask(arg))
            .collect();
        info!(
            program,
            args = ?shown_args,
            env_keys = ?env_keys,
            inherited = ?inherited_keys,
            cwd = params.cwd.as_deref(),
            "starting program"
        );

        let mut command = Command::new(program);
        command
            .args(&params.args)
            .env_clear()
            .envs(inherited)
            .envs(&params.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A run that is dropped (timeout, shutdown) must not leave the program behind.
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        if let Some(cwd) = &params.cwd {
            command.current_dir(cwd);
        }
        let mut child = command.spawn().map_err(|error| {
            let place = params
                .cwd
                .as_deref()
                .map(|cwd| format!(" in {cwd:?}"))
                .unwrap_or_default();
            JobError::fatal(format!("could not start {program:?}{place}: {error}"))
        })?;

        let last_stderr = Mutex::new(None);
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let output = async {
            tokio::join!(
                pump_lines(stdout, |line| on_stdout(line, &ctx)),
                pump_lines(stderr, |line| on_stderr(line, &last_stderr)),
            )
        };
        let status = tokio::select! {
            status = wait_and_drain(&mut child, output) => status,
            () = ctx.cancelled() => {
                // Kill and reap now rather than leaving it to the drop, so the process is
                // gone by the time the run is recorded as cancelled.
                kill_process_group(&child);
                if let Err(error) = child.kill().await {
                    warn!(%error, "could not kill the program");
                }
                info!(program, "program killed: the run was cancelled");
                return Err(JobError::Cancelled);
            }
        };
        let status = status
            .map_err(|error| JobError::retryable(format!("waiting for {program:?}: {error}")))?;

        let last_stderr = last_stderr
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        judge(program, status, &params.ok_exit_codes, last_stderr)
    }
}

/// Waits for the program to exit while `output` reads its pipes, then gives the pipes a
/// short grace to drain.
async fn wait_and_drain(
    child: &mut tokio::process::Child,
    output: impl Future<Output = ((), ())>,
) -> std::io::Result<ExitStatus> {
    let mut output = std::pin::pin!(output);
    let mut output_done = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            ((), ()) = &mut output, if !output_done => output_done = true,
        }
    };
    if !output_done
        && tokio::time::timeout(OUTPUT_DRAIN_GRACE, output)
            .await
            .is_err()
    {
        warn!("the program exited but something it started still holds its output open");
    }
    Ok(status)
}

/// Turns the exit status into the run's result.
fn judge(
    program: &str,
    status: ExitStatus,
    ok_exit_codes: &[i32],
    last_stderr: Option<String>,
) -> Result<Outcome, JobError> {
    let stderr_hint = last_stderr
        .map(|line| format!(": {line}"))
        .unwrap_or_default();
    match status.code() {
        Some(code) if ok_exit_codes.contains(&code) => {
            info!(program, code, "program exited");
            Ok(Outcome::summary(format!(
                "{program} exited with status {code}"
            )))
        }
        Some(code) => Err(JobError::retryable(format!(
            "{program} exited with status {code}{stderr_hint}"
        ))),
        None => Err(JobError::retryable(format!(
            "{program} was stopped by {}{stderr_hint}",
            describe_signal(status)
        ))),
    }
}

#[cfg(unix)]
fn describe_signal(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match status.signal() {
        Some(signal) => format!("signal {signal}"),
        None => "a signal".to_owned(),
    }
}

#[cfg(not(unix))]
fn describe_signal(_: ExitStatus) -> String {
    "a signal".to_owned()
}

fn on_stdout(line: &str, ctx: &JobContext) {
    info!(stream = "stdout", "{line}");
    if let Some(counts) = line.strip_prefix(COUNTS_PREFIX) {
        apply_counts(counts, ctx);
    }
}

fn on_stderr(line: &str, last: &Mutex<Option<String>>) {
    warn!(stream = "stderr", "{line}");
    if !line.trim().is_empty() {
        *last.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(line.to_owned());
    }
}

/// Applies the `key=value` pairs of a counts line; a malformed pair is reported and
/// skipped, since a typo in a script should not fail an otherwise good run.
fn apply_counts(pairs: &str, ctx: &JobContext) {
    let mut progress = (None, None);
    for pair in pairs.split_whitespace() {
        let parsed = pair
            .split_once('=')
            .and_then(|(key, value)| Some((key, value.parse::<u64>().ok()?)));
        match parsed {
            Some(("checked", n)) => ctx.add_checked(n),
            Some(("updated", n)) => ctx.add_updated(n),
            Some(("done", n)) => progress.0 = Some(n),
            Some(("total", n)) => progress.1 = Some(n),
            _ => warn!(
                pair,
                "ignored a counts pair: use checked=N, updated=N, done=N or total=N"
            ),
        }
    }
    match progress {
        (Some(done), Some(total)) => ctx.progress(done, total),
        (None, None) => {}
        _ => warn!("progress needs both done=N and total=N on the same line"),
    }
}

/// Calls `on_line` with each line read from `pipe` (lossily decoded, at most
/// [`MAX_LINE_BYTES`] long, without its line ending) until the pipe closes.
async fn pump_lines(pipe: Option<impl AsyncRead + Unpin>, mut on_line: impl FnMut(&str)) {
    let Some(pipe) = pipe else { return };
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        match read_capped_line(&mut reader, &mut line).await {
            Ok(false) => return,
            Ok(true) => {
                let text = String::from_utf8_lossy(&line);
                on_line(text.trim_end_matches(['\n', '\r']));
            }
            Err(error) => {
                warn!(%error, "stopped reading the program's output");
                return;
            }
        }
    }
}

/// Reads one line into `line` (cleared first), keeping at most [`MAX_LINE_BYTES`] of
/// it and discarding the rest up to the newline. Returns `false` at end of input.
async fn read_capped_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    let mut read_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(read_any);
        }
        read_any = true;
        let (chunk, found_newline) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..=at], true),
            None => (available, false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        reader.consume(used);
        if found_newline {
            return Ok(true);
        }
    }
}

/// Kills the program's process group: the program and whatever it started.
#[cfg(unix)]
fn kill_process_group(child: &tokio::process::Child) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) else {
        return; // already reaped
    };
    if let Err(error) = killpg(Pid::from_raw(pid), Signal::SIGKILL) {
        warn!(%error, "could not kill the program's process group");
    }
}

#[cfg(not(unix))]
fn kill_process_group(_child: &tokio::process::Child) {}

#[cfg(test)]
mod tests {
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
}
