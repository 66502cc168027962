//! Runs a connector's CLI (`run.command` from its manifest plus the Singer flags) in its
//! implementation folder, with the config, catalog and state written to a private temp folder,
//! a wall-clock limit (the whole process group is killed on expiry and the run marked as hung),
//! and stdout / stderr captured line by line.

use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use super::manifest::{InputError, LoadedImpl};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Lines kept per stream; a connector that prints more is cut (and the run says so).
const MAX_LINES: usize = 50_000;
/// Characters kept per line.
const MAX_LINE_CHARS: usize = 64 * 1024;

/// Which CLI form to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// `--about`
    About,
    /// `--config C --discover`
    Discover,
    /// `--config C [--catalog K] [--state S]`
    Sync,
}

#[derive(Debug, Clone)]
pub struct RunRequest {
    pub label: String,
    pub mode: Mode,
    pub config: Option<Value>,
    pub catalog: Option<Value>,
    pub state: Option<Value>,
    pub wall_limit: Duration,
}

/// What one process run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub label: String,
    /// The command line, with the temp file paths shortened to their names.
    pub argv: Vec<String>,
    pub exit_code: Option<i32>,
    /// Killed at the wall-clock limit.
    pub hung: bool,
    pub spawn_error: Option<String>,
    pub duration_seconds: f64,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    /// Output past the line caps was dropped.
    pub truncated: bool,
}

impl RunOutcome {
    /// Ended by itself with exit code 0.
    pub fn succeeded(&self) -> bool {
        !self.hung && self.exit_code == Some(0)
    }

    /// Ended by itself with a non-zero exit code.
    pub fn failed_cleanly(&self) -> bool {
        !self.hung && matches!(self.exit_code, Some(code) if code != 0)
    }

    /// `exit 1`, `hung (killed after 10 s)`, `could not start: ...`.
    pub fn ending(&self) -> String {
        if let Some(err) = &self.spawn_error {
            return format!("could not start: {err}");
        }
        if self.hung {
            return format!("hung: killed after {:.1} s", self.duration_seconds);
        }
        match self.exit_code {
            Some(code) => format!("exit {code} after {:.2} s", self.duration_seconds),
            None => format!("killed by a signal after {:.2} s", self.duration_seconds),
        }
    }
}

/// Runs `command` (from the manifest) in `dir` with the flags of `req.mode`.
pub async fn run_connector(dir: &Path, command: &[String], req: RunRequest) -> RunOutcome {
    let started = Instant::now();
    let mut outcome = RunOutcome {
        label: req.label.clone(),
        argv: Vec::new(),
        exit_code: None,
        hung: false,
        spawn_error: None,
        duration_seconds: 0.0,
        stdout: Vec::new(),
        stderr: Vec::new(),
        truncated: false,
    };
    let tmp = match tempfile::Builder::new().prefix("spectest-run-").tempdir() {
        Ok(t) => t,
        Err(e) => {
            outcome.spawn_error = Some(format!("cannot create a temp folder: {e}"));
            return outcome;
        }
    };
    let mut flags: Vec<String> = Vec::new();
    let mut shown: Vec<String> = Vec::new();
    let mut write = |flag: &str, name: &str, value: &Option<Value>| -> Result<(), String> {
        if let Some(v) = value {
            let path = tmp.path().join(name);
            let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
            std::fs::write(&path, text).map_err(|e| format!("cannot write {name}: {e}"))?;
            flags.push(flag.to_string());
            flags.push(path.display().to_string());
            shown.push(flag.to_string());
            shown.push(name.to_string());
        }
        Ok(())
    };
    let written = match req.mode {
        Mode::About => Ok(()),
        Mode::Discover | Mode::Sync => write("--config", "config.json", &req.config)
            .and_then(|_| {
                if req.mode == Mode::Sync {
                    write("--catalog", "catalog.json", &req.catalog)
                } else {
                    Ok(())
                }
            })
            .and_then(|_| {
                if req.mode == Mode::Sync {
                    write("--state", "state.json", &req.state)
                } else {
                    Ok(())
                }
            }),
    };
    match req.mode {
        Mode::About => {
            flags.push("--about".into());
            shown.push("--about".into());
        }
        Mode::Discover => {
            flags.push("--discover".into());
            shown.push("--discover".into());
        }
        Mode::Sync => {}
    }
    outcome.argv = command.iter().cloned().chain(shown).collect();
    if let Err(e) = written {
        outcome.spawn_error = Some(e);
        return outcome;
    }

    // A relative program with a slash is relative to the implementation folder.
    let program = {
        let p = Path::new(&command[0]);
        if p.is_relative() && command[0].contains('/') {
            dir.join(p).display().to_string()
        } else {
            command[0].clone()
        }
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&command[1..])
        .args(&flags)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    // No proxy variables either: the connector talks to the mock API on 127.0.0.1 only.
    cmd.env_clear().envs(connector_env(false)).env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");

    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            outcome.spawn_error = Some(format!("{}: {e}", command[0]));
            outcome.duration_seconds = started.elapsed().as_secs_f64();
            return outcome;
        }
    };
    let pid = child.id();
    let out_task = tokio::spawn(read_lines(child.stdout.take()));
    let err_task = tokio::spawn(read_lines(child.stderr.take()));

    match tokio::time::timeout(req.wall_limit, child.wait()).await {
        Ok(Ok(status)) => outcome.exit_code = status.code(),
        Ok(Err(e)) => outcome.spawn_error = Some(format!("waiting for the process failed: {e}")),
        Err(_) => {
            outcome.hung = true;
            // The child is not reaped yet, so its process group id is still ours to signal.
            if let Some(pid) = pid {
                kill_group(pid);
            }
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }
    outcome.duration_seconds = started.elapsed().as_secs_f64();
    for (task, target) in [
        (out_task, &mut outcome.stdout),
        (err_task, &mut outcome.stderr),
    ] {
        let mut task = task;
        match tokio::time::timeout(Duration::from_secs(2), &mut task).await {
            Ok(Ok((lines, cut))) => {
                *target = lines;
                outcome.truncated |= cut;
            }
            _ => {
                // A grandchild still holds the pipe open; give up on the rest of its output.
                task.abort();
                outcome.truncated = true;
            }
        }
    }
    drop(tmp);
    outcome
}

fn kill_group(pid: u32) {
    // SAFETY: killpg only sends a signal; the group was created for this child (process_group(0)).
    unsafe {
        libc::killpg(pid as libc::pid_t, libc::SIGKILL);
    }
}

async fn read_lines<R: AsyncRead + Unpin>(pipe: Option<R>) -> (Vec<String>, bool) {
    let Some(pipe) = pipe else {
        return (Vec::new(), false);
    };
    let mut reader = BufReader::new(pipe);
    let mut lines = Vec::new();
    let mut cut = false;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if lines.len() >= MAX_LINES {
                    cut = true;
                    continue; // keep draining so the process never blocks on a full pipe
                }
                let mut line = String::from_utf8_lossy(&buf).into_owned();
                while line.ends_with('\n') || line.ends_with('\r') {
                    line.pop();
                }
                if line.len() > MAX_LINE_CHARS {
                    let mut end = MAX_LINE_CHARS;
                    while !line.is_char_boundary(end) {
                        end -= 1;
                    }
                    line.truncate(end);
                    cut = true;
                }
                lines.push(line);
            }
        }
    }
    (lines, cut)
}

/// What a connector's processes may see of the factory's environment. Connector code is
/// untrusted (an agent wrote it) and the factory's environment holds the app's private key,
/// installation tokens and LLM keys, so it starts from nothing: only what a process needs to
/// start and find its tools, and for the build step what a package manager needs to reach its
/// registry (proxies, npm and pip settings).
pub fn connector_env(for_build: bool) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    const BASE: [&str; 8] = ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "SYSTEMROOT"];
    const PROXIES: [&str; 8] =
        ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"];
    std::env::vars_os()
        .filter(|(k, _)| {
            let Some(k) = k.to_str() else { return false };
            BASE.contains(&k)
                || (for_build
                    && (PROXIES.contains(&k)
                        || ["npm_config_", "NPM_CONFIG_", "PIP_"].iter().any(|p| k.starts_with(p))))
        })
        .collect()
}

/// How long a declared build step (dependency install + compile) may take.
const BUILD_LIMIT: Duration = Duration::from_secs(600);

/// Run the manifest's `run.build` command in the implementation folder. A failing build makes
/// the implementation unusable: nothing could be tested, so it is input, not a check failure.
pub fn build_implementation(imp: &LoadedImpl) -> Result<(), InputError> {
    let build = &imp.manifest.run.build;
    let Some((program, args)) = build.split_first() else { return Ok(()) };
    let shown = build.join(" ");
    let mut child = std::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(connector_env(true))
        .current_dir(&imp.dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| InputError::new(&imp.dir, format!("cannot start the build command `{shown}`: {e}")))?;
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > BUILD_LIMIT => {
                let _ = child.kill();
                return Err(InputError::new(&imp.dir, format!("the build command `{shown}` took longer than {}s", BUILD_LIMIT.as_secs())));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(InputError::new(&imp.dir, format!("waiting for `{shown}`: {e}"))),
        }
    }
    let out = child.wait_with_output().map_err(|e| InputError::new(&imp.dir, format!("reading `{shown}` output: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let tail: Vec<&str> = text.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
    Err(InputError::new(&imp.dir, format!("the build command `{shown}` failed ({}):\n{}", out.status, tail.join("\n"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connector_sees_none_of_the_factorys_environment() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = vec!["sh".to_string(), "-c".to_string(), "env".to_string(), "x".to_string()];
        let out = run_connector(dir.path(), &cmd, sh("", Duration::from_secs(5))).await;
        assert_eq!(out.exit_code, Some(0), "{out:?}");
        let allowed = ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "SYSTEMROOT", "NO_PROXY", "no_proxy",
            "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PWD", "SHLVL", "_"];
        let names: Vec<&str> = out.stdout.iter().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
        assert!(names.contains(&"PATH"), "{names:?}");
        let leaked: Vec<&&str> = names.iter().filter(|n| !allowed.contains(n)).collect();
        // `cargo test` runs this with CARGO_* and more in its environment; none may pass.
        assert!(leaked.is_empty(), "variables reached the connector: {leaked:?}");
        assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO")), "the check needs something to keep out");
    }

    fn sh(script: &str, limit: Duration) -> RunRequest {
        let _ = script;
        RunRequest {
            label: "t".into(),
            mode: Mode::About,
            config: None,
            catalog: None,
            state: None,
            wall_limit: limit,
        }
    }

    #[tokio::test]
    async fn captures_output_and_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = vec![
            "sh".to_string(),
            "-c".to_string(),
            "echo out1; echo err1 >&2; echo out2; exit 3".to_string(),
            "x".to_string(),
        ];
        let out = run_connector(dir.path(), &cmd, sh("", Duration::from_secs(5))).await;
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout, vec!["out1", "out2"]);
        assert_eq!(out.stderr, vec!["err1"]);
        assert!(!out.hung);
        assert!(out.failed_cleanly());
    }

    #[tokio::test]
    async fn kills_a_hung_process_group() {
        let dir = tempfile::tempdir().unwrap();
        // The shell starts a grandchild that would outlive it; the whole group must die.
        let cmd = vec![
            "sh".to_string(),
            "-c".to_string(),
            "sleep 30 & echo started; wait".to_string(),
            "x".to_string(),
        ];
        let t = Instant::now();
        let out = run_connector(dir.path(), &cmd, sh("", Duration::from_millis(500))).await;
        assert!(out.hung, "{out:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(out.stdout, vec!["started"]);
    }

    #[tokio::test]
    async fn reports_a_missing_program() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = vec!["/nonexistent/connector-binary".to_string()];
        let out = run_connector(dir.path(), &cmd, sh("", Duration::from_secs(1))).await;
        assert!(out.spawn_error.is_some());
        assert!(!out.succeeded());
    }
}
