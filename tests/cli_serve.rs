//! The real `sluice` binary: `serve --check-config` verdicts and exit codes, and `serve`
//! proxying a request, answering the admin health check and exiting 0 on SIGTERM.

use crate::common;

use common::bin::{self, Bin, Launch, BIN};
use common::{Origin, LIMIT};
use nix::sys::signal::Signal;
use tokio::process::Command;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

async fn check_config(path: &std::path::Path) -> std::process::Output {
    let out = Command::new(BIN)
        .args(["serve", "--check-config", "--config"])
        .arg(path)
        .output();
    tokio::time::timeout(LIMIT, out)
        .await
        .expect("--check-config returns at once")
        .expect("run sluice")
}

#[tokio::test]
async fn check_config_accepts_a_good_file_with_exit_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        &dir,
        "good.toml",
        "[proxy]\nlisten = \"127.0.0.1:3128\"\nidle_timeout = \"30s\"\n\n[upstream]\nallow = [\"10.0.0.0/8\"]\nbody_timeout = \"5m\"\n",
    );
    let out = check_config(&path).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn check_config_names_the_line_and_key_of_an_unknown_key_with_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        &dir,
        "bad.toml",
        "[proxy]\nlisten = \"127.0.0.1:3128\"\nidle_timout = \"30s\"\n",
    );
    let out = check_config(&path).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("line 3"), "stderr names the line: {stderr}");
    assert!(
        stderr.contains("idle_timout"),
        "stderr names the key: {stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
}

#[tokio::test]
async fn check_config_rejects_a_bad_value_with_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        &dir,
        "bad.toml",
        "[upstream]\nresponse_timeout = \"soon\"\n",
    );
    let out = check_config(&path).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}

/// Values that used to pass `--check-config` and then panicked or aborted `serve` (a duration
/// overflowing `Instant + Duration` on the first request, a semaphore over tokio's limit, a
/// thread per worker) or could not bind: refused with exit 1, naming the key and its line.
#[tokio::test]
async fn check_config_refuses_values_that_would_panic_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (text, needle) in [
        (
            "[upstream]\n\nbody_timeout = \"18446744073709551615s\"\n",
            "line 3",
        ),
        (
            "[proxy]\nmax_connections = 9223372036854775807\n",
            "line 2: proxy.max_connections",
        ),
        ("[proxy]\nworkers = 100000\n", "line 2: proxy.workers"),
        (
            "[admin]\nlisten = \"127.0.0.1:3128\"\n",
            "line 2: admin.listen",
        ),
    ] {
        let path = write(&dir, "bad.toml", text);
        let out = check_config(&path).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text:?}: {stderr}");
        assert!(stderr.contains(needle), "{text:?}: {stderr}");
    }
    // A command-line override is checked the same way.
    let out = Command::new(BIN)
        .args(["serve", "--check-config", "--workers", "100000"])
        .output();
    let out = tokio::time::timeout(LIMIT, out)
        .await
        .expect("returns at once")
        .expect("run sluice");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("proxy.workers"), "{stderr}");
}

/// `--check-config` loads what `serve` would refuse to start without (like `nginx -t`): the
/// extra CA file and the rule files. It used to say "configuration ok" for both.
#[tokio::test]
async fn check_config_refuses_a_missing_ca_file_and_broken_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-ca.pem");
    let path = write(
        &dir,
        "ca.toml",
        &format!(
            "[upstream]\nca_file = {:?}\n",
            missing.display().to_string()
        ),
    );
    let out = check_config(&path).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("upstream.ca_file"), "{stderr}");

    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("mkdir");
    std::fs::write(
        rules.join("10.cf"),
        "body OK /fine/\nbody BAD /(unclosed/\n",
    )
    .expect("rule");
    let path = write(
        &dir,
        "rules.toml",
        &format!("[scan]\nrules = {:?}\n", rules.display().to_string()),
    );
    let out = check_config(&path).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("10.cf:2:"), "{stderr}");
}

#[tokio::test]
async fn serve_proxies_requests_and_exits_0_on_sigterm() {
    let origin = Origin::ok("through the binary").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = bin::write_config(dir.path(), "");
    let mut sluice = Bin::spawn(&config, &dir.path().join("store"), Launch::default());
    sluice.wait_ready().await;

    let r = common::fetch(sluice.proxy, &origin.url("/bin")).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "through the binary"));
    let health = sluice.admin("GET", "/healthz", "").await;
    assert_eq!(health.status(), 200);

    sluice.signal(Signal::SIGTERM);
    assert_eq!(
        sluice.exit_code().await,
        Some(0),
        "stderr: {}",
        sluice.stderr()
    );
    assert!(
        tokio::net::TcpStream::connect(sluice.proxy).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn an_unparsable_rust_log_is_reported_not_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = bin::write_config(dir.path(), "");
    let launch = Launch {
        log: "info,sluice=loud",
        ..Launch::default()
    };
    let mut sluice = Bin::spawn(&config, &dir.path().join("store"), launch);
    sluice.wait_ready().await;
    sluice.signal(Signal::SIGTERM);
    assert_eq!(sluice.exit_code().await, Some(0), "{}", sluice.stderr());
    let stderr = sluice.stderr();
    assert!(
        stderr.contains("RUST_LOG=\"info,sluice=loud\" does not parse"),
        "{stderr}"
    );
}

/// The access-log lines (target `access`) in a run's stderr.
fn access_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(" access: ")).collect()
}

#[tokio::test]
async fn every_request_gets_one_access_log_line_unless_turned_off() {
    let origin = Origin::ok("logged").await;
    let url = origin.url("/logged");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = bin::write_config(dir.path(), "");
    let launch = |log| Launch {
        log,
        ..Launch::default()
    };
    let mut sluice = Bin::spawn(&config, &dir.path().join("store"), launch("info"));
    sluice.wait_ready().await;
    let r = common::fetch(sluice.proxy, &url).await;
    assert_eq!(r.status(), 200);
    // A target that is not absolute is refused and logged as received.
    let mut c = common::Client::connect(sluice.proxy).await;
    let bad = c
        .exchange("GET /relative HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(bad.status(), 400);
    sluice.signal(Signal::SIGTERM);
    assert_eq!(sluice.exit_code().await, Some(0), "{}", sluice.stderr());
    let stderr = sluice.stderr();
    let lines = access_lines(&stderr);
    assert_eq!(lines.len(), 2, "{stderr}");
    for field in [
        "client=127.0.0.1",
        "method=GET",
        &format!("url={url}"),
        "status=200",
        "bytes=6",
        "complete=true",
        "verdict=clean",
    ] {
        assert!(lines[0].contains(field), "{field} in {}", lines[0]);
    }
    assert!(
        lines[1].contains("url=/relative") && lines[1].contains("status=400"),
        "{}",
        lines[1]
    );

    // `access=off` drops exactly these lines; the rest of the info log stays.
    let mut quiet = Bin::spawn(
        &config,
        &dir.path().join("store2"),
        launch("info,access=off"),
    );
    quiet.wait_ready().await;
    assert_eq!(common::fetch(quiet.proxy, &url).await.status(), 200);
    quiet.signal(Signal::SIGTERM);
    assert_eq!(quiet.exit_code().await, Some(0), "{}", quiet.stderr());
    let stderr = quiet.stderr();
    assert!(access_lines(&stderr).is_empty(), "{stderr}");
    assert!(
        stderr.contains(" INFO "),
        "other info lines remain: {stderr}"
    );
}

/// Regression: a CONNECT whose client left while the tunnel was opening was logged with an
/// empty URL (the target was named only once the answer was built).
#[tokio::test]
async fn a_connect_abandoned_while_its_tunnel_opens_is_logged_with_its_target() {
    // A parent that takes the CONNECT and never answers it.
    let (parent, asked) = Origin::silent().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = format!(
        "[[upstream.parents]]\ndomains = [\"tunnel.example\"]\nproxies = [\"{}\"]\n",
        parent.addr()
    );
    let config = bin::write_config(dir.path(), &extra);
    let launch = Launch {
        log: "info",
        ..Launch::default()
    };
    let mut sluice = Bin::spawn(&config, &dir.path().join("store"), launch);
    sluice.wait_ready().await;
    let mut c = common::Client::connect(sluice.proxy).await;
    c.send("CONNECT tunnel.example:443 HTTP/1.1\r\nHost: tunnel.example:443\r\n\r\n")
        .await;
    tokio::time::timeout(LIMIT, asked.notified())
        .await
        .expect("the CONNECT reached the parent");
    drop(c);
    sluice.signal(Signal::SIGTERM);
    assert_eq!(sluice.exit_code().await, Some(0), "{}", sluice.stderr());
    let stderr = sluice.stderr();
    let lines = access_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    for field in ["method=CONNECT", "url=tunnel.example:443", "status=0"] {
        assert!(lines[0].contains(field), "{field} in {}", lines[0]);
    }
}

/// Regression: once the first SIGTERM started the drain, tokio's handlers stayed installed
/// with nobody listening, so a second SIGTERM or Ctrl-C was swallowed and the operator had
/// to wait out `proxy.shutdown_grace` (then the scans and store writes) or kill -9. A second
/// stop signal now ends the process at once.
#[tokio::test]
async fn a_second_stop_signal_ends_the_drain_at_once() {
    use std::time::{Duration, Instant};
    let origin =
        Origin::start(|mut conn| async move { while conn.read_request().await.is_some() {} }).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = bin::write_config(dir.path(), "[proxy]\nshutdown_grace = \"60s\"\n");
    let mut sluice = Bin::spawn(&config, &dir.path().join("store"), Launch::default());
    sluice.wait_ready().await;
    let mut c = common::Client::connect(sluice.proxy).await;
    c.send(common::get(&origin.url("/never"))).await;
    let deadline = Instant::now() + LIMIT;
    while origin.requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the request never reached the origin"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    sluice.signal(Signal::SIGTERM);
    // The drain has begun once the listener is closed; the request holds it open.
    let deadline = Instant::now() + LIMIT;
    while tokio::net::TcpStream::connect(sluice.proxy).await.is_ok() {
        assert!(Instant::now() < deadline, "the listener is still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        sluice.child.try_wait().expect("poll child").is_none(),
        "the first signal drains: {}",
        sluice.stderr()
    );
    sluice.signal(Signal::SIGINT);
    assert_eq!(
        sluice.exit_code().await,
        Some(0),
        "stderr: {}",
        sluice.stderr()
    );
}

/// Regression: the SIGHUP handler was installed only after both listeners were bound and
/// the upstream client built (its `upstream.ca_file` read), so a SIGHUP sent once the proxy
/// port answered (a deploy script reloading rules after start) could still meet the default
/// action and end the process. A long CA file widens that window to be seen.
#[tokio::test]
async fn a_sighup_as_soon_as_the_proxy_port_answers_does_not_end_sluice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = common::tls::test_ca(&["localhost"]);
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.ca_pem.repeat(20_000)).expect("write CA file");
    let config = bin::write_config(
        dir.path(),
        &format!("ca_file = {:?}\n", ca_file.display().to_string()),
    );
    let mut sluice = Bin::spawn(&config, &dir.path().join("store"), Launch::default());
    let deadline = std::time::Instant::now() + LIMIT;
    while tokio::net::TcpStream::connect(sluice.proxy).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy never listened"
        );
        if let Some(status) = sluice.child.try_wait().expect("poll child") {
            panic!("sluice exited early ({status}): {}", sluice.stderr());
        }
    }
    sluice.signal(Signal::SIGHUP);
    sluice.wait_ready().await;
    sluice.signal(Signal::SIGTERM);
    assert_eq!(sluice.exit_code().await, Some(0), "{}", sluice.stderr());
}

/// CPU time (user + system) `pid` has used, in clock ticks (`USER_HZ`, 100 a second).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command name (which may hold spaces) start with the state, field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .collect();
    let field = |n: usize| fields[n - 3].parse::<u64>().expect("number");
    field(14) + field(15)
}

/// Regression: the admin listener retried a failed accept at once, and a failure such as
/// EMFILE (the process out of file descriptors, which a flood of proxy clients can bring)
/// leaves the waiting connection queued, so the retry fails again: one reactor thread spun
/// at full CPU for as long as the descriptors stayed used. It backs off as the proxy
/// listener does.
#[tokio::test]
async fn an_admin_accept_failure_does_not_spin() {
    use std::time::{Duration, Instant};
    const OPEN_FILES: usize = 64;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = bin::write_config(dir.path(), "");
    let launch = Launch {
        open_files: Some(OPEN_FILES as u64),
        ..Launch::default()
    };
    let mut sluice = Bin::spawn(&config, &dir.path().join("store"), launch);
    sluice.wait_ready().await;
    let pid = sluice.child.id().expect("running");
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    // More clients than descriptors: sluice accepts until it has none left.
    let mut held = Vec::new();
    for _ in 0..OPEN_FILES + 16 {
        held.push(
            tokio::net::TcpStream::connect(sluice.proxy)
                .await
                .expect("connect"),
        );
    }
    let deadline = Instant::now() + LIMIT;
    while fds() < OPEN_FILES {
        assert!(
            Instant::now() < deadline,
            "sluice never ran out of descriptors"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // An admin client now waits in the listen queue, and every accept of it fails.
    let _admin = tokio::net::TcpStream::connect(sluice.admin)
        .await
        .expect("connect admin");
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_ticks(pid) - before;
    assert!(
        used < 30,
        "sluice used {used} ticks of CPU in one idle second: a busy accept loop"
    );
    drop(held);
    sluice.signal(Signal::SIGTERM);
    assert_eq!(sluice.exit_code().await, Some(0), "{}", sluice.stderr());
}
