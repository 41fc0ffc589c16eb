//! Running the real `sluice serve` binary, for tests where the process is the point: start-up
//! messages, exit codes, signals, kill -9, a file-size limit, or a socket count that would
//! share this process's file limit.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::{free_ports, Client, Response, LIMIT};

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// A config file allowing loopback origins (every origin in these tests is on 127.0.0.1).
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("sluice.toml");
    let text = format!("[upstream]\nallow = [\"127.0.0.0/8\"]\n{extra}");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A running (or exited) `sluice serve` with its stderr collected.
pub struct Bin {
    pub child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    stderr: Arc<Mutex<Vec<u8>>>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

/// How to start the binary.
#[derive(Default)]
pub struct Launch<'a> {
    /// Largest file the process may write, in KiB (`ulimit -f`): writes beyond fail with
    /// EFBIG, which is how a full disk looks to sled. SIGXFSZ is ignored so the write fails
    /// instead of the process dying.
    pub file_limit_kib: Option<u64>,
    /// `RUST_LOG`; `warn` when empty.
    pub log: &'a str,
    /// Most file descriptors the process may hold (`ulimit -n`), so a test can run it out of
    /// them with a few connections.
    pub open_files: Option<u64>,
}

impl Bin {
    /// Starts `sluice serve --config config --store store` on fresh loopback ports.
    pub fn spawn(config: &Path, store: &Path, launch: Launch<'_>) -> Bin {
        let [proxy, admin] = free_ports();
        let mut limits = Vec::new();
        if let Some(kib) = launch.file_limit_kib {
            // bash counts `ulimit -f` in KiB, POSIX sh in 512-byte blocks: say it in bytes.
            limits.push(format!(
                "trap '' XFSZ; ulimit -f {}",
                kib * 1024 / block_size()
            ));
        }
        if let Some(n) = launch.open_files {
            limits.push(format!("ulimit -n {n}"));
        }
        let mut cmd = if limits.is_empty() {
            Command::new(BIN)
        } else {
            let mut c = Command::new("sh");
            let script = format!("{} && exec \"$0\" \"$@\"", limits.join(" && "));
            c.arg("-c").arg(script).arg(BIN);
            c
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", &format!("127.0.0.1:{proxy}")])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .arg("--store")
            .arg(store)
            .env(
                "RUST_LOG",
                if launch.log.is_empty() {
                    "warn"
                } else {
                    launch.log
                },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start sluice serve");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let reader = child.stderr.take().map(|mut pipe| {
            let sink = stderr.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .expect("stderr lock")
                        .extend_from_slice(&buf[..n]);
                }
            })
        });
        Bin {
            child,
            proxy: SocketAddr::from(([127, 0, 0, 1], proxy)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin)),
            stderr,
            reader,
        }
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr lock")).into_owned()
    }

    /// Polls `GET /healthz` until 200 (bounded); fails if the process exits first.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(
                Instant::now() < deadline,
                "sluice never became healthy; stderr:\n{}",
                self.stderr()
            );
            if let Some(status) = self.child.try_wait().expect("poll child") {
                panic!("sluice exited early ({status}); stderr:\n{}", self.stderr());
            }
            if self.health().await == Some(200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The status of `GET /healthz`, if the admin port answers.
    pub async fn health(&self) -> Option<u16> {
        let mut s = tokio::net::TcpStream::connect(self.admin).await.ok()?;
        let req = "GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n";
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out))
            .await
            .ok()?
            .ok()?;
        let line = String::from_utf8_lossy(&out);
        line.split(' ').nth(1)?.parse().ok()
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    pub async fn exit_code(&mut self) -> Option<i32> {
        let status = tokio::time::timeout(LIMIT, self.child.wait())
            .await
            .expect("sluice exits promptly")
            .expect("wait");
        // Let the stderr reader drain what the process wrote last (EOF on exit).
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(LIMIT, reader).await;
        }
        status.code()
    }

    /// Sends `signal` to the process, if it is still running.
    pub fn signal(&self, signal: Signal) {
        if let Some(id) = self.child.id() {
            let pid = Pid::from_raw(i32::try_from(id).expect("pid fits"));
            let _ = kill(pid, signal);
        }
    }

    /// SIGKILL and reap.
    pub async fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        let _ = tokio::time::timeout(LIMIT, self.child.wait()).await;
    }

    /// One admin request (raw HTTP/1.1, `Connection: close`).
    pub async fn admin(&self, method: &str, path: &str, body: &str) -> Response {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        Client::connect(self.admin).await.exchange(req).await
    }
}

/// The unit of `ulimit -f` in the `sh` that runs the wrapper: 1024 for bash, else 512.
fn block_size() -> u64 {
    let bash = std::process::Command::new("sh")
        .args(["-c", "echo ${BASH_VERSION:-}"])
        .output()
        .map(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty())
        .unwrap_or(false);
    if bash {
        1024
    } else {
        512
    }
}

/// Copies a directory tree (store files are plain files and directories).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("dir entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

/// Names in `dir` starting with `prefix`.
pub fn entries_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect()
}

/// SHA-256 in lowercase hex.
pub fn sha_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
