//! Memory limits through cgroups (v2, or v1's memory controller), and how a
//! container that hit its limit is recognised (OOMKilled).

use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// A memory cgroup for one container process.
pub(crate) struct MemoryCgroup {
    dir: PathBuf,
    v2: bool,
}

/// Why memory limits cannot be enforced here.
pub(crate) fn unavailable_reason() -> Option<String> {
    if !Path::new(ROOT).join("cgroup.controllers").exists()
        && !Path::new(ROOT).join("memory").is_dir()
    {
        return Some("no memory cgroup controller is mounted".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("podrun is not running as root".into());
    }
    None
}

impl MemoryCgroup {
    /// Creates the cgroup `name` with a memory limit of `bytes`.
    pub(crate) fn create(name: &str, bytes: u64) -> std::io::Result<Self> {
        let v2 = Path::new(ROOT).join("cgroup.controllers").exists();
        let base = if v2 {
            PathBuf::from(ROOT)
        } else {
            Path::new(ROOT).join("memory")
        };
        let dir = base.join("podrun").join(name);
        if v2 {
            // Delegate the memory controller to podrun's subtree.
            let _ = fs::create_dir_all(base.join("podrun"));
            let _ = fs::write(base.join("cgroup.subtree_control"), "+memory");
            let _ = fs::write(base.join("podrun/cgroup.subtree_control"), "+memory");
        }
        fs::create_dir_all(&dir)?;
        let cg = MemoryCgroup { dir, v2 };
        if v2 {
            fs::write(cg.dir.join("memory.max"), bytes.to_string())?;
            let _ = fs::write(cg.dir.join("memory.swap.max"), "0");
        } else {
            fs::write(cg.dir.join("memory.limit_in_bytes"), bytes.to_string())?;
            let _ = fs::write(cg.dir.join("memory.swappiness"), "0");
            let _ = fs::write(
                cg.dir.join("memory.memsw.limit_in_bytes"),
                bytes.to_string(),
            );
        }
        Ok(cg)
    }

    /// The file a child writes "0" to, to join the cgroup.
    pub(crate) fn procs_file(&self) -> std::io::Result<fs::File> {
        fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))
    }

    /// How many processes the kernel killed for exceeding the limit.
    pub(crate) fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse().ok())
                })
            })
            .unwrap_or(0)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.dir);
    }
}
