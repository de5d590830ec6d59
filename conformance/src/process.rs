//! Processes the harness starts (`--server-cmd`, `--app-server-cmd`; the memory of `--stdio`
//! and `--client` testees): how a command line is run, how it is stopped, and how much memory
//! it holds.
//!
//! A command runs as `sh -c COMMAND` in a process group of its own (so `cd dir && python3
//! server.py` works, and stopping it stops everything it started): the harness kills the whole
//! group with `SIGKILL` when it is done. Its memory is the sum over the group's processes of
//! `VmRSS` and `VmHWM` from `/proc/PID/status` (Linux); elsewhere it is "not measured".

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Memory held by a process group, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mem {
    /// Resident now (`VmRSS`, summed over the group).
    pub rss_kib: u64,
    /// Peak resident (`VmHWM`, summed over the group).
    pub hwm_kib: u64,
    /// Processes counted.
    pub processes: usize,
}

/// The memory of every process whose process group is `pgid`, or `None` where `/proc` cannot
/// tell (not Linux, or the group is gone).
pub fn group_memory(pgid: u32) -> Option<Mem> {
    let mut m = Mem::default();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if process_group(pid) != Some(pgid) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        m.rss_kib += field("VmRSS:");
        m.hwm_kib += field("VmHWM:");
        m.processes += 1;
    }
    (m.processes > 0).then_some(m)
}

/// The process group of `pid`, from `/proc/PID/stat` (field 5, after the parenthesised name).
fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 1..)?;
    after.split_whitespace().nth(2)?.parse().ok()
}

/// `sh -c COMMAND` in a new process group, with `envs` added to its environment.
pub fn shell(command: &str, envs: &[(String, String)]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(command).process_group(0);
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

/// Kills the process group led by `child` (it was started by [`shell`]) and reaps `child`.
pub fn kill_group(child: &mut Child) {
    if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Collects the last `keep` lines of a stream on a thread.
pub fn tail_lines(
    stream: impl std::io::Read + Send + 'static,
    keep: usize,
) -> Arc<Mutex<VecDeque<String>>> {
    let lines = Arc::new(Mutex::new(VecDeque::new()));
    let sink = Arc::clone(&lines);
    thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Ok(mut l) = sink.lock() {
                if l.len() == keep {
                    l.pop_front();
                }
                l.push_back(line);
            }
        }
    });
    lines
}

/// A server the harness started: killed (with its whole process group) when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// The address from its `listening on HOST:PORT` line.
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `command` with `sh -c` (see the module docs) and waits up to `timeout` for its
    /// first stdout line, `listening on HOST:PORT`. A server that exits first is reported as
    /// `the server exited (STATUS)` with the last lines of its stderr.
    pub fn start(
        command: &str,
        envs: &[(String, String)],
        timeout: Duration,
    ) -> Result<ServerProcess, String> {
        let mut child = shell(command, envs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {command:?}: {e}"))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            kill_group(&mut child);
            return Err("no stdout/stderr pipe".into());
        };
        let stderr = tail_lines(stderr, 20);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let mut p = ServerProcess {
            child,
            stderr,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = match rx.recv_timeout(timeout) {
            Ok(Some(Ok(l))) => l,
            Ok(None) | Ok(Some(Err(_))) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!(
                    "{command:?}: {} before printing `listening on HOST:PORT`",
                    p.exit_text(Duration::from_secs(2))
                        .unwrap_or_else(|| "closed its stdout".into())
                ))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "{command:?} did not print `listening on HOST:PORT` within {timeout:?}{}",
                    p.stderr_text()
                ))
            }
        };
        match line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.to_socket_addrs().ok()?.next())
        {
            Some(addr) => {
                p.addr = addr;
                Ok(p)
            }
            None => Err(format!(
                "{command:?}: its first line is not `listening on HOST:PORT`: {line:?}"
            )),
        }
    }

    /// The process group id (the `sh` the harness started leads it).
    pub fn pgid(&self) -> u32 {
        self.child.id()
    }

    /// The group's memory now.
    pub fn memory(&self) -> Option<Mem> {
        group_memory(self.pgid())
    }

    /// `the server exited (STATUS); stderr: ...` if it has exited (waiting up to `wait`).
    pub fn exit_text(&mut self, wait: Duration) -> Option<String> {
        let step = Duration::from_millis(20);
        let mut waited = Duration::ZERO;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(format!(
                    "the server exited ({status}){}",
                    self.stderr_text()
                ));
            }
            if waited >= wait {
                return None;
            }
            thread::sleep(step);
            waited += step;
        }
    }

    fn stderr_text(&self) -> String {
        // Let the stderr thread catch up with a process that just exited.
        thread::sleep(Duration::from_millis(20));
        match self.stderr.lock() {
            Ok(l) if !l.is_empty() => {
                format!(
                    "; stderr: {}",
                    l.iter().cloned().collect::<Vec<_>>().join(" | ")
                )
            }
            _ => String::new(),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compound_command_that_exits_is_reported_with_its_status() {
        let e = ServerProcess::start(
            "cd / && echo oops >&2 && exit 3",
            &[],
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(e.contains("the server exited"), "{e}");
        assert!(e.contains('3'), "{e}");
        assert!(e.contains("oops"), "{e}");
    }

    #[test]
    fn a_compound_command_can_start_a_server_and_is_measured() {
        let p = ServerProcess::start(
            "cd / && echo 'listening on 127.0.0.1:9' && exec sleep 30",
            &[],
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(p.addr.port(), 9);
        if cfg!(target_os = "linux") {
            let m = p.memory().unwrap();
            assert!(m.processes >= 1 && m.rss_kib > 0, "{m:?}");
        }
    }
}
