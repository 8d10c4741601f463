//! Starting a container's process the way `posix_spawn` does: with
//! `clone(CLONE_VM | CLONE_VFORK)`, the child borrows this process's memory
//! until it execs. `fork` copies the page tables of the whole process, and
//! every page the parent writes before the child has exec'd: in a server
//! holding a thousand runs that made each start cost milliseconds of both
//! cores. Starting this way costs the same however large the process is.
//!
//! The child runs on a stack of its own and makes only system calls on data
//! prepared before the clone: no allocation, no locks, no glibc wrapper
//! that acts on every thread of the process (setuid and friends, which
//! would reach the parent's threads through the shared memory).

use std::ffi::{CString, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use super::launch::ChildSetup;

/// A started process: its pipes and its exit.
pub(crate) struct Process {
    pub pid: u32,
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
    pidfd: Option<AsyncFd<OwnedFd>>,
}

impl Process {
    /// Waits for the process to exit and reaps it.
    /// Dropped before the end (or failing), the process is reaped by
    /// `Drop` all the same.
    pub async fn wait(mut self) -> io::Result<ExitStatus> {
        let Some(pidfd) = self.pidfd.as_ref() else {
            return Err(io::Error::other("the process was waited for already"));
        };
        loop {
            let mut ready = pidfd.readable().await?;
            match reap(pidfd.get_ref(), libc::WNOHANG)? {
                Some(status) => {
                    self.pidfd = None;
                    return Ok(status);
                }
                None => ready.clear_ready(),
            }
        }
    }
}

impl Drop for Process {
    /// A process nobody waits for is reaped when it exits, not left a
    /// zombie for the life of the server.
    fn drop(&mut self) {
        let Some(pidfd) = self.pidfd.take() else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                while let Ok(mut ready) = pidfd.readable().await {
                    match reap(pidfd.get_ref(), libc::WNOHANG) {
                        Ok(None) => ready.clear_ready(),
                        _ => return,
                    }
                }
            });
        }
    }
}

/// `waitid` on a pidfd: the exit status, or None while it runs (WNOHANG).
fn reap(pidfd: &OwnedFd, flags: c_int) -> io::Result<Option<ExitStatus>> {
    loop {
        // SAFETY: siginfo_t is plain data; waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pidfd and a valid siginfo_t to write.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | flags,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: waitid succeeded and filled the child fields.
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        // Back to the wait(2) status word ExitStatus is made from.
        let raw = match info.si_code {
            libc::CLD_EXITED => (status & 0xff) << 8,
            libc::CLD_DUMPED => status | 0x80,
            _ => status,
        };
        return Ok(Some(ExitStatus::from_raw(raw)));
    }
}

/// Starts `argv` with exactly `env`, in its own process group, with the
/// container's setup applied between clone and exec. Stdin is a pipe when
/// asked for, else /dev/null; stdout and stderr are pipes.
pub(crate) fn spawn(
    argv: &[String],
    env: &[(String, String)],
    stdin: bool,
    setup: &ChildSetup,
) -> io::Result<Process> {
    let program = argv
        .first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command"))?;
    let argv_c = argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    let env_c = env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}").as_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    let search = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    let paths = candidates(program, search)?;
    let argv_p = pointers(&argv_c);
    let env_p = pointers(&env_c);
    // execvp runs a file that is not a program (no #! line) with the shell:
    // `/bin/sh FILE ARGS…`, FILE filled in by the child.
    let mut script: Vec<*const libc::c_char> = vec![c"/bin/sh".as_ptr(), std::ptr::null()];
    script.extend_from_slice(&argv_p[1..]);

    // The parent's ends are made async before the clone: once the child
    // runs, nothing may fail and leave it without an owner.
    let (child_in, parent_in) = if stdin {
        let (r, w) = pipe_pair()?;
        (r, Some(pipe::Sender::from_owned_fd(w)?))
    } else {
        let null = std::fs::File::open("/dev/null")?;
        (OwnedFd::from(null), None)
    };
    let (out_r, out_w) = pipe_pair()?;
    let (err_r, err_w) = pipe_pair()?;
    let (stdout, stderr) = (
        pipe::Receiver::from_owned_fd(out_r)?,
        pipe::Receiver::from_owned_fd(err_r)?,
    );
    if setup.switches_user() && suid_dumpable() == Some(1) {
        // The child changes user while it shares this process's memory:
        // with fs.suid_dumpable=1, processes of that user could read and
        // write this process through it until it execs.
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "running as another user needs fs.suid_dumpable 0 or 2 (it is 1)",
        ));
    }
    let stack = Stack::new()?;
    let plan = Plan {
        paths: &paths,
        script: script.as_mut_ptr(),
        argv: argv_p.as_ptr(),
        env: env_p.as_ptr(),
        fds: [child_in.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
        setup,
        error: AtomicI32::new(0),
    };
    // Changing user makes the memory the child shares with this process
    // not dumpable (the kernel's commit_creds): it is set back once no
    // child that changes user is between clone and exec.
    let _user_change = setup.switches_user().then(UserChange::begin);
    let mut pidfd: c_int = -1;
    // Every signal stays blocked (glibc's own included, hence the system
    // call) until the child has reset their handlers: a handler of this
    // process must never run on the child's stack.
    let all: u64 = !0;
    let mut old: u64 = 0;
    // SAFETY: the kernel's 8-byte signal sets; the clone's child runs
    // `child_main` on its own stack with `plan`, both alive until clone
    // returns (CLONE_VFORK: the child has exec'd or exited by then).
    let pid = unsafe {
        if libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            &all as *const u64,
            &mut old as *mut u64,
            SIGSET_BYTES,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        let pid = libc::clone(
            child_main,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
            std::ptr::from_ref(&plan).cast_mut().cast::<c_void>(),
            &mut pidfd as *mut c_int,
        );
        let clone_error = io::Error::last_os_error();
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &old as *const u64,
            std::ptr::null_mut::<u64>(),
            SIGSET_BYTES,
        );
        if pid < 0 {
            return Err(match clone_error.raw_os_error() {
                Some(libc::EINVAL | libc::ENOSYS) => io::Error::new(
                    clone_error.kind(),
                    format!("cannot start a process (it needs Linux 5.4 or later): {clone_error}"),
                ),
                _ => clone_error,
            });
        }
        pid
    };
    // SAFETY: CLONE_PIDFD gave a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop((child_in, out_w, err_w, stack));
    let error = plan.error.load(Ordering::SeqCst);
    if error != 0 {
        // It has exited: reaped now, its error is the answer either way.
        let _ = reap(&pidfd, 0);
        return Err(io::Error::from_raw_os_error(error));
    }
    // SAFETY: an OwnedFd keeps its descriptor open and the same until
    // dropped.
    let registered =
        unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
    let pidfd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            // Not followed, so not left running: killed and reaped here.
            let (fd, e) = e.into_parts();
            // SAFETY: a valid pidfd; no siginfo.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            // Its process group too: it may have started others already.
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = reap(&fd, 0);
            return Err(io::Error::other(format!(
                "cannot wait for the process it started: {e}"
            )));
        }
    };
    Ok(Process {
        pid: pid as u32,
        stdin: parent_in,
        stdout: Some(stdout),
        stderr: Some(stderr),
        pidfd: Some(pidfd),
    })
}

/// The size of the kernel's signal set, as rt_sigprocmask wants it.
const SIGSET_BYTES: libc::size_t = 8;

/// A spawn whose child changes user. The first of those in flight notes
/// whether this process may be dumped; the last sets it back. A spawn
/// that restored it while another's child, already another user, had yet
/// to exec would let that user trace this process through it.
struct UserChange;

/// Spawns changing user in flight, and the dumpable flag before them.
static USER_CHANGES: std::sync::Mutex<(usize, c_int)> = std::sync::Mutex::new((0, 0));

impl UserChange {
    fn begin() -> UserChange {
        let mut changes = USER_CHANGES.lock().unwrap_or_else(|e| e.into_inner());
        if changes.0 == 0 {
            // SAFETY: PR_GET_DUMPABLE only reads.
            changes.1 = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
        }
        changes.0 += 1;
        UserChange
    }
}

impl Drop for UserChange {
    fn drop(&mut self) {
        let mut changes = USER_CHANGES.lock().unwrap_or_else(|e| e.into_inner());
        changes.0 -= 1;
        // SAFETY: prctl on this process's own flag.
        unsafe {
            if changes.0 == 0 && changes.1 >= 0 && libc::prctl(libc::PR_GET_DUMPABLE) != changes.1 {
                libc::prctl(libc::PR_SET_DUMPABLE, changes.1 as libc::c_ulong);
            }
        }
    }
}

/// fs.suid_dumpable, if it can be read.
fn suid_dumpable() -> Option<u8> {
    std::fs::read_to_string("/proc/sys/fs/suid_dumpable")
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a command, argument or variable holds a NUL byte",
        )
    })
}

/// A NULL-terminated array of pointers to `strings`.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The files `program` may be, in order, as execvp searches them: itself
/// when it names a path, else each directory of PATH (glibc's default when
/// unset). Bounded as execvp is: a name longer than a file name can be is
/// refused, and a directory too long for a path is skipped, so that a
/// hostile PATH and command cannot make thousands of long strings.
fn candidates(program: &str, search: Option<&str>) -> io::Result<Vec<CString>> {
    if program.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    if program.contains('/') {
        return Ok(vec![cstring(program.as_bytes())?]);
    }
    if program.len() > NAME_MAX {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    let mut paths = Vec::new();
    for dir in search.unwrap_or("/bin:/usr/bin").split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        if dir.len() + 1 + program.len() >= libc::PATH_MAX as usize {
            continue;
        }
        if paths.len() == MAX_SEARCHED {
            break;
        }
        paths.push(cstring(format!("{dir}/{program}").as_bytes())?);
    }
    Ok(paths)
}

/// The longest file name.
const NAME_MAX: usize = 255;
/// The most PATH directories tried.
const MAX_SEARCHED: usize = 256;

fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are new descriptors owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// What the child needs, all prepared before the clone.
struct Plan<'a> {
    paths: &'a [CString],
    /// `/bin/sh`, a slot for the file, and the arguments after the first.
    script: *mut *const libc::c_char,
    argv: *const *const libc::c_char,
    env: *const *const libc::c_char,
    /// What becomes descriptors 0, 1 and 2.
    fds: [RawFd; 3],
    setup: &'a ChildSetup,
    /// The errno that stopped the child before exec, 0 if it exec'd.
    error: AtomicI32,
}

extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's `Plan`, alive while the parent waits.
    let plan = unsafe { &*arg.cast::<Plan>() };
    // SAFETY: only system calls on data prepared before the clone.
    let errno = unsafe { plan.exec() };
    plan.error.store(errno.max(1), Ordering::SeqCst);
    // SAFETY: ends the child at once, running nothing of the parent's.
    unsafe { libc::_exit(127) }
}

impl Plan<'_> {
    /// Runs in the child; returns only on failure, with its errno.
    unsafe fn exec(&self) -> c_int {
        let errno = || {
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO)
        };
        // SAFETY: the calls below take only the prepared data.
        unsafe {
            // Caught signals go back to their defaults (their handlers are
            // this process's); SIGPIPE too, which Rust ignores. glibc's
            // own two (32 and 33) cannot be changed this way; their
            // handlers ignore a signal not sent by this process's threads.
            for sig in 1..=libc::SIGRTMAX() {
                if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                    continue;
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut action) == 0
                    && (action.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
                    && action.sa_sigaction != libc::SIG_DFL
                {
                    let mut default: libc::sigaction = std::mem::zeroed();
                    default.sa_sigaction = libc::SIG_DFL;
                    libc::sigaction(sig, &default, std::ptr::null_mut());
                }
            }
            for (target, &fd) in self.fds.iter().enumerate() {
                let target = target as c_int;
                // dup2 onto itself would keep close-on-exec.
                let moved = if fd == target {
                    libc::fcntl(fd, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, target)
                };
                if moved < 0 {
                    return errno();
                }
            }
            // Nothing else of this process's reaches the container, even a
            // descriptor it inherited without close-on-exec (Linux 5.11;
            // older kernels keep only those that are close-on-exec out).
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if libc::setpgid(0, 0) != 0 {
                return errno();
            }
            if let Err(e) = self.setup.apply() {
                return e.raw_os_error().unwrap_or(libc::EIO);
            }
            let none: u64 = 0;
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &none as *const u64,
                std::ptr::null_mut::<u64>(),
                SIGSET_BYTES,
            );
            // execvp's search: a file that is not there (or not reachable
            // on the way) sends it on; one that may not be run is
            // remembered; a file that is not a program is run by the
            // shell; anything else stops it.
            let mut denied = false;
            for path in self.paths {
                libc::execve(path.as_ptr(), self.argv, self.env);
                match errno() {
                    libc::ENOENT
                    | libc::ENOTDIR
                    | libc::ESTALE
                    | libc::ENODEV
                    | libc::ETIMEDOUT => {}
                    libc::EACCES => denied = true,
                    libc::ENOEXEC => {
                        // The parent's list, written while the parent
                        // waits and never read by it.
                        *self.script.add(1) = path.as_ptr();
                        libc::execve(c"/bin/sh".as_ptr(), self.script.cast_const(), self.env);
                        return errno();
                    }
                    other => return other,
                }
            }
            if denied { libc::EACCES } else { libc::ENOENT }
        }
    }
}

/// The child's stack, with a guard page below it: an overflow faults
/// instead of writing over this process's memory.
struct Stack {
    base: *mut c_void,
    len: usize,
}

const STACK: usize = 64 * 1024;

impl Stack {
    fn new() -> io::Result<Stack> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let len = STACK.next_multiple_of(page) + page;
        // SAFETY: a fresh private anonymous mapping.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base, len };
        // SAFETY: the lowest page of the mapping just made.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// Stacks grow down: the child starts at the end.
    fn top(&self) -> *mut c_void {
        // SAFETY: one past the end of the mapping.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer used.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> ChildSetup {
        ChildSetup::none()
    }

    fn env() -> Vec<(String, String)> {
        vec![("PATH".into(), "/nowhere:/usr/bin:/bin".into())]
    }

    async fn output(mut p: Process) -> (String, ExitStatus) {
        use tokio::io::AsyncReadExt;
        let mut out = String::new();
        p.stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        (out, p.wait().await.unwrap())
    }

    #[tokio::test]
    async fn runs_a_command_found_on_path_with_exactly_its_environment() {
        let argv = ["sh", "-c", "echo \"$A\"; echo \"$HOME\"; exit 3"].map(String::from);
        let mut vars = env();
        vars.push(("A".into(), "one two".into()));
        let p = spawn(&argv, &vars, false, &plain()).unwrap();
        let (out, status) = output(p).await;
        assert_eq!(out, "one two\n\n");
        assert_eq!(status.code(), Some(3));
    }

    #[tokio::test]
    async fn a_missing_command_is_an_error_and_leaves_no_process() {
        let e = spawn(&["no-such-command-here".into()], &env(), false, &plain())
            .err()
            .unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::write(&data, "not a program").unwrap();
        let e = spawn(
            &[data.to_string_lossy().into_owned()],
            &env(),
            false,
            &plain(),
        )
        .err()
        .unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
    }

    #[tokio::test]
    async fn stdin_is_piped_signals_are_reset_and_a_kill_is_seen() {
        use tokio::io::AsyncWriteExt;
        // A child that reads stdin, then waits to be killed; the server's
        // ignored SIGPIPE and its blocked signals must not be inherited.
        let argv = [
            "sh",
            "-c",
            "read line; echo \"got $line\"; grep -E '^Sig(Blk|Ign)' /proc/self/status; exec sleep 30",
        ]
        .map(String::from);
        let mut p = spawn(&argv, &env(), true, &plain()).unwrap();
        let mut input = p.stdin.take().unwrap();
        input.write_all(b"hello\n").await.unwrap();
        drop(input);
        let mut out = p.stdout.take().unwrap();
        let mut text = Vec::new();
        let mut buf = [0u8; 256];
        use tokio::io::AsyncReadExt;
        while !String::from_utf8_lossy(&text).contains("SigIgn") {
            let n = out.read(&mut buf).await.unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&text));
            text.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("got hello\n"), "{text}");
        assert!(text.contains("SigBlk:\t0000000000000000"), "{text}");
        // SIGPIPE (13) is bit 12 of the ignored set.
        let ignored = text.split("SigIgn:\t").nth(1).unwrap().trim();
        let ignored = u64::from_str_radix(ignored, 16).unwrap();
        assert_eq!(ignored & (1 << 12), 0, "SIGPIPE ignored: {text}");
        // Its own process group.
        // SAFETY: plain calls.
        assert_eq!(unsafe { libc::getpgid(p.pid as i32) }, p.pid as i32);
        unsafe { libc::kill(p.pid as i32, libc::SIGKILL) };
        let status = p.wait().await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[tokio::test]
    async fn a_change_of_user_stays_in_the_child() {
        // SAFETY: plain calls.
        if unsafe { libc::geteuid() } != 0 || suid_dumpable() == Some(1) {
            return;
        }
        let argv = [
            "sh",
            "-c",
            "id -u; id -g; grep NoNewPrivs /proc/self/status",
        ]
        .map(String::from);
        let p = spawn(&argv, &env(), false, &ChildSetup::as_user(65534, 65533)).unwrap();
        let (out, status) = output(p).await;
        assert_eq!(
            (out.as_str(), status.code()),
            ("65534\n65533\nNoNewPrivs:\t1\n", Some(0))
        );
        // SAFETY: plain calls.
        unsafe {
            assert_eq!(libc::geteuid(), 0);
            // The kernel marks the shared memory not dumpable when the
            // child changes user; spawn sets it back.
            assert_eq!(libc::prctl(libc::PR_GET_DUMPABLE), 1);
        }
    }

    #[tokio::test]
    async fn a_file_without_a_shebang_runs_with_the_shell_as_execvp_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("job");
        std::fs::write(&file, "echo \"script $1\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut vars = env();
        vars[0].1 = format!("/nowhere:{}", dir.path().display());
        let p = spawn(&["job".into(), "one".into()], &vars, false, &plain()).unwrap();
        let (out, status) = output(p).await;
        assert_eq!((out.as_str(), status.code()), ("script one\n", Some(0)));
    }

    #[test]
    fn a_hostile_path_and_name_are_bounded() {
        let long = "x".repeat(300);
        let e = candidates(&long, Some("/bin")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG));
        let path = ":".repeat(100_000);
        assert_eq!(
            candidates(&"y".repeat(200), Some(&path)).unwrap().len(),
            MAX_SEARCHED
        );
        let deep = format!("/{}:/bin", "d".repeat(5000));
        assert_eq!(
            candidates("ls", Some(&deep)).unwrap(),
            vec![cstring(b"/bin/ls").unwrap()]
        );
    }

    #[test]
    fn path_search_follows_execvp() {
        let c = candidates("ls", Some(":/bin")).unwrap();
        assert_eq!(
            c,
            vec![cstring(b"./ls").unwrap(), cstring(b"/bin/ls").unwrap()]
        );
        assert_eq!(candidates("/bin/ls", None).unwrap().len(), 1);
        assert!(cstring(b"a\0b").is_err());
    }
}
