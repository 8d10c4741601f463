//! The local runtime: a pod's containers as processes on this machine.
//!
//! It runs the rendered Pod itself, not a simplified copy: init containers
//! one after another, then the containers together, with the pod's restart
//! policy and Kubernetes' back-off, activeDeadlineSeconds,
//! terminationGracePeriodSeconds, probes, emptyDir volumes and memory
//! limits. It reports a Kubernetes PodStatus, so classifier hooks cannot
//! tell it from a cluster.

mod cgroup;
pub(crate) mod launch;
mod probe;
mod spawn;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::cgroup::MemoryCgroup;
use self::launch::{ChildSetup, Launch};
use super::{Control, Event, Runtime, Start, StartError, Started, Stdin, Stop};

/// The local runtime. Images are not pulled: each container's command runs
/// as a process of this machine, under the pod's rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalRuntime;

impl Runtime for LocalRuntime {
    fn name(&self) -> &'static str {
        "local"
    }

    /// Problems with the spec are reported in the pod's status (a
    /// container waiting with CreateContainerConfigError), as a kubelet
    /// would, never as an error.
    fn start(&self, mut start: Start) -> BoxFuture<'_, Result<Started, StartError>> {
        super::name_for_run(&mut start.pod, &start.run_id);
        let name = start.pod.metadata.name.clone().unwrap_or_default();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (control, rx) = mpsc::unbounded_channel();
        let supervisor = Supervisor::new(start.pod, start.stdin, control.clone(), events_tx);
        tokio::spawn(supervisor.run(rx));
        Box::pin(std::future::ready(Ok(Started {
            events: super::stream(events),
            control: Box::new(LocalControl(control)),
            namespace: None,
            name,
            reattached: false,
        })))
    }
}

struct LocalControl(UnboundedSender<Msg>);

impl Control for LocalControl {
    fn finish(&self, _delete: bool) {
        let _ = self.0.send(Msg::Stop(Stop::Graceful));
    }

    fn stop(&self, how: Stop, _delete: bool) {
        let _ = self.0.send(Msg::Stop(how));
    }
}

/// Messages to the supervisor from its tasks and its handle.
#[derive(Debug)]
pub(crate) enum Msg {
    Exited {
        slot: usize,
        generation: u32,
        code: i32,
        signal: Option<i32>,
    },
    Probe {
        slot: usize,
        generation: u32,
        kind: probe::Kind,
        healthy: bool,
        message: String,
    },
    Restart {
        slot: usize,
        generation: u32,
    },
    Stop(Stop),
}

#[derive(Debug, Clone)]
struct Term {
    code: i32,
    signal: Option<i32>,
    reason: String,
    message: Option<String>,
    started: Option<Time>,
    finished: Time,
}

#[derive(Debug, Clone)]
enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        since: Time,
    },
    Terminated(Term),
}

struct Slot {
    /// Where the container's spec is in the pod: its list (init
    /// containers or containers) and its place in it.
    init: bool,
    index: usize,
    /// A native sidecar: an init container that always restarts. It runs
    /// beside the containers and is stopped when they have ended.
    sidecar: bool,
    launch: Result<Launch, String>,
    state: State,
    restarts: u32,
    last: Option<Term>,
    ready: bool,
    generation: u32,
    pgid: Option<i32>,
    /// SIGTERM was sent: a second stop must not send it again.
    terminating: bool,
    restart_pending: bool,
    tasks: Vec<JoinHandle<()>>,
    cgroup: Option<MemoryCgroup>,
}

struct Supervisor {
    /// The pod as last published, status included: shared with the
    /// run that follows it, so a run in flight holds one copy.
    pod: Arc<Pod>,
    slots: Vec<Slot>,
    policy: String,
    started_at: Time,
    deadline: Option<Instant>,
    /// Index of the init container running, or `None` once they all succeeded.
    init_stage: Option<usize>,
    init_failed: bool,
    stopping: bool,
    pod_reason: Option<(String, String)>,
    control: UnboundedSender<Msg>,
    events: UnboundedSender<Event>,
    /// Tasks feeding the worker's stdin.
    readers: Vec<JoinHandle<()>>,
    stdin_pending: Option<Stdin>,
    _volumes: Option<tempfile::TempDir>,
    created_mount_points: Vec<PathBuf>,
    warned_memory: bool,
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Kubernetes' restart back-off: the first restart is immediate, then 10 s,
/// doubling up to 5 minutes.
fn backoff(restarts: u32) -> Duration {
    match restarts {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs((10u64 << (n - 2).min(5)).min(300)),
    }
}

impl Supervisor {
    fn new(
        mut pod: Pod,
        stdin: Option<Stdin>,
        control: UnboundedSender<Msg>,
        events: UnboundedSender<Event>,
    ) -> Self {
        if pod.metadata.creation_timestamp.is_none() {
            pod.metadata.creation_timestamp = Some(now());
        }
        // The status is the runtime's to say: the first one is always sent.
        pod.status = None;
        let mut created_mount_points = Vec::new();
        let (volumes_dir, volumes, volume_error) = prepare_volumes(&pod, &mut created_mount_points);
        let make = |(index, c): (usize, &Container), init: bool| {
            let launch = match &volume_error {
                Some(e) => Err(e.clone()),
                None => launch::prepare(&pod, c, &volumes, stdin.is_some()).and_then(|l| {
                    probe::validate(c)?;
                    Ok(l)
                }),
            };
            let state = match &launch {
                Ok(_) => State::Waiting {
                    reason: if init {
                        "PodInitializing"
                    } else {
                        "ContainerCreating"
                    }
                    .into(),
                    message: None,
                },
                Err(m) => State::Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: Some(m.clone()),
                },
            };
            Slot {
                init,
                index,
                sidecar: init && c.restart_policy.as_deref() == Some("Always"),
                launch,
                state,
                restarts: 0,
                last: None,
                ready: false,
                generation: 0,
                pgid: None,
                terminating: false,
                restart_pending: false,
                tasks: Vec::new(),
                cgroup: None,
            }
        };
        let no_spec = PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&no_spec);
        let inits = spec.init_containers.iter().flatten().enumerate();
        let slots: Vec<Slot> = inits
            .map(|c| make(c, true))
            .chain(spec.containers.iter().enumerate().map(|c| make(c, false)))
            .collect();
        let has_init = slots.iter().any(|s| s.init);
        let deadline = spec
            .active_deadline_seconds
            .map(|s| Instant::now() + Duration::from_secs(s.max(0) as u64));
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        Supervisor {
            deadline,
            policy,
            pod: Arc::new(pod),
            slots,
            started_at: now(),
            init_stage: has_init.then_some(0),
            init_failed: false,
            stopping: false,
            pod_reason: None,
            control,
            events,
            readers: Vec::new(),
            stdin_pending: stdin,
            _volumes: volumes_dir,
            created_mount_points,
            warned_memory: false,
        }
    }

    async fn run(mut self, mut rx: UnboundedReceiver<Msg>) {
        if self.slots.iter().all(|s| s.launch.is_ok()) {
            match self.init_stage {
                Some(first) => self.start_init(first),
                None => self.start_main(),
            }
        }
        self.publish();
        while !self.finished() {
            let deadline = self.deadline.filter(|_| !self.stopping);
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => self.stop(Stop::Kill),
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    let secs = self.pod.spec.as_ref().and_then(|s| s.active_deadline_seconds).unwrap_or(0);
                    self.pod_reason = Some((
                        "DeadlineExceeded".into(),
                        format!("Pod was active on the node longer than the specified deadline ({secs} s)"),
                    ));
                    self.stop(Stop::Graceful);
                }
            }
            self.publish();
        }
        for task in self.readers.drain(..) {
            task.abort();
        }
        self.publish();
        for dir in self.created_mount_points.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
        let _ = self.events.send(Event::Finished);
    }

    fn finished(&self) -> bool {
        let idle = self
            .slots
            .iter()
            .all(|s| s.pgid.is_none() && !s.restart_pending);
        idle && (self.stopping
            || self.init_failed
            || matches!(self.phase(), "Succeeded" | "Failed"))
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Stop(how) => self.stop(how),
            Msg::Exited {
                slot,
                generation,
                code,
                signal,
            } => {
                if self.slots[slot].generation == generation {
                    self.exited(slot, code, signal);
                }
            }
            Msg::Restart { slot, generation } => {
                // A sidecar whose containers ended (or whose pod failed
                // to initialise) is not started again.
                let over = self.slots[slot].sidecar && (self.mains_done() || self.init_failed);
                let s = &mut self.slots[slot];
                if s.generation == generation && s.restart_pending {
                    s.restart_pending = false;
                    if !self.stopping && !over {
                        if self.init_stage == Some(slot) {
                            // A sidecar that had not started yet.
                            self.start_init(slot);
                        } else {
                            self.start(slot);
                        }
                    }
                }
            }
            Msg::Probe {
                slot,
                generation,
                kind,
                healthy,
                message,
            } => {
                let s = &mut self.slots[slot];
                if s.generation != generation || s.pgid.is_none() {
                    return;
                }
                match kind {
                    probe::Kind::Readiness => s.ready = healthy,
                    probe::Kind::Liveness if !healthy => {
                        tracing::info!(
                            "container {}: liveness probe failed: {message}; stopping it",
                            container(&self.pod, s).name
                        );
                        let grace = s.launch.as_ref().map(|l| l.grace).unwrap_or_default();
                        kill_group(s, Some(grace));
                    }
                    probe::Kind::Liveness => {}
                }
            }
        }
    }

    fn stop(&mut self, how: Stop) {
        self.stopping = true;
        for s in &mut self.slots {
            s.restart_pending = false;
            if s.pgid.is_some() {
                let grace = match how {
                    Stop::Graceful => s.launch.as_ref().map(|l| l.grace).ok(),
                    Stop::Kill => None,
                };
                kill_group(s, grace);
            }
        }
    }

    /// Starts init container `i`. A sidecar does not hold the next one
    /// back: it runs on beside them.
    fn start_init(&mut self, i: usize) {
        self.init_stage = Some(i);
        self.start(i);
        // Started means a process runs (a StartError leaves pgid 0): a
        // sidecar that cannot start holds the pod, as the kubelet does.
        if self.slots[i].sidecar && self.slots[i].pgid.is_some_and(|p| p > 0) {
            self.next_init(i);
        }
    }

    /// Init container `i` is done (or, a sidecar, started): the next one, or
    /// the containers.
    fn next_init(&mut self, i: usize) {
        let next = i + 1;
        if next < self.slots.len() && self.slots[next].init {
            self.start_init(next);
        } else {
            self.start_main();
        }
    }

    /// Whether every container (not init, not sidecar) has ended for good.
    fn mains_done(&self) -> bool {
        self.init_stage.is_none()
            && self.slots.iter().filter(|s| !s.init).all(|s| {
                matches!(s.state, State::Terminated(_)) && !s.restart_pending && s.pgid.is_none()
            })
    }

    fn start_main(&mut self) {
        self.init_stage = None;
        for i in 0..self.slots.len() {
            if !self.slots[i].init {
                self.start(i);
            }
        }
    }

    fn start(&mut self, i: usize) {
        let Ok(launch) = self.slots[i].launch.clone() else {
            return;
        };
        let slot = &mut self.slots[i];
        slot.generation += 1;
        let generation = slot.generation;
        let pod_name = self
            .pod
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| "pod".into());
        slot.cgroup = None;
        let mut procs = None;
        if let Some(bytes) = launch.memory_limit {
            match cgroup::unavailable_reason() {
                None => {
                    // Names come from the template: nothing in them may
                    // climb out of podrun's cgroup directory.
                    let safe = |n: &str| -> String {
                        n.chars()
                            .map(|c| {
                                if c.is_ascii_alphanumeric() || c == '-' {
                                    c
                                } else {
                                    '_'
                                }
                            })
                            .collect()
                    };
                    let name = format!(
                        "{}-{}-{}-{generation}",
                        safe(&pod_name),
                        safe(&launch.name),
                        std::process::id()
                    );
                    match MemoryCgroup::create(&name, bytes)
                        .and_then(|cg| Ok((cg.procs_file()?, cg)))
                    {
                        Ok((file, cg)) => {
                            procs = Some(file);
                            slot.cgroup = Some(cg);
                        }
                        Err(e) => warn_once(
                            &mut self.warned_memory,
                            &self.events,
                            &format!("cannot create a memory cgroup: {e}"),
                        ),
                    }
                }
                Some(why) => warn_once(&mut self.warned_memory, &self.events, &why),
            }
        }
        let slot = &mut self.slots[i];
        let started = now();
        let spawned = ChildSetup::new(&launch, procs)
            .and_then(|setup| spawn::spawn(&launch.argv, &launch.env, launch.stdin, &setup));
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let term = Term {
                    code: 127,
                    signal: None,
                    reason: "StartError".into(),
                    message: Some(format!("cannot start {:?}: {e}", launch.argv[0])),
                    started: Some(started.clone()),
                    finished: now(),
                };
                slot.state = State::Terminated(term);
                let _ = self.control.send(Msg::Exited {
                    slot: i,
                    generation,
                    code: 127,
                    signal: None,
                });
                slot.pgid = Some(0);
                return;
            }
        };
        let pid = child.pid;
        slot.pgid = Some(pid as i32);
        slot.terminating = false;
        slot.state = State::Running { since: started };
        slot.ready = container(&self.pod, slot).readiness_probe.is_none();
        let mut readers = Vec::new();
        let outputs: [Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>; 2] = [
            child.stdout.take().map(|o| Box::new(o) as _),
            child.stderr.take().map(|o| Box::new(o) as _),
        ];
        for out in outputs.into_iter().flatten() {
            let events = self.events.clone();
            let container = launch.name.clone();
            readers.push(tokio::spawn(read_lines(out, container, events)));
        }
        if let Some(mut input) = child.stdin.take()
            && let Some(mut source) = self.stdin_pending.take()
        {
            self.readers.push(tokio::spawn(async move {
                let _ = tokio::io::copy(&mut source, &mut input).await;
            }));
        }
        let control = self.control.clone();
        let slot = &mut self.slots[i];
        // Not in `slot.tasks`: those are aborted when the container ends.
        tokio::spawn(async move {
            let status = child.wait().await;
            // The container ends with its main process, as in Kubernetes.
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            // Its output is sent before its end, so logs keep their order.
            let _ =
                tokio::time::timeout(Duration::from_secs(2), futures::future::join_all(readers))
                    .await;
            let (code, signal) = match status {
                Ok(s) => {
                    use std::os::unix::process::ExitStatusExt;
                    match (s.code(), s.signal()) {
                        (Some(c), _) => (c, None),
                        (None, Some(sig)) => (128 + sig, Some(sig)),
                        _ => (1, None),
                    }
                }
                Err(_) => (1, None),
            };
            let _ = control.send(Msg::Exited {
                slot: i,
                generation,
                code,
                signal,
            });
        });
        for kind in [probe::Kind::Liveness, probe::Kind::Readiness] {
            if let Ok(Some(task)) = probe::start(
                kind,
                container(&self.pod, slot),
                &launch,
                pid,
                i,
                generation,
                self.control.clone(),
            ) {
                slot.tasks.push(task);
            }
        }
    }

    fn exited(&mut self, i: usize, code: i32, signal: Option<i32>) {
        let policy = self.policy.clone();
        let stopping = self.stopping;
        let mains_done = self.mains_done();
        let init_failed = self.init_failed;
        let slot = &mut self.slots[i];
        let slot_is_sidecar = slot.sidecar;
        slot.pgid = None;
        for t in slot.tasks.drain(..) {
            t.abort();
        }
        let oom = slot.cgroup.take().is_some_and(|cg| cg.oom_kills() > 0);
        let started = match &slot.state {
            State::Running { since } => Some(since.clone()),
            State::Terminated(t) => t.started.clone(),
            State::Waiting { .. } => None,
        };
        let previous = match &slot.state {
            State::Terminated(t) if t.reason == "StartError" => Some(t.clone()),
            _ => None,
        };
        let term = previous.unwrap_or_else(|| Term {
            code,
            signal,
            reason: if oom {
                "OOMKilled"
            } else if code == 0 {
                "Completed"
            } else {
                "Error"
            }
            .into(),
            message: None,
            started,
            finished: now(),
        });
        slot.ready = false;
        slot.state = State::Terminated(term.clone());
        let restart = !stopping
            && match policy.as_str() {
                _ if slot.sidecar => true,
                "Never" => false,
                "OnFailure" => code != 0,
                _ => !slot.init || code != 0,
            };
        // A sidecar is not restarted once the containers it served ended.
        let restart = restart && !(slot.sidecar && (mains_done || init_failed));
        if restart {
            slot.restarts += 1;
            slot.last = Some(term);
            slot.restart_pending = true;
            let delay = backoff(slot.restarts);
            if !delay.is_zero() {
                slot.state = State::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {}s restarting failed container={}",
                        delay.as_secs(),
                        container(&self.pod, slot).name
                    )),
                };
            }
            let (control, generation) = (self.control.clone(), slot.generation);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = control.send(Msg::Restart {
                    slot: i,
                    generation,
                });
            });
            return;
        }
        if slot.init && !slot.sidecar && !stopping {
            if code != 0 {
                self.init_failed = true;
            } else {
                self.next_init(i);
            }
        }
        // The containers have ended, or will never start: their sidecars
        // are stopped, as the kubelet stops them, and not restarted.
        if !slot_is_sidecar && (self.mains_done() || self.init_failed) {
            self.stop_sidecars();
        }
    }

    fn stop_sidecars(&mut self) {
        for s in self.slots.iter_mut().filter(|s| s.sidecar) {
            s.restart_pending = false;
            if s.pgid.is_some() {
                let grace = s.launch.as_ref().map(|l| l.grace).ok();
                kill_group(s, grace);
            }
        }
    }

    fn phase(&self) -> &'static str {
        let mains = || self.slots.iter().filter(|s| !s.init);
        let done = |s: &Slot| {
            matches!(s.state, State::Terminated(_)) && !s.restart_pending && s.pgid.is_none()
        };
        if self.init_failed {
            return "Failed";
        }
        if self.init_stage.is_some() {
            return if self.stopping
                && self.slots.iter().all(|s| s.pgid.is_none())
                && self.pod_reason.is_some()
            {
                "Failed"
            } else {
                "Pending"
            };
        }
        if mains().all(done) {
            let ok = mains().all(|s| matches!(&s.state, State::Terminated(t) if t.code == 0));
            return if ok && self.pod_reason.is_none() {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if self.pod_reason.is_some() && self.slots.iter().all(|s| s.pgid.is_none()) {
            return "Failed";
        }
        if mains().any(|s| {
            s.pgid.is_some() || s.restart_pending || matches!(s.state, State::Terminated(_))
        }) {
            "Running"
        } else {
            "Pending"
        }
    }

    fn status(&self) -> PodStatus {
        let phase = self.phase();
        let initialized = self.init_stage.is_none() && !self.init_failed;
        let mains_ready = self
            .slots
            .iter()
            .filter(|s| !s.init)
            .all(|s| s.ready && s.pgid.is_some());
        let condition = |type_: &str, ok: bool| PodCondition {
            type_: type_.into(),
            status: if ok { "True" } else { "False" }.into(),
            ..Default::default()
        };
        let statuses = |init: bool| -> Vec<ContainerStatus> {
            self.slots
                .iter()
                .filter(|s| s.init == init)
                .map(|s| container_status(&self.pod, s))
                .collect()
        };
        let inits = statuses(true);
        PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![
                condition("PodScheduled", true),
                condition("Initialized", initialized),
                condition("ContainersReady", mains_ready),
                condition("Ready", mains_ready),
            ]),
            host_ip: Some("127.0.0.1".into()),
            pod_ip: Some("127.0.0.1".into()),
            start_time: Some(self.started_at.clone()),
            init_container_statuses: (!inits.is_empty()).then_some(inits),
            container_statuses: Some(statuses(false)),
            reason: self.pod_reason.as_ref().map(|(r, _)| r.clone()),
            message: self.pod_reason.as_ref().map(|(_, m)| m.clone()),
            ..Default::default()
        }
    }

    fn publish(&mut self) {
        let status = self.status();
        if self.pod.status.as_ref() == Some(&status) {
            return;
        }
        self.pod = Arc::new(Pod {
            metadata: self.pod.metadata.clone(),
            spec: self.pod.spec.clone(),
            status: Some(status),
        });
        let _ = self
            .events
            .send(Event::Status(Arc::clone(&self.pod), "[]".into()));
    }
}

fn warn_once(warned: &mut bool, events: &UnboundedSender<Event>, why: &str) {
    if !std::mem::replace(warned, true) {
        let _ = events.send(Event::Warning(format!(
            "local runtime: memory limits are not enforced: {why}"
        )));
    }
}

/// The spec of the container in `slot`.
fn container<'a>(pod: &'a Pod, slot: &Slot) -> &'a Container {
    // Slots are made from this pod's spec: the container is there.
    let spec = pod.spec.as_ref().expect("a pod with containers has a spec");
    let list = match slot.init {
        true => spec.init_containers.as_deref().unwrap_or_default(),
        false => &spec.containers,
    };
    &list[slot.index]
}

fn container_status(pod: &Pod, s: &Slot) -> ContainerStatus {
    let spec = container(pod, s);
    let state = |st: &State| match st {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        State::Running { since } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(since.clone()),
            }),
            ..Default::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(terminated(t)),
            ..Default::default()
        },
    };
    ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        image_id: String::new(),
        container_id: s.pgid.map(|p| format!("local://{p}")),
        ready: s.ready && s.pgid.is_some(),
        restart_count: s.restarts as i32,
        started: Some(s.pgid.is_some()),
        state: Some(state(&s.state)),
        last_state: s.last.as_ref().map(|t| ContainerState {
            terminated: Some(terminated(t)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn terminated(t: &Term) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.code,
        signal: t.signal,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started.clone(),
        finished_at: Some(t.finished.clone()),
        ..Default::default()
    }
}

/// SIGTERM to the container's process group, then SIGKILL after `grace`
/// (at once when `None`).
fn kill_group(s: &mut Slot, grace: Option<Duration>) {
    let Some(pgid) = s.pgid.filter(|p| *p > 0) else {
        return;
    };
    // SAFETY: kill has no memory-safety preconditions.
    match grace {
        Some(_) if s.terminating => {}
        Some(grace) if !grace.is_zero() => {
            s.terminating = true;
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            s.tasks.push(tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }));
        }
        _ => unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        },
    }
}

/// One fresh directory per emptyDir volume, and the mount points the
/// containers need. Returns the directory holding the volumes, the volumes
/// by name, and the reason they cannot be provided, if any.
fn prepare_volumes(
    pod: &Pod,
    created: &mut Vec<PathBuf>,
) -> (
    Option<tempfile::TempDir>,
    Vec<(String, PathBuf)>,
    Option<String>,
) {
    let spec = pod.spec.clone().unwrap_or_default();
    let empty_dirs: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.empty_dir.is_some())
        .map(|v| v.name.clone())
        .collect();
    let mounted = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .filter(|m| empty_dirs.contains(&m.name))
        .map(|m| PathBuf::from(&m.mount_path))
        .collect::<Vec<_>>();
    if empty_dirs.is_empty() {
        return (None, Vec::new(), None);
    }
    if !mounted.is_empty() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return (
                None,
                Vec::new(),
                Some("emptyDir volumes need a private mount namespace, which needs podrun to run as root".into()),
            );
        }
    }
    let dir = match tempfile::Builder::new().prefix("podrun-volumes-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            return (
                None,
                Vec::new(),
                Some(format!("cannot create emptyDir volumes: {e}")),
            );
        }
    };
    let mut volumes = Vec::new();
    for name in empty_dirs {
        let path = dir.path().join(&name);
        if let Err(e) = std::fs::create_dir(&path) {
            return (
                Some(dir),
                volumes,
                Some(format!("cannot create emptyDir {name}: {e}")),
            );
        }
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777));
        volumes.push((name, path));
    }
    for m in mounted {
        if !m.is_absolute() {
            return (
                Some(dir),
                volumes,
                Some(format!("mountPath {} must be absolute", m.display())),
            );
        }
        // Mount points are created on this machine for the run and removed
        // afterwards; the volume itself is only visible inside the pod.
        let mut missing = Vec::new();
        let mut at = m.as_path();
        while !at.exists() {
            missing.push(at.to_path_buf());
            match at.parent() {
                Some(p) => at = p,
                None => break,
            }
        }
        if let Err(e) = std::fs::create_dir_all(&m) {
            return (
                Some(dir),
                volumes,
                Some(format!("cannot create mountPath {}: {e}", m.display())),
            );
        }
        created.extend(missing.into_iter().rev());
    }
    (Some(dir), volumes, None)
}

/// The most a container's output is read at once.
const READ_MAX: usize = 64 << 10;

/// The buffer a container's output is first read into.
const READ_FIRST: usize = 4 << 10;

/// The longest piece of a line held before it is passed on without its
/// end (output that never prints a newline).
const LINE_MAX: usize = 1 << 20;

/// Sends `out`'s output as it comes, whole lines at a time (one event per
/// batch; a last line without its newline at the end). No buffer is held
/// while the output is quiet: a read of nothing waits until there is
/// something to read, and a buffer emptied by a read that drained the pipe
/// is given back. It starts small and grows only while the output fills
/// it: a thousand quiet containers cost nothing each, a loud one reads
/// 64 KB at once.
async fn read_lines(
    mut out: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    container: String,
    events: mpsc::UnboundedSender<Event>,
) {
    use tokio::io::AsyncReadExt;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if buf.capacity() == 0 {
            // An error shows again on the read below.
            let _ = out.read(&mut []).await;
            buf.reserve_exact(READ_FIRST);
        } else if buf.capacity() - buf.len() < 1024 {
            buf.reserve_exact(buf.capacity().min(READ_MAX));
        }
        let spare = buf.capacity() - buf.len();
        let before = buf.len();
        let n = match out.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                if !buf.is_empty() {
                    let _ = events.send(Event::Log {
                        container,
                        line: buf,
                    });
                }
                return;
            }
            Ok(n) => n,
        };
        if n == spare && buf.capacity() < READ_MAX {
            buf.reserve_exact(buf.capacity());
        }
        // Only the bytes just read can hold a new newline; a line that
        // never ends is passed on in pieces of LINE_MAX, not held whole.
        let end = match buf[before..].iter().rposition(|b| *b == b'\n') {
            Some(at) => before + at + 1,
            None if buf.len() >= LINE_MAX => buf.len(),
            None => continue,
        };
        let lines = buf[..end].to_vec();
        buf.drain(..end);
        if buf.is_empty() && n < spare {
            buf = Vec::new();
        } else if buf.capacity() > 2 * READ_MAX && buf.len() < READ_MAX {
            buf.shrink_to(READ_MAX);
        }
        let _ = events.send(Event::Log {
            container: container.clone(),
            line: lines,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, ReadBuf};

    use super::*;

    /// Gives out `chunks` one per read and notes the room each read offered.
    struct Chunks {
        chunks: Vec<&'static [u8]>,
        offered: Arc<Mutex<Vec<usize>>>,
    }

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.offered.lock().unwrap().push(buf.remaining());
            if buf.remaining() > 0 && !self.chunks.is_empty() {
                let chunk = self.chunks.remove(0);
                buf.put_slice(chunk);
            }
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn quiet_output_holds_no_buffer_and_lines_stay_whole() {
        let offered = Arc::new(Mutex::new(Vec::new()));
        let out = Chunks {
            chunks: vec![b"one\ntw", b"o\n", b"three"],
            offered: offered.clone(),
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        read_lines(Box::new(out), "main".into(), tx).await;
        let mut lines = Vec::new();
        while let Ok(Event::Log { container, line }) = rx.try_recv() {
            assert_eq!(container, "main");
            lines.push(String::from_utf8(line).unwrap());
        }
        assert_eq!(lines, ["one\n", "two\n", "three"]);
        // Nothing was offered before the first output (a read of nothing
        // waits for it); after "two\n" emptied the buffer it was given
        // back, so the next read again waited with no room.
        let offered = offered.lock().unwrap().clone();
        assert_eq!(offered[0], 0, "{offered:?}");
        assert!(offered[1] >= READ_FIRST, "{offered:?}");
        assert_eq!(offered[3], 0, "{offered:?}");
    }
}
