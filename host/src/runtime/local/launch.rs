//! Turning a container of the pod spec into a process: command and
//! arguments with `$(VAR)` expansion, environment, working directory, user,
//! emptyDir mounts in a private mount namespace, and a memory cgroup.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

/// Everything needed to start one container's process.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub name: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    pub user: Option<(u32, u32)>,
    pub mounts: Vec<Mount>,
    pub memory_limit: Option<u64>,
    pub grace: Duration,
    pub stdin: bool,
}

/// An emptyDir mounted into a container.
#[derive(Debug, Clone)]
pub(crate) struct Mount {
    /// The volume's directory.
    pub volume: PathBuf,
    /// The part of it mounted, relative; resolved inside the volume when
    /// the container starts (an earlier container may have left links).
    pub sub_path: Option<PathBuf>,
    pub target: PathBuf,
    pub read_only: bool,
}

/// Expands `$(VAR)` references the way Kubernetes does: a defined variable
/// is replaced, `$$` is a literal `$`, anything else stays as written.
pub(crate) fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some((_, value)) = env.iter().rev().find(|(k, _)| *k == inner[..end])
        {
            out.push_str(value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Builds the launch of container `c` of `pod`, or says why the local
/// runtime cannot run it (reported as CreateContainerConfigError).
pub(crate) fn prepare(
    pod: &Pod,
    c: &Container,
    volumes: &[(String, PathBuf)],
    stdin: bool,
) -> Result<Launch, String> {
    let spec = pod.spec.as_ref().ok_or("the pod has no spec")?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        ),
        ("HOSTNAME".into(), pod_name),
    ];
    for var in c.env.iter().flatten() {
        if var.value_from.is_some() {
            return Err(format!(
                "env {}: valueFrom is not supported by the local runtime (use a plain value)",
                var.name
            ));
        }
        let value = expand(var.value.as_deref().unwrap_or(""), &env);
        env.retain(|(k, _)| *k != var.name);
        env.push((var.name.clone(), value));
    }
    if c.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err("envFrom is not supported by the local runtime".into());
    }
    // Without an image there is no entrypoint: with no command, the args
    // are the command line, as for an image without ENTRYPOINT.
    let argv: Vec<String> = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .map(|a| expand(a, &env))
        .collect();
    if argv.is_empty() {
        return Err(format!(
            "container {} has no command or args: the local runtime cannot use the image's default command",
            c.name
        ));
    }
    let security = c.security_context.as_ref();
    let pod_security = spec.security_context.as_ref();
    let uid = security
        .and_then(|s| s.run_as_user)
        .or(pod_security.and_then(|s| s.run_as_user));
    let gid = security
        .and_then(|s| s.run_as_group)
        .or(pod_security.and_then(|s| s.run_as_group));
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // Out of range would wrap to another id (2^32 is root): refused, as
    // the API server refuses it, whoever runs podrun.
    let id =
        |v: i64, what: &str| u32::try_from(v).map_err(|_| format!("{what} {v} is not a valid id"));
    let (uid, gid) = (
        uid.map(|u| id(u, "runAsUser")).transpose()?,
        gid.map(|g| id(g, "runAsGroup")).transpose()?,
    );
    let user = match (uid, gid) {
        (None, None) => None,
        // Only root can switch users; otherwise the process runs as podrun.
        _ if !root => None,
        (u, g) => Some((u.unwrap_or(0), g.or(u).unwrap_or(0))),
    };
    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let (_, dir) = volumes.iter().find(|(n, _)| *n == m.name).ok_or_else(|| {
            format!(
                "volume {}: only emptyDir volumes are supported by the local runtime",
                m.name
            )
        })?;
        let sub_path = match m.sub_path.as_deref() {
            // As the API server's validation: inside the volume only.
            Some(sub)
                if Path::new(sub).is_absolute()
                    || Path::new(sub)
                        .components()
                        .any(|c| c == std::path::Component::ParentDir) =>
            {
                return Err(format!(
                    "volume mount {}: subPath {sub:?} must be a relative path without '..'",
                    m.name
                ));
            }
            Some(sub) if !sub.is_empty() => Some(PathBuf::from(sub)),
            _ => None,
        };
        mounts.push(Mount {
            volume: dir.clone(),
            sub_path,
            target: PathBuf::from(&m.mount_path),
            read_only: m.read_only.unwrap_or(false),
        });
    }
    let memory_limit = c
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .map(|q| {
            parse_bytes(&q.0).ok_or_else(|| format!("memory limit {:?} is not a quantity", q.0))
        })
        .transpose()?;
    Ok(Launch {
        name: c.name.clone(),
        argv,
        env,
        working_dir: c.working_dir.as_ref().map(PathBuf::from),
        user,
        mounts,
        memory_limit,
        grace: Duration::from_secs(
            spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64
        ),
        stdin: stdin && c.name == "worker",
    })
}

/// A Kubernetes memory quantity in bytes (`64Mi`, `1G`, `512M`, `1e9`).
pub(crate) fn parse_bytes(q: &str) -> Option<u64> {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "m" => 1e-3,
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some((n * factor).ceil() as u64)
}

/// What the child does between clone and exec, with every string prepared
/// beforehand: in the child only async-signal-safe calls are allowed.
pub(crate) struct ChildSetup {
    cgroup_procs: Option<std::fs::File>,
    mounts: Vec<(CString, CString, bool)>,
    /// The subPaths opened inside their volumes, mounted by descriptor.
    _opened: Vec<OwnedFd>,
    chdir: Option<CString>,
    user: Option<(u32, u32)>,
}

/// Opens `sub` inside `volume` without following a link or leaving it: a
/// container before this one may have put a link there to any path of the
/// host, which root's bind mount would otherwise follow.
fn open_inside(volume: &Path, sub: &Path) -> std::io::Result<OwnedFd> {
    let root = std::fs::File::open(volume)?;
    let sub = cstring(sub)?;
    // SAFETY: open_how is plain data.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: a valid directory descriptor, path and open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            sub.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn cstring(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other)
}

impl ChildSetup {
    pub(crate) fn new(
        launch: &Launch,
        cgroup_procs: Option<std::fs::File>,
    ) -> std::io::Result<Self> {
        let (mut mounts, mut opened) = (Vec::new(), Vec::new());
        for m in &launch.mounts {
            let source = match &m.sub_path {
                None => cstring(&m.volume)?,
                Some(sub) => {
                    let fd = open_inside(&m.volume, sub).map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!(
                                "subPath {} (a link, or missing, in its volume): {e}",
                                sub.display()
                            ),
                        )
                    })?;
                    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
                    opened.push(fd);
                    cstring(Path::new(&source))?
                }
            };
            mounts.push((source, cstring(&m.target)?, m.read_only));
        }
        Ok(ChildSetup {
            cgroup_procs,
            mounts,
            _opened: opened,
            chdir: launch.working_dir.as_deref().map(cstring).transpose()?,
            user: launch.user,
        })
    }

    /// No setup: the process starts as this one runs.
    #[cfg(test)]
    pub(crate) fn none() -> Self {
        ChildSetup {
            cgroup_procs: None,
            mounts: Vec::new(),
            _opened: Vec::new(),
            chdir: None,
            user: None,
        }
    }

    /// Only a change of user.
    #[cfg(test)]
    pub(crate) fn as_user(uid: u32, gid: u32) -> Self {
        ChildSetup {
            user: Some((uid, gid)),
            ..ChildSetup::none()
        }
    }

    /// Whether the process changes user before it execs.
    pub(crate) fn switches_user(&self) -> bool {
        self.user.is_some()
    }

    /// Runs in the child between clone and exec. Order matters: join the cgroup and
    /// mount while still privileged, then enter the working directory (it
    /// may be a mount), then drop to the container's user.
    pub(crate) fn apply(&self) -> std::io::Result<()> {
        use std::io::Error;
        // SAFETY: only async-signal-safe libc calls on data prepared before
        // fork.
        unsafe {
            if let Some(f) = &self.cgroup_procs
                && libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1
            {
                return Err(Error::last_os_error());
            }
            if !self.mounts.is_empty() {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(Error::last_os_error());
                }
                let root = c"/";
                let none = std::ptr::null();
                if libc::mount(
                    none,
                    root.as_ptr(),
                    none,
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(Error::last_os_error());
                }
                for (src, dst, ro) in &self.mounts {
                    if libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        none,
                        libc::MS_BIND,
                        std::ptr::null(),
                    ) != 0
                    {
                        return Err(Error::last_os_error());
                    }
                    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
                    if *ro && libc::mount(none, dst.as_ptr(), none, flags, std::ptr::null()) != 0 {
                        return Err(Error::last_os_error());
                    }
                }
            }
            if let Some(dir) = &self.chdir
                && libc::chdir(dir.as_ptr()) != 0
            {
                return Err(Error::last_os_error());
            }
            // The system calls, not glibc's wrappers: those make every
            // thread of the process change, through a signal to each, and
            // the child of a CLONE_VM spawn shares the parent's threads'
            // bookkeeping.
            // Nor can the process gain privileges on the way: a setuid
            // program under a mount the pod chose (/etc, say) would
            // otherwise give another user root.
            if let Some((uid, gid)) = self.user
                && (libc::prctl(
                    libc::PR_SET_NO_NEW_PRIVS,
                    1 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                ) != 0
                    || libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0
                    || libc::syscall(libc::SYS_setgid, gid) != 0
                    || libc::syscall(libc::SYS_setuid, uid) != 0)
            {
                return Err(Error::last_os_error());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_like_kubernetes() {
        let e = env(&[("A", "1"), ("B", "two")]);
        assert_eq!(expand("$(A)-$(B)", &e), "1-two");
        assert_eq!(expand("$$(A)", &e), "$(A)");
        assert_eq!(expand("$(C) $A $( $(A", &e), "$(C) $A $( $(A");
        assert_eq!(expand("cost: 5$", &e), "cost: 5$");
    }

    #[test]
    fn quantities_in_bytes() {
        assert_eq!(parse_bytes("64Mi"), Some(64 << 20));
        assert_eq!(parse_bytes("1G"), Some(1_000_000_000));
        assert_eq!(parse_bytes("1.5Ki"), Some(1536));
        assert_eq!(parse_bytes("1e3"), Some(1000));
        assert_eq!(parse_bytes("lots"), None);
    }
}

#[cfg(test)]
mod spec_tests {
    use super::*;

    fn container(extra: serde_json::Value) -> (Pod, Container) {
        let mut c = serde_json::json!({"name": "main", "command": ["true"]});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [c]}
        }))
        .unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        (pod, c)
    }

    #[test]
    fn a_user_id_out_of_range_is_refused_not_wrapped_to_root() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        for id in [4294967296i64, -1] {
            for field in ["runAsUser", "runAsGroup"] {
                let (pod, c) = container(serde_json::json!({"securityContext": {field: id}}));
                let e = prepare(&pod, &c, &[], false).unwrap_err();
                assert!(e.contains("not a valid id") && e.contains(field), "{e}");
            }
        }
        let (pod, c) = container(serde_json::json!({"securityContext": {"runAsUser": 1000}}));
        let user = prepare(&pod, &c, &[], false).unwrap().user;
        assert_eq!(user, root.then_some((1000, 1000)));
    }

    #[test]
    fn a_sub_path_stays_inside_its_volume() {
        let volumes = [("scratch".to_string(), PathBuf::from("/tmp/vol"))];
        for sub in ["/etc", "../../etc", "a/../../b"] {
            let (pod, c) = container(serde_json::json!({"volumeMounts": [
                {"name": "scratch", "mountPath": "/data", "subPath": sub}
            ]}));
            let e = prepare(&pod, &c, &volumes, false).unwrap_err();
            assert!(e.contains("relative path"), "{sub}: {e}");
        }
        let (pod, c) = container(serde_json::json!({"volumeMounts": [
            {"name": "scratch", "mountPath": "/data", "subPath": "a/b"}
        ]}));
        let launch = prepare(&pod, &c, &volumes, false).unwrap();
        let m = &launch.mounts[0];
        assert_eq!(
            (m.volume.as_path(), m.sub_path.as_deref()),
            (Path::new("/tmp/vol"), Some(Path::new("a/b")))
        );
    }
}

#[cfg(test)]
mod mount_tests {
    use super::*;

    #[test]
    fn a_sub_path_is_opened_inside_its_volume_and_never_through_a_link() {
        let volume = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(volume.path().join("data/inner")).unwrap();
        std::os::unix::fs::symlink("/etc", volume.path().join("link")).unwrap();
        std::os::unix::fs::symlink("data", volume.path().join("data-link")).unwrap();
        assert!(open_inside(volume.path(), Path::new("data/inner")).is_ok());
        for planted in ["link", "link/passwd", "data-link/inner"] {
            let e = open_inside(volume.path(), Path::new(planted)).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{planted}: {e}");
        }
        assert!(open_inside(volume.path(), Path::new("missing")).is_err());
        // The setup refuses such a mount with the reason.
        let launch = Launch {
            name: "main".into(),
            argv: vec!["true".into()],
            env: Vec::new(),
            working_dir: None,
            user: None,
            mounts: vec![Mount {
                volume: volume.path().to_path_buf(),
                sub_path: Some("link".into()),
                target: "/data".into(),
                read_only: false,
            }],
            memory_limit: None,
            grace: Duration::from_secs(1),
            stdin: false,
        };
        let e = ChildSetup::new(&launch, None).err().unwrap();
        assert!(e.to_string().contains("subPath link"), "{e}");
    }
}
