//! The Kubernetes runtime: creates the pod with kube-rs, watches it (not
//! polling; dropped watches and expired resource versions are resumed by the
//! watcher), follows every container's logs in the order they run, sends
//! stdin to the `worker` container, and deletes the pod at the end.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, ContainerStatus, EnvVar, Event as KubeEvent, Pod};
use kube::api::{Api, AttachParams, DeleteParams, ListParams, LogParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use futures::future::BoxFuture;

use super::{Control, Event, Start, StartError, Started, Stdin, Stop};
use shared_watch::SharedWatches;

mod shared_watch;
use crate::exit::Code;

/// The label that carries the run id (set by the `labels` hook, and by this
/// runtime when a pod lacks it).
pub const RUN_ID_LABEL: &str = "podrun.dev/run-id";
/// The label that marks podrun's pods.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// How to reach the cluster.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    /// A kubeconfig file; otherwise `KUBECONFIG`, `~/.kube/config`, then
    /// the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig.
    pub context: Option<String>,
}

impl Connect {
    /// Whether a cluster is configured at all: a flag, `KUBECONFIG`,
    /// `~/.kube/config`, or running in a pod.
    pub fn configured(&self) -> bool {
        self.kubeconfig.is_some()
            || self.context.is_some()
            || std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
            || dirs::home_dir().is_some_and(|h| h.join(".kube/config").is_file())
            || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
    }
}

/// A failure to talk to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig cannot be used.
    #[error("cannot use the cluster configuration: {0}")]
    Config(String),
    /// The namespace to run in does not exist.
    #[error("namespace {0:?} not found")]
    NamespaceNotFound(String),
    /// The API answered a request with an error.
    #[error("the Kubernetes API refused to {action} ({})", status.code)]
    Refused {
        /// What podrun asked for.
        action: &'static str,
        /// The API's answer.
        #[source]
        status: Box<kube::core::Status>,
    },
    /// The API could not be reached, or its answer not read.
    #[error("cannot {action} on the Kubernetes API")]
    Unreachable {
        /// What podrun asked for.
        action: &'static str,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// A pod of that name exists and belongs to another run.
    #[error("pod {0} already exists and belongs to another run")]
    NameTaken(String),
    /// The run's pod was to be followed, and is not there.
    #[error("the run's pod {0} is gone")]
    NoPod(String),
}

impl KubeError {
    /// The failure of `action`, as the API answered it.
    fn api(action: &'static str) -> impl Fn(kube::Error) -> KubeError {
        move |e| match e {
            kube::Error::Api(status) => KubeError::Refused { action, status },
            source => KubeError::Unreachable { action, source },
        }
    }

    /// The exit code this failure ends podrun with: the caller's mistake
    /// (a bad pod, namespace or credentials) is 125; the rest may pass.
    pub fn exit_code(&self) -> Code {
        match self {
            KubeError::Config(_) | KubeError::NameTaken(_) | KubeError::NamespaceNotFound(_) => {
                Code::Usage
            }
            KubeError::Refused { status, .. }
                if matches!(status.code, 400 | 401 | 403 | 404 | 422) =>
            {
                Code::Usage
            }
            KubeError::Refused { .. } | KubeError::Unreachable { .. } | KubeError::NoPod(_) => {
                Code::Cluster
            }
        }
    }
}

/// A kube error in one line: the API's own message for an API error, not
/// the debug dump of its status.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

/// A client and the namespace the configuration names.
pub async fn client(connect: &Connect) -> Result<(Client, String), KubeError> {
    let options = KubeConfigOptions {
        context: connect.context.clone(),
        ..Default::default()
    };
    let err = |e: &dyn std::fmt::Display| KubeError::Config(e.to_string());
    let config = match &connect.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| err(&format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| err(&e))?
        }
        None if connect.context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| err(&e))?,
        None => Config::infer().await.map_err(|e| err(&e))?,
    };
    let namespace = config.default_namespace.clone();
    let client = build_client(config).map_err(|e| err(&e))?;
    Ok((client, namespace))
}

/// kube's default client stack, on sockets with Nagle's algorithm off.
/// With it on, a request that follows another small write (a resumed TLS
/// session's last handshake message) waits for the server's delayed ACK,
/// 40 ms.
fn build_client(config: Config) -> Result<Client, kube::Error> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use kube::client::ConfigExt;
    use kube::client::retry::RetryPolicy;
    use tower::retry::RetryLayer;
    if config.proxy_url.is_some() {
        // kube's own stack says which proxies it supports.
        return Client::try_from(config);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = config.rustls_https_connector_with_connector(http)?;
    // Timeouts as kube sets them: the connect timeout covers TLS too.
    let mut timed = hyper_timeout::TimeoutConnector::new(https);
    timed.set_connect_timeout(config.connect_timeout);
    timed.set_read_timeout(config.read_timeout);
    timed.set_write_timeout(config.write_timeout);
    timed.set_reset_reader_on_write(config.reset_reader_on_write);
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(timed);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(Client::new(service, config.default_namespace))
}

/// Whether a failed request may succeed when sent again.
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Retries `f` on transient errors with exponential back-off, for at most a
/// minute.
async fn retry<T, F, Fut>(mut f: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut delay = Duration::from_millis(200);
    loop {
        match f().await {
            Err(e) if transient(&e) && Instant::now() + delay < give_up => {
                tracing::debug!("retrying after a transient API error: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// What the run asks of the pod.
#[derive(Debug)]
enum Msg {
    /// The verdict is in: read the last logs, then delete the pod or not.
    Finish { delete: bool },
    /// Stop now: delete the pod (or not; with this grace period in
    /// seconds, or the pod's) and stop following it.
    Interrupt { delete: bool, grace: Option<u32> },
}

/// Pods on a Kubernetes cluster, through one client.
#[derive(Clone)]
pub struct KubeRuntime {
    client: Client,
    namespace: String,
    /// One watch per namespace for every run, if shared.
    watches: Option<Arc<SharedWatches>>,
}

impl KubeRuntime {
    /// Connects as `connect` says; pods go to the kubeconfig's namespace
    /// unless a run names one.
    pub async fn connect(connect: &Connect) -> Result<Self, KubeError> {
        let (client, namespace) = client(connect).await?;
        Ok(KubeRuntime::new(client, namespace))
    }

    /// A runtime on an existing client.
    pub fn new(client: Client, default_namespace: impl Into<String>) -> Self {
        KubeRuntime {
            client,
            namespace: default_namespace.into(),
            watches: None,
        }
    }

    /// Runs follow their pods through one watch per namespace, shared by
    /// all of them, instead of one watch each: for a server that runs
    /// many at once. Logs are still read per pod.
    pub fn with_shared_watch(mut self) -> Self {
        self.watches = Some(Arc::new(SharedWatches::new(self.client.clone())));
        self
    }
}

impl super::Runtime for KubeRuntime {
    fn name(&self) -> &'static str {
        "kube"
    }

    fn reattaches(&self) -> bool {
        true
    }

    fn start(&self, start: Start) -> BoxFuture<'_, Result<Started, StartError>> {
        Box::pin(async move {
            let namespace = start.namespace.clone().unwrap_or(self.namespace.clone());
            Ok(start_pod(self.client.clone(), self.watches.clone(), &namespace, start).await?)
        })
    }
}

/// Creates the pod (or re-attaches to the run's existing pod) and starts
/// following it.
async fn start_pod(
    client: Client,
    watches: Option<Arc<SharedWatches>>,
    namespace: &str,
    start: Start,
) -> Result<Started, KubeError> {
    let Start {
        mut pod,
        run_id,
        stdin,
        existing_only,
        keep_when_dropped,
        ..
    } = start;
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(RUN_ID_LABEL.into(), run_id.clone());
    labels
        .entry(MANAGED_BY_LABEL.into())
        .or_insert_with(|| "podrun".into());
    if stdin.is_some() {
        // Attaching needs the container to keep stdin open until then.
        for c in pod.spec.iter_mut().flat_map(|s| s.containers.iter_mut()) {
            if c.name == "worker" {
                c.stdin = Some(true);
                c.stdin_once = Some(true);
            }
        }
    }
    let ours = |p: &Pod| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(RUN_ID_LABEL))
            .map(String::as_str)
            == Some(run_id.as_str())
    };
    super::name_for_run(&mut pod, &run_id);
    let name = pod.metadata.name.clone().unwrap_or_default();
    let existing = retry(|| api.get_opt(&name))
        .await
        .map_err(KubeError::api("look for the run's pod"))?;
    let (found, reattached) = match existing {
        // The run's label and name can be known to others: the pod must
        // also run what this run would run.
        Some(p) if ours(&p) && same_workload(&pod, &p) => (p, true),
        Some(_) => return Err(KubeError::NameTaken(name)),
        None if existing_only => return Err(KubeError::NoPod(name)),
        None => {
            let created = retry(|| async {
                match api.create(&PostParams::default(), &pod).await {
                    // An earlier attempt may have been applied even
                    // though its answer was lost: one pod per run.
                    Err(kube::Error::Api(s)) if s.code == 409 => match api.get_opt(&name).await? {
                        Some(p) if ours(&p) && same_workload(&pod, &p) => Ok(p),
                        _ => Err(kube::Error::Api(s)),
                    },
                    other => other,
                }
            })
            .await;
            match created {
                Ok(p) => (p, false),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    return Err(KubeError::NameTaken(name));
                }
                Err(kube::Error::Api(s))
                    if s.code == 404
                        && s.details.as_ref().is_some_and(|d| d.kind == "namespaces") =>
                {
                    return Err(KubeError::NamespaceNotFound(namespace.to_string()));
                }
                Err(e) => return Err(KubeError::api("create the pod")(e)),
            }
        }
    };
    let (events_tx, events) = mpsc::unbounded_channel();
    let (control, control_rx) = mpsc::unbounded_channel();
    let (stop_api, stop_events) = (api.clone(), events_tx.clone());
    let follower = Follower {
        progress: Arc::new(AtomicU64::new(0)),
        api,
        events_api: Api::namespaced(client, namespace),
        name: name.clone(),
        namespace: namespace.to_string(),
        watches,
        keep_when_dropped,
        events: events_tx,
    };
    tokio::spawn(follower.run(found, control_rx, stdin));
    Ok(Started {
        events: super::stream(events),
        control: Box::new(KubeControl {
            follower: control,
            api: stop_api,
            name: name.clone(),
            events: stop_events,
        }),
        namespace: Some(namespace.to_string()),
        name,
        reattached,
    })
}

/// Whether `existing` runs what `wanted` would: each container sent is
/// there with the same image, command, arguments and environment. The API
/// server fills in defaults and drops empty fields, and admission webhooks
/// may add containers and variables, so whole specs cannot be compared:
/// what was sent must be there, more may be.
fn same_workload(wanted: &Pod, existing: &Pod) -> bool {
    fn containers(p: &Pod) -> Vec<&Container> {
        p.spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
            .collect()
    }
    fn list(v: &Option<Vec<String>>) -> &[String] {
        v.as_deref().unwrap_or_default()
    }
    fn value(v: &EnvVar) -> (&str, bool) {
        (v.value.as_deref().unwrap_or(""), v.value_from.is_some())
    }
    let found = containers(existing);
    containers(wanted).into_iter().all(|w| {
        found.iter().any(|f| {
            f.name == w.name
                && f.image == w.image
                && list(&f.command) == list(&w.command)
                && list(&f.args) == list(&w.args)
                && w.env.iter().flatten().all(|we| {
                    f.env
                        .iter()
                        .flatten()
                        .any(|fe| fe.name == we.name && value(fe) == value(we))
                })
        })
    })
}

struct KubeControl {
    follower: mpsc::UnboundedSender<Msg>,
    api: Api<Pod>,
    name: String,
    events: mpsc::UnboundedSender<Event>,
}

impl Control for KubeControl {
    fn finish(&self, delete: bool) {
        let _ = self.follower.send(Msg::Finish { delete });
    }

    /// A cluster pod is stopped by deleting it: with its grace period, or
    /// for a kill with a second (kubectl's shortest without `--force`:
    /// the object goes only once the node has stopped the containers).
    fn stop(&self, how: Stop, delete: bool) {
        let grace = (how == Stop::Kill).then_some(1);
        let _ = self.follower.send(Msg::Interrupt { delete, grace });
        // The follower may be past reading its messages (it already
        // deleted the pod with its grace period, or reads the last logs):
        // a kill shortens the grace period whatever it is doing.
        if how == Stop::Kill && delete {
            let (api, name, events) = (self.api.clone(), self.name.clone(), self.events.clone());
            tokio::spawn(async move { delete_pod(&api, &name, grace, &events).await });
        }
    }
}

struct Follower {
    /// Bytes of log passed on, to tell a slow stream from a stuck one.
    progress: Arc<AtomicU64>,
    api: Api<Pod>,
    events_api: Api<KubeEvent>,
    name: String,
    namespace: String,
    watches: Option<Arc<SharedWatches>>,
    keep_when_dropped: bool,
    events: mpsc::UnboundedSender<Event>,
}

impl Follower {
    async fn run(
        self,
        found: Pod,
        mut control: mpsc::UnboundedReceiver<Msg>,
        stdin: Option<Stdin>,
    ) {
        // The pod as created (or found) is the first status: the lifecycle
        // and the log followers have it before the watch says anything.
        // The shared watch's events of another pod of the same name (an
        // earlier run's) are not this run's.
        let uid = found.metadata.uid.clone();
        // One copy of each pod seen, shared by the lifecycle and the log
        // followers.
        let found = Arc::new(found);
        let (pod_tx, pod_rx) = watch::channel(Some(Arc::clone(&found)));
        let _ = self.events.send(Event::Status(found, "[]".into()));
        let (finishing, finishing_rx) = watch::channel(false);
        let logs = tokio::spawn(follow_logs(
            self.progress.clone(),
            self.api.clone(),
            self.name.clone(),
            pod_rx.clone(),
            finishing_rx,
            self.events.clone(),
        ));
        if let Some(input) = stdin {
            tokio::spawn(attach_stdin(
                self.api.clone(),
                self.name.clone(),
                pod_rx.clone(),
                input,
                self.events.clone(),
            ));
        }
        let mut stream: futures::stream::BoxStream<'static, shared_watch::Item> =
            match &self.watches {
                Some(watches) => watches.follow(&self.namespace, &self.name, uid).boxed(),
                None => {
                    let config =
                        watcher::Config::default().fields(&format!("metadata.name={}", self.name));
                    watcher(self.api.clone(), config)
                        .default_backoff()
                        .map(|item| item.map_err(|e| e.to_string()))
                        .boxed()
                }
            };
        let watching = Instant::now();
        // A pod stuck while starting may not change again (a volume that
        // cannot mount shows only in events): its events are read again
        // every few seconds.
        let mut refresh = tokio::time::interval(EVENTS_REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.reset();
        let mut latest: Option<Arc<Pod>> = None;
        let mut done: Option<bool> = None;
        // Whether the pod was in the list of a (re)started watch: a pod
        // deleted while the watch was down shows only by its absence.
        let mut listed: Option<bool> = None;
        let mut failures = 0u32;
        loop {
            tokio::select! {
                item = stream.next() => match item {
                    Some(Ok(watcher::Event::Init)) => listed = Some(false),
                    Some(Ok(watcher::Event::InitDone)) => {
                        if listed.take() == Some(false) {
                            let _ = pod_tx.send(None);
                            let _ = self.events.send(Event::Gone);
                        }
                    }
                    Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                        failures = 0;
                        if listed.is_some() {
                            listed = Some(true);
                        }
                        let pod = Arc::new(pod);
                        let _ = pod_tx.send(Some(Arc::clone(&pod)));
                        let events = if needs_explaining(&pod, pending_for(&pod, watching)) {
                            // Fresh events: the next re-read is a full period away.
                            refresh.reset();
                            self.recent_events().await
                        } else {
                            "[]".into()
                        };
                        latest = Some(Arc::clone(&pod));
                        let _ = self.events.send(Event::Status(pod, events));
                    }
                    Some(Ok(watcher::Event::Delete(_))) => {
                        let _ = pod_tx.send(None);
                        let _ = self.events.send(Event::Gone);
                    }
                    // The watcher resumes by itself (410 Gone included); one
                    // that keeps failing (RBAC, a broken proxy) is said once.
                    Some(Err(e)) => {
                        failures += 1;
                        tracing::debug!("watch of pod {}: {e}; resuming", self.name);
                        if failures == 10 {
                            let _ = self.events.send(Event::Warning(format!(
                                "the watch of pod {} keeps failing: {e}",
                                self.name
                            )));
                        }
                    }
                    None => break,
                },
                _ = refresh.tick() => {
                    if let Some(pod) = &latest
                        && needs_explaining(pod, pending_for(pod, watching))
                    {
                        let events = self.recent_events().await;
                        let _ = self.events.send(Event::Status(Arc::clone(pod), events));
                    }
                }
                msg = control.recv() => match msg {
                    Some(Msg::Finish { delete }) => {
                        done = Some(delete);
                        break;
                    }
                    Some(Msg::Interrupt { delete, grace }) => {
                        if delete {
                            self.delete(grace).await;
                        }
                        logs.abort();
                        let _ = self.events.send(Event::Finished);
                        return;
                    }
                    // The run was dropped: nobody follows the pod any more,
                    // so it does not outlive the run (unless another
                    // follows it now).
                    None => {
                        logs.abort();
                        if !self.keep_when_dropped {
                            self.delete(None).await;
                        }
                        return;
                    }
                },
            }
        }
        // Every line is printed before the run ends: the followers finish
        // once their containers have ended and a last read is done; those
        // of containers that never started stop waiting now.
        let _ = finishing.send(true);
        let mut logs = logs;
        let mut seen = self.progress.load(Ordering::Relaxed);
        // No fixed limit while lines keep coming; a stream stuck for 5 s
        // is given up.
        while tokio::time::timeout(Duration::from_secs(5), &mut logs)
            .await
            .is_err()
        {
            let now = self.progress.load(Ordering::Relaxed);
            if now == seen {
                let _ = self.events.send(Event::LogGap {
                    container: None,
                    message: format!(
                        "the last logs of pod {} did not arrive; giving up on them",
                        self.name
                    ),
                });
                logs.abort();
                break;
            }
            seen = now;
        }
        if done.unwrap_or(true) {
            self.delete(None).await;
        }
        let _ = self.events.send(Event::Finished);
    }

    async fn recent_events(&self) -> String {
        // From the API server's cache: events are advice, and reading them
        // from etcd costs it the namespace's every event.
        let lp = ListParams::default()
            .match_any()
            .fields(&format!("involvedObject.name={}", self.name));
        match self.events_api.list(&lp).await {
            Ok(list) => {
                let mut items = list.items;
                items.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
                let start = items.len().saturating_sub(20);
                serde_json::to_string(&items[start..]).unwrap_or_else(|_| "[]".into())
            }
            Err(_) => "[]".into(),
        }
    }

    async fn delete(&self, grace: Option<u32>) {
        delete_pod(&self.api, &self.name, grace, &self.events).await;
    }
}

/// Deletes pod `name` (gone already is fine); a failure is a warning.
async fn delete_pod(
    api: &Api<Pod>,
    name: &str,
    grace: Option<u32>,
    events: &mpsc::UnboundedSender<Event>,
) {
    let dp = DeleteParams {
        grace_period_seconds: grace,
        ..DeleteParams::default()
    };
    match retry(|| api.delete(name, &dp)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            let _ = events.send(Event::Warning(format!(
                "could not delete pod {name}: {}",
                describe(&e)
            )));
        }
    }
}

/// The containers whose logs to follow, in the order they run, and whether
/// each runs alone before the others (an init container).
fn containers(pod: &Pod) -> Vec<(String, bool)> {
    let spec = pod.spec.clone().unwrap_or_default();
    // Sidecars (init containers that always restart) run beside the
    // containers, not before them.
    let inits = spec.init_containers.iter().flatten().map(|c| {
        (
            c.name.clone(),
            c.restart_policy.as_deref() != Some("Always"),
        )
    });
    inits
        .chain(spec.containers.iter().map(|c| (c.name.clone(), false)))
        .collect()
}

/// Whether the classifiers get the pod's events with this status. Events
/// explain a pod that does not start: one pending for a while, not
/// scheduled, or with a container waiting for something other than its
/// creation. Once it runs its status says it all. Listing events costs the
/// API server a pass over the namespace's events, so a pod starting as
/// usual is spared it, and so is the node starting it.
fn needs_explaining(pod: &Pod, pending_for: Duration) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return pending_for >= EXPLAIN_AFTER;
    };
    if status.phase.as_deref().is_some_and(|p| p != "Pending") {
        return false;
    }
    let unscheduled = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "PodScheduled" && c.status == "False");
    let stuck = super::container_statuses(pod).any(|c| {
        c.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref())
            .is_some_and(|r| !matches!(r, "ContainerCreating" | "PodInitializing"))
    });
    unscheduled || stuck || pending_for >= EXPLAIN_AFTER
}

/// How long a pod may be pending before its events are read anyway.
const EXPLAIN_AFTER: Duration = Duration::from_secs(1);

/// How often the events of a pod that does not start are read again.
const EVENTS_REFRESH: Duration = Duration::from_secs(3);

/// How long the pod has existed: since its creation by the API server's
/// clock, or at least since podrun began watching it.
fn pending_for(pod: &Pod, watching: Instant) -> Duration {
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| jiff::Timestamp::now().duration_since(t.0).try_into().ok())
        .unwrap_or_default();
    watching.elapsed().max(created)
}

fn status_of<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    super::container_statuses(pod).find(|c| c.name == name)
}

fn started(pod: &Pod, name: &str) -> bool {
    status_of(pod, name)
        .and_then(|s| s.state.as_ref())
        .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
}

/// Whether a container has ended or is being stopped for good. A pod that
/// failed (its deadline passed, say) may keep saying its containers run
/// while the kubelet kills them: the status of a finished pod is not
/// updated again.
fn ended(pod: &Pod, name: &str) -> bool {
    pod_over(pod)
        || status_of(pod, name)
            .and_then(|s| s.state.as_ref())
            .is_some_and(|st| st.terminated.is_some())
}

fn pod_over(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Follows the logs of every container: init containers one after the
/// other, then the containers together.
async fn follow_logs(
    progress: Arc<AtomicU64>,
    api: Api<Pod>,
    name: String,
    pods: watch::Receiver<Option<Arc<Pod>>>,
    finishing: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut rx = pods.clone();
    let first = loop {
        if let Some(p) = rx.borrow_and_update().clone() {
            break p;
        }
        if *finishing.borrow() || rx.changed().await.is_err() {
            return;
        }
    };
    let (inits, mains): (Vec<_>, Vec<_>) =
        containers(&first).into_iter().partition(|(_, init)| *init);
    for (c, _) in inits {
        follow(
            &progress,
            &api,
            &name,
            &c,
            pods.clone(),
            finishing.clone(),
            &events,
        )
        .await;
    }
    let mains = mains.into_iter().map(|(c, _)| {
        let (api, name, pods, events) = (api.clone(), name.clone(), pods.clone(), events.clone());
        let (finishing, progress) = (finishing.clone(), progress.clone());
        async move { follow(&progress, &api, &name, &c, pods, finishing, &events).await }
    });
    futures::future::join_all(mains).await;
}

/// Follows one container's log until it has ended, resuming dropped
/// streams from the last timestamp seen without repeating or losing lines.
async fn follow(
    progress: &AtomicU64,
    api: &Api<Pod>,
    name: &str,
    container: &str,
    mut pods: watch::Receiver<Option<Arc<Pod>>>,
    mut finishing: watch::Receiver<bool>,
    events: &mpsc::UnboundedSender<Event>,
) {
    // Wait until the container has started (or the run is over without it).
    let mut never_seen = false;
    loop {
        let state = pods.borrow_and_update().clone();
        match state {
            Some(p) if started(&p, container) => break,
            // Over before the container was seen to run: it may have run
            // all the same (its Running status lost to a deadline that
            // killed it), so what it printed is read once.
            Some(p) if pod_over(&p) => {
                never_seen = true;
                break;
            }
            _ if *finishing.borrow() => return,
            None if pods.has_changed().is_err() => return,
            _ => {}
        }
        tokio::select! {
            changed = pods.changed() => if changed.is_err() { return },
            _ = finishing.changed() => {}
        }
    }
    let mut last: Seen = None;
    let mut attempts = 0u32;
    // Whether the last stream was read to its end.
    let mut complete;
    // The start of a line whose stream ended before its newline.
    let mut head: Option<Vec<u8>> = None;
    loop {
        let ended_before = never_seen || pods.borrow().as_ref().is_none_or(|p| ended(p, container));
        let since = last.map(|(ts, _)| {
            // sinceTime has whole seconds: start at the second of the last
            // line and skip what was already printed.
            let secs = ts.as_second();
            jiff::Timestamp::from_second(secs).unwrap_or(ts)
        });
        let lp = LogParams {
            container: Some(container.to_string()),
            follow: !ended_before,
            timestamps: true,
            since_time: since,
            ..Default::default()
        };
        if last.is_some() {
            tracing::debug!(
                "resuming the log of {container} from {since:?} (follow: {})",
                lp.follow
            );
        }
        match api.log_stream(name, &lp).await {
            Ok(stream) => {
                attempts = 0;
                let mut skip = last.map(|(_, n)| n).unwrap_or(0);
                // A resumed stream must overlap what was printed; otherwise
                // lines may be missing (a rotated log), and the user is told.
                let mut unverified = last;
                let mut stream = Box::pin(stream);
                let mut batch = Vec::new();
                let mut last_data = Instant::now();
                let mut pods_open = true;
                complete = false;
                let mut take = |line: &[u8], batch: &mut Vec<u8>| {
                    let joined = join_records(line);
                    let line = joined.strip_suffix(b"\n").unwrap_or(&joined);
                    // Only the first line of a resumed stream can continue a
                    // line whose stream ended in its middle.
                    let start = if unverified.is_some() {
                        head.take()
                    } else {
                        None
                    };
                    let start = start.as_deref().map(without_stamp).unwrap_or_default();
                    let printed = print_new(line, start, &mut last, &mut skip, batch);
                    if let Some((seen, _)) = unverified.take()
                        && printed
                    {
                        let _ = events.send(Event::LogGap {
                            container: Some(container.to_string()),
                            message: format!(
                                "the log of container {container} was interrupted; lines after {seen} may be missing"
                            ),
                        });
                    }
                };
                loop {
                    // Once the verdict is in, a container still running (a
                    // sidecar) is no longer followed; an ended one is read
                    // to its last line, however long that takes.
                    let over = pods.borrow().as_ref().is_some_and(|p| ended(p, container));
                    if *finishing.borrow() && !over {
                        return;
                    }
                    // The kubelet ends a followed stream only when it next
                    // checks the container, up to a second after it ended.
                    // Once the container has ended and its stream is quiet,
                    // the rest is read without following; a stream still
                    // busy (behind the container) is read on, since only it
                    // gets lines from a log rotated in the meantime.
                    let quiet = tokio::time::sleep_until(last_data + QUIET);
                    // Whole lines as they are buffered, one event per batch:
                    // a busy container must not cost a write per line.
                    let read = tokio::select! {
                        read = futures::AsyncBufReadExt::fill_buf(&mut stream) => read,
                        _ = finishing.changed(), if !*finishing.borrow() => continue,
                        changed = pods.changed(), if lp.follow && !over && pods_open => {
                            pods_open = changed.is_ok();
                            continue;
                        }
                        _ = quiet, if lp.follow && over => break,
                    };
                    last_data = Instant::now();
                    let chunk = match read {
                        Ok([]) => {
                            complete = true;
                            break;
                        }
                        Ok(chunk) => chunk,
                        Err(e) => {
                            tracing::debug!("log stream of {container} dropped: {e}");
                            break;
                        }
                    };
                    match chunk.iter().rposition(|b| *b == b'\n') {
                        Some(end) => {
                            for line in chunk[..=end].split_inclusive(|b| *b == b'\n') {
                                take(line, &mut batch);
                            }
                            futures::AsyncBufRead::consume(stream.as_mut(), end + 1);
                        }
                        None => {
                            let mut raw = Vec::new();
                            // Half a line may stay half while a container is
                            // stopped: once the verdict is in, the rest is
                            // read without following.
                            let read = tokio::select! {
                                read = futures::AsyncBufReadExt::read_until(&mut stream, b'\n', &mut raw) => Some(read),
                                _ = finishing.wait_for(|f| *f), if lp.follow => None,
                            };
                            match read {
                                None => break,
                                // A line cut short by a dropped stream is read
                                // again whole from the resumed one.
                                Some(Ok(_)) if raw.ends_with(b"\n") || ended_before => {
                                    take(&raw, &mut batch)
                                }
                                // Kept: a resumed stream that overlaps gives
                                // the line again, whole. At a log rotation
                                // the runtime splits the line it is writing
                                // (a partial record ends the old file, the
                                // rest opens the new one), and a resumed
                                // stream, which reads only the new file,
                                // starts with the rest of this line.
                                _ => {
                                    head = Some(raw);
                                    break;
                                }
                            }
                        }
                    }
                    if !batch.is_empty() {
                        progress.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        let line = std::mem::take(&mut batch);
                        let _ = events.send(Event::Log {
                            container: container.to_string(),
                            line,
                        });
                    }
                }
            }
            Err(e) => {
                complete = false;
                attempts += 1;
                tracing::debug!("cannot read the log of {container}: {e}");
                // A container that never ran has no log: nothing is missing.
                if never_seen && attempts > 2 {
                    return;
                }
                if attempts > 20 {
                    let _ = events.send(Event::LogGap {
                        container: Some(container.to_string()),
                        message: format!(
                            "gave up reading the log of container {container}: {}",
                            describe(&e)
                        ),
                    });
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250 * u64::from(attempts.min(8)))).await;
            }
        }
        // The stream read to its end after the container ended: done. A
        // last read that failed is tried again, from the last line printed.
        if ended_before && complete {
            return;
        }
        let ended_now = match pods.borrow().as_ref() {
            None => return,
            Some(p) => ended(p, container),
        };
        // The stream ended before the pod's status says the container did:
        // wait for the status (or a moment) before reading again.
        if !ended_now {
            let _ = tokio::time::timeout(Duration::from_millis(500), pods.changed()).await;
        }
    }
}

/// How long the followed stream of an ended container must be quiet before
/// the rest of its log is read without following.
const QUIET: Duration = Duration::from_millis(50);

/// The last timestamp printed and how many lines carried it.
type Seen = Option<(jiff::Timestamp, usize)>;

/// How much of a line containerd writes as one log record (its default
/// `max_container_log_line_size`); a longer line becomes several records.
const CRI_RECORD: usize = 16 * 1024;

/// A line longer than a record comes from the kubelet with each record's
/// timestamp in front of its part (`TS1 part1TS2 part2…`, as `kubectl logs
/// --timestamps` shows it). Removes the timestamps inside `raw`, which sit
/// exactly where a record's content ends.
fn join_records(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let Some(start) = raw.iter().position(|b| *b == b' ').map(|i| i + 1) else {
        return raw.into();
    };
    if raw.len() - start <= CRI_RECORD {
        return raw.into();
    }
    let mut out = raw[..start].to_vec();
    let mut rest = &raw[start..];
    while rest.len() > CRI_RECORD {
        let (part, next) = rest.split_at(CRI_RECORD);
        out.extend_from_slice(part);
        rest = match record_stamp(next) {
            Some(len) => &next[len..],
            None => next,
        };
    }
    out.extend_from_slice(rest);
    out.into()
}

/// The length of the kubelet's `RFC3339Nano ` timestamp at the start of
/// `text`, if one is there.
fn record_stamp(text: &[u8]) -> Option<usize> {
    let end = text.iter().take(40).position(|b| *b == b' ')?;
    let stamp = std::str::from_utf8(&text[..end]).ok()?;
    let shaped = stamp.len() >= 20 && stamp.as_bytes()[10] == b'T' && stamp.ends_with('Z');
    (shaped && stamp.parse::<jiff::Timestamp>().is_ok()).then_some(end + 1)
}

/// `raw` without the kubelet's timestamp in front.
fn without_stamp(raw: &[u8]) -> &[u8] {
    match raw.iter().position(|b| *b == b' ') {
        Some(i) => &raw[i + 1..],
        None => raw,
    }
}

/// Appends `raw` (a line with the kubelet's RFC 3339 timestamp in front)
/// to `out` without its timestamp, unless an earlier stream printed it;
/// `start` is the beginning of the line when `raw` continues a line cut
/// short (empty otherwise). `skip` counts the lines with the last timestamp
/// that the current stream has yet to pass over. Returns whether the line
/// was taken.
fn print_new(
    raw: &[u8],
    start: &[u8],
    last: &mut Seen,
    skip: &mut usize,
    out: &mut Vec<u8>,
) -> bool {
    let stamp = |t: &[u8]| std::str::from_utf8(t).ok()?.parse::<jiff::Timestamp>().ok();
    let (ts, text) = match raw.iter().position(|b| *b == b' ') {
        Some(i) => match stamp(&raw[..i]) {
            Some(ts) => (Some(ts), &raw[i + 1..]),
            None => (None, raw),
        },
        None => (stamp(raw), &b""[..]),
    };
    if let Some(ts) = ts {
        match last {
            Some((seen, _)) if ts < *seen => return false,
            Some((seen, count)) if ts == *seen => {
                if *skip > 0 {
                    *skip -= 1;
                    return false;
                }
                *count += 1;
            }
            _ => {
                *last = Some((ts, 1));
                *skip = 0;
            }
        }
    }
    // Whole lines are decoded at once: a character cut where the line was
    // cut comes out whole.
    if start.is_empty() {
        out.extend_from_slice(String::from_utf8_lossy(text).as_bytes());
    } else {
        let line = [start, text].concat();
        out.extend_from_slice(String::from_utf8_lossy(&line).as_bytes());
    }
    out.push(b'\n');
    true
}

/// Sends `source` to the `worker` container's stdin once it runs.
async fn attach_stdin(
    api: Api<Pod>,
    name: String,
    mut pods: watch::Receiver<Option<Arc<Pod>>>,
    mut source: Stdin,
    events: mpsc::UnboundedSender<Event>,
) {
    loop {
        let ready = pods
            .borrow_and_update()
            .as_ref()
            .map(|p| started(p, "worker"));
        match ready {
            Some(true) => break,
            None if pods.has_changed().is_err() => return,
            _ => {}
        }
        if pods.changed().await.is_err() {
            return;
        }
    }
    let params = AttachParams::default()
        .container("worker")
        .stdin(true)
        .stdout(false)
        .stderr(false);
    match api.attach(&name, &params).await {
        Ok(mut attached) => {
            if let Some(mut input) = attached.stdin() {
                let _ = tokio::io::copy(&mut source, &mut input).await;
                use tokio::io::AsyncWriteExt;
                let _ = input.shutdown().await;
            }
            // Before the v5 attach protocol an API server cannot close stdin
            // alone: ending the session closes it (stdinOnce). The session
            // gets a second to send the last bytes; dropping it ends it.
            let _ = tokio::time::timeout(Duration::from_secs(1), attached.join()).await;
        }
        Err(e) => {
            let _ = events.send(Event::Warning(format!(
                "cannot attach stdin to container worker: {}",
                describe(&e)
            )));
        }
    }
}

/// The pod `namespace/name`, or `None` when there is none.
pub async fn get(client: Client, namespace: &str, name: &str) -> Result<Option<Pod>, KubeError> {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    retry(|| api.get_opt(name))
        .await
        .map_err(KubeError::api("read the pod"))
}

/// Deletes podrun's pods older than `age` in `namespace` (all namespaces
/// when `None`) that match `selector` too, if given; returns the names
/// deleted.
pub async fn gc(
    client: Client,
    namespace: Option<&str>,
    selector: Option<&str>,
    age: Duration,
    dry_run: bool,
) -> Result<Vec<String>, KubeError> {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut labels = format!("{MANAGED_BY_LABEL}=podrun");
    if let Some(extra) = selector {
        labels = format!("{labels},{extra}");
    }
    let lp = ListParams::default().labels(&labels);
    let pods = retry(|| api.list(&lp))
        .await
        .map_err(KubeError::api("list podrun's pods"))?;
    let now = jiff::Timestamp::now();
    let mut deleted = Vec::new();
    for p in pods.items {
        let created = p
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(now);
        let old = now.duration_since(created).unsigned_abs() >= age;
        let (Some(name), Some(ns)) = (p.metadata.name.clone(), p.metadata.namespace.clone()) else {
            continue;
        };
        if !old {
            continue;
        }
        if !dry_run {
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let dp = DeleteParams::default();
            retry(|| api.delete(&name, &dp))
                .await
                .map_err(KubeError::api("delete a pod"))?;
        }
        deleted.push(format!("{ns}/{name}"));
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_is_only_reattached_to_when_it_runs_the_same_workload() {
        let pod = |v: serde_json::Value| -> Pod { serde_json::from_value(v).unwrap() };
        let wanted = pod(serde_json::json!({"spec": {"containers": [
            {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo hi"],
             "env": [{"name": "A", "value": "1"},
                     {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}));
        // As the API server returns it: defaults filled in.
        let served = pod(serde_json::json!({"spec": {"containers": [
            {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo hi"],
             "imagePullPolicy": "Always", "terminationMessagePath": "/dev/termination-log",
             "env": [{"name": "A", "value": "1"},
                     {"name": "B", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}]}],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}}));
        assert!(same_workload(&wanted, &served));
        let planted = pod(serde_json::json!({"spec": {"containers": [
            {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo forged"]}]}}));
        assert!(!same_workload(&wanted, &planted));
        let no_value_from = pod(serde_json::json!({"spec": {
            "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo hi"],
             "env": [{"name": "A", "value": "1"}, {"name": "B"}]}]}}));
        assert!(!same_workload(&wanted, &no_value_from));
        // Empty lists and values come back absent; a webhook adds a
        // sidecar and a variable: still the run's own pod.
        let sent = pod(serde_json::json!({"spec": {"containers": [
            {"name": "main", "image": "busybox", "args": [], "env": [{"name": "E", "value": ""}]}]}}));
        let injected = pod(serde_json::json!({"spec": {"containers": [
            {"name": "main", "image": "busybox", "env": [{"name": "E"}, {"name": "AWS_REGION", "value": "x"}]},
            {"name": "istio-proxy", "image": "proxy"}]}}));
        assert!(same_workload(&sent, &injected));
        let other_image = pod(serde_json::json!({"spec": {"containers": [
            {"name": "main", "image": "evil", "env": [{"name": "E"}]}]}}));
        assert!(!same_workload(&sent, &other_image));
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "main"}]},
            "status": status,
        }))
        .unwrap()
    }

    fn waiting(reason: &str) -> serde_json::Value {
        serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{
                "name": "main", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": reason}},
            }],
        })
    }

    #[test]
    fn a_pod_is_pending_since_its_creation() {
        let mut p = pod(serde_json::json!({"phase": "Pending"}));
        let created = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(5);
        p.metadata.creation_timestamp = serde_json::from_value(serde_json::json!(created)).ok();
        assert!(pending_for(&p, Instant::now()) >= Duration::from_secs(5));
        // A clock behind the API server's counts from the watch.
        let future = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
        p.metadata.creation_timestamp = serde_json::from_value(serde_json::json!(future)).ok();
        assert!(pending_for(&p, Instant::now()) < Duration::from_secs(1));
    }

    #[test]
    fn only_a_pod_that_does_not_start_as_usual_gets_its_events() {
        let soon = Duration::from_millis(300);
        let usual = [
            pod(serde_json::json!({"phase": "Pending"})),
            pod(waiting("ContainerCreating")),
            pod(waiting("PodInitializing")),
        ];
        for p in &usual {
            assert!(!needs_explaining(p, soon), "{:?}", p.status);
            assert!(needs_explaining(p, EXPLAIN_AFTER), "{:?}", p.status);
        }
        assert!(needs_explaining(&pod(waiting("ErrImagePull")), soon));
        let unschedulable = pod(serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        }));
        assert!(needs_explaining(&unschedulable, soon));
        let running = pod(serde_json::json!({"phase": "Running"}));
        assert!(!needs_explaining(&running, Duration::from_secs(60)));
    }

    #[test]
    fn a_line_written_as_several_records_is_joined() {
        let content = format!("start{}end", "y".repeat(40_000));
        let (a, b) = content.split_at(CRI_RECORD);
        let (b, c) = b.split_at(CRI_RECORD);
        let raw = format!(
            "2026-11-24T10:03:16.89241Z {a}2026-11-24T10:03:16.892412914Z {b}2026-11-24T10:03:16.9Z {c}\n"
        );
        let joined = join_records(raw.as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&joined),
            format!("2026-11-24T10:03:16.89241Z {content}\n")
        );
        // Text that merely looks like a timestamp elsewhere is the user's.
        let own = format!(
            "2026-11-24T10:03:16Z {} 2026-11-24T10:03:16Z x\n",
            "a".repeat(20)
        );
        assert_eq!(join_records(own.as_bytes()).as_ref(), own.as_bytes());
        // A multi-byte character cut between records comes out whole.
        let wide = format!("{}é{}", "a".repeat(CRI_RECORD - 1), "b".repeat(10));
        let bytes = wide.as_bytes();
        let mut raw = b"2026-11-24T10:03:16Z ".to_vec();
        raw.extend_from_slice(&bytes[..CRI_RECORD]);
        raw.extend_from_slice(b"2026-11-24T10:03:17Z ");
        raw.extend_from_slice(&bytes[CRI_RECORD..]);
        let joined = join_records(&raw);
        assert_eq!(&joined[21..], wide.as_bytes());
    }

    /// Feeds streams of timestamped lines through `print_new` as `follow`
    /// does on each reconnection, and returns what was printed.
    fn replay(streams: &[&[&str]]) -> Vec<String> {
        let mut last: Seen = None;
        let mut out = Vec::new();
        for stream in streams {
            let mut skip = last.map(|(_, n)| n).unwrap_or(0);
            for line in *stream {
                print_new(line.as_bytes(), b"", &mut last, &mut skip, &mut out);
            }
        }
        String::from_utf8(out)
            .unwrap()
            .split_inclusive('\n')
            .map(String::from)
            .collect()
    }

    const A: &str = "2026-11-23T10:00:00.100000000Z";
    const B: &str = "2026-11-23T10:00:00.200000000Z";
    const C: &str = "2026-11-23T10:00:01.000000000Z";

    #[test]
    fn a_resumed_stream_repeats_no_line_and_loses_none() {
        let first: &[&str] = &[&format!("{A} one"), &format!("{B} two")];
        // Resumed from the second of B: A and B come again.
        let second: &[&str] = &[
            &format!("{A} one"),
            &format!("{B} two"),
            &format!("{C} three"),
        ];
        assert_eq!(replay(&[first, second]), ["one\n", "two\n", "three\n"]);
    }

    #[test]
    fn a_line_cut_at_a_rotation_is_joined_and_a_repeat_is_not() {
        let mut last: Seen = None;
        let mut out = Vec::new();
        let mut skip = 0;
        print_new(
            format!("{A} one").as_bytes(),
            b"",
            &mut last,
            &mut skip,
            &mut out,
        );
        // The old stream ended on "tw" and a cut "é" (the first of its two
        // bytes); the new file starts with the rest of that line.
        let cut = "twé".as_bytes();
        let head = [format!("{B} ").as_bytes(), &cut[..cut.len() - 1]].concat();
        let rest = [format!("{C} ").as_bytes(), &cut[cut.len() - 1..], b"o"].concat();
        let mut skip = 1;
        assert!(print_new(
            &rest,
            without_stamp(&head),
            &mut last,
            &mut skip,
            &mut out
        ));
        assert_eq!(String::from_utf8(out).unwrap(), "one\ntwéo\n");
        // A resumed stream that overlaps repeats the line, whole: the kept
        // start is not used.
        let mut out = Vec::new();
        let mut skip = 1;
        let repeat = format!("{A} one");
        assert!(!print_new(
            repeat.as_bytes(),
            b"tw",
            &mut last,
            &mut skip,
            &mut out
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn lines_with_the_same_timestamp_are_counted() {
        let first: &[&str] = &[&format!("{B} x1"), &format!("{B} x2")];
        let second: &[&str] = &[&format!("{B} x1"), &format!("{B} x2"), &format!("{B} x3")];
        assert_eq!(replay(&[first, second]), ["x1\n", "x2\n", "x3\n"]);
    }
}
