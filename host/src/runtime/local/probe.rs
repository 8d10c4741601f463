//! Liveness and readiness probes with Kubernetes' semantics: an initial
//! delay, a period, a timeout per attempt, and thresholds of consecutive
//! successes and failures before the result flips.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::sync::mpsc::UnboundedSender;

use super::Msg;
use super::launch::Launch;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Liveness,
    Readiness,
}

/// How to run one attempt.
#[derive(Debug, Clone)]
enum Check {
    Exec(Vec<String>),
    Http {
        url: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        port: u16,
    },
}

/// Starts the probe of `kind` for the container in `slot`, if it has one.
pub(crate) fn start(
    kind: Kind,
    container: &Container,
    launch: &Launch,
    pid: u32,
    slot: usize,
    generation: u32,
    tx: UnboundedSender<Msg>,
) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    let probe = match kind {
        Kind::Liveness => container.liveness_probe.as_ref(),
        Kind::Readiness => container.readiness_probe.as_ref(),
    };
    let Some(probe) = probe else { return Ok(None) };
    let check = check(probe, container)?;
    let secs =
        |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
    let initial = secs(probe.initial_delay_seconds, 0);
    let period = secs(probe.period_seconds, 10).max(Duration::from_millis(100));
    let timeout = secs(probe.timeout_seconds, 1).max(Duration::from_millis(100));
    let successes = probe.success_threshold.unwrap_or(1).max(1) as u32;
    let failures = probe.failure_threshold.unwrap_or(3).max(1) as u32;
    let launch = launch.clone();
    Ok(Some(tokio::spawn(async move {
        tokio::time::sleep(initial).await;
        // Readiness starts "not ready", liveness "alive".
        let mut healthy = kind == Kind::Liveness;
        let (mut ok_run, mut bad_run) = (0u32, 0u32);
        let mut ticker = tokio::time::interval(period);
        loop {
            ticker.tick().await;
            let result = attempt(&check, &launch, pid, timeout).await;
            match result {
                Ok(()) => {
                    ok_run += 1;
                    bad_run = 0;
                }
                Err(_) => {
                    bad_run += 1;
                    ok_run = 0;
                }
            }
            let flip = if healthy {
                bad_run >= failures
            } else {
                ok_run >= successes
            };
            if flip {
                healthy = !healthy;
                let message = result.err().unwrap_or_default();
                let msg = Msg::Probe {
                    slot,
                    generation,
                    kind,
                    healthy,
                    message,
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
        }
    })))
}

fn check(probe: &Probe, c: &Container) -> Result<Check, String> {
    let port = |p: &IntOrString| -> Result<u16, String> {
        match p {
            IntOrString::Int(n) => {
                u16::try_from(*n).map_err(|_| format!("probe port {n} is out of range"))
            }
            IntOrString::String(name) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| {
                    format!("probe port {name:?} is not a port of container {}", c.name)
                }),
        }
    };
    if let Some(exec) = &probe.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        if cmd.is_empty() {
            return Err("an exec probe needs a command".into());
        }
        return Ok(Check::Exec(cmd));
    }
    if let Some(http) = &probe.http_get {
        let scheme = http
            .scheme
            .as_deref()
            .unwrap_or("HTTP")
            .to_ascii_lowercase();
        let host = http.host.as_deref().unwrap_or("127.0.0.1");
        let path = http.path.as_deref().unwrap_or("/");
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let url = format!("{scheme}://{host}:{}{path}", port(&http.port)?);
        let headers = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        return Ok(Check::Http { url, headers });
    }
    if let Some(tcp) = &probe.tcp_socket {
        return Ok(Check::Tcp {
            port: port(&tcp.port)?,
        });
    }
    Err("the probe has no exec, httpGet or tcpSocket handler (grpc probes are not supported locally)".into())
}

async fn attempt(
    check: &Check,
    launch: &Launch,
    pid: u32,
    timeout: Duration,
) -> Result<(), String> {
    match check {
        Check::Exec(argv) => exec(argv, launch, pid, timeout).await,
        Check::Tcp { port } => {
            match tokio::time::timeout(
                timeout,
                tokio::net::TcpStream::connect(("127.0.0.1", *port)),
            )
            .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("dial tcp 127.0.0.1:{port}: {e}")),
                Err(_) => Err(format!("dial tcp 127.0.0.1:{port}: timed out")),
            }
        }
        Check::Http { url, headers } => {
            let (url, headers) = (url.clone(), headers.clone());
            let get = tokio::task::spawn_blocking(move || {
                let agent = ureq::Agent::config_builder()
                    .timeout_global(Some(timeout))
                    .http_status_as_error(false)
                    .max_redirects(0)
                    .build()
                    .new_agent();
                let mut req = agent.get(&url);
                for (k, v) in &headers {
                    req = req.header(k, v);
                }
                match req.call() {
                    Ok(r) if (200..400).contains(&r.status().as_u16()) => Ok(()),
                    Ok(r) => Err(format!(
                        "HTTP probe failed with statuscode: {}",
                        r.status().as_u16()
                    )),
                    Err(e) => Err(format!("Get {url}: {e}")),
                }
            });
            get.await.unwrap_or_else(|e| Err(e.to_string()))
        }
    }
}

/// Runs the probe command as the container would: same environment,
/// working directory, user and mounts (it joins the container's mount
/// namespace).
async fn exec(argv: &[String], launch: &Launch, pid: u32, timeout: Duration) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let ns = if launch.mounts.is_empty() {
        None
    } else {
        std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok()
    };
    let mut in_container = launch.clone();
    in_container.mounts.clear();
    let setup = super::launch::ChildSetup::new(&in_container, None).map_err(|e| e.to_string())?;
    // SAFETY: the closure makes only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(ns) = &ns {
                use std::os::fd::AsRawFd;
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            setup.apply()
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("exec {:?}: {e}", argv[0]))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("command {argv:?} exited with {status}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("command {argv:?} timed out after {timeout:?}")),
    }
}

/// Checks that the container's probes can run locally.
pub(crate) fn validate(c: &Container) -> Result<(), String> {
    for p in [&c.liveness_probe, &c.readiness_probe]
        .into_iter()
        .flatten()
    {
        check(p, c)?;
    }
    Ok(())
}
