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

/// Runs a program: no shell, a clean environment, output into the run log, counts from
/// `BATCHBOARD checked=N updated=M` lines (the README's `command` section says more).
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
mod tests;
