//! The command line as clap reads it: every command, its arguments and
//! their help. The completions and the man page come from these too.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run a command in a Kubernetes pod and report how it went.
#[derive(Debug, Parser)]
#[command(name = "podrun", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,

    /// Where compiled hooks are cached [default: the user's cache directory]
    #[arg(long, global = true, env = "PODRUN_CACHE_DIR", value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,

    /// Show podrun's own debug messages
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run an application's command in a pod and report how it went
    Run(Box<RunCommand>),
    /// Print the pod podrun would create for an application
    Render(Box<RenderArgs>),
    /// Pod manifests without an application config
    #[command(subcommand)]
    Pod(PodCommand),
    /// Built-in hooks
    #[command(subcommand)]
    Hooks(HooksCommand),
    /// Tools for hook authors
    #[command(subcommand)]
    Hook(HookCommand),
    /// Show a pod's state, and which step of a sequenced pod is running
    Status(StatusArgs),
    /// Delete podrun's pods left on the cluster (finished or orphaned)
    Gc(GcArgs),
    /// Apply mutate hooks (default: sequence) to the Pods, Jobs and CronJobs of a YAML file
    Convert(ConvertArgs),
    /// Serve runs over HTTP, stored so that they survive a restart
    Serve(Box<ServeArgs>),
    /// Read and steer the runs of a podrun server
    #[command(subcommand)]
    Runs(RunsCommand),
    /// API tokens for tenants
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print a shell completion script (e.g. `podrun completions bash >
    /// /etc/bash_completion.d/podrun`)
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print podrun's man page (roff; e.g. `podrun man | man -l -`)
    Man,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Print a new random token, then the hash to put in a tenant's
    /// `tokens:` (the token itself goes to the tenant, never the config)
    New,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PodCommand {
    /// Run a Pod manifest as it is
    Run(Box<PodRunArgs>),
}

/// Where the pod runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RuntimeKind {
    /// The pod's containers as processes on this machine
    Local,
    /// A Kubernetes cluster
    Kube,
}

/// Which cluster.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// The kubeconfig file [default: $KUBECONFIG, ~/.kube/config, then in-cluster]
    #[arg(
        short = 'k',
        long = "kube-config",
        visible_alias = "kubeconfig",
        value_name = "PATH"
    )]
    pub(crate) kube_config: Option<PathBuf>,

    /// The kubeconfig context
    #[arg(long, value_name = "NAME")]
    pub(crate) context: Option<String>,
}

impl ClusterArgs {
    pub(crate) fn connect(&self) -> podrun::runtime::kube::Connect {
        podrun::runtime::kube::Connect {
            kubeconfig: self.kube_config.clone(),
            context: self.context.clone(),
        }
    }
}

/// What happens to a cluster pod at the end of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum KeepArg {
    Never,
    OnFailure,
    Always,
}

/// How a run executes and reports.
#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// Where the pod runs [default: kube when a cluster is configured, else local]
    #[arg(long, value_enum)]
    pub(crate) runtime: Option<RuntimeKind>,

    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,

    /// Keep the cluster pod at the end: never, on-failure, always
    #[arg(long, value_enum, default_value_t = KeepArg::Never)]
    pub(crate) keep: KeepArg,

    /// How long the pod may stay Pending (90s, 10m…), overriding the config's
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) pending_timeout: Option<u64>,

    /// Send podrun's stdin to the container named `worker`; its stdout is the
    /// run's output
    #[arg(long)]
    pub(crate) stdin: bool,

    /// Serve /healthy and /status as JSON on this address while the pod runs
    #[arg(long, value_name = "ADDR")]
    pub(crate) status_addr: Option<std::net::SocketAddr>,

    /// `text`: container output on stdout, a summary on stderr; `json`: the
    /// result as JSON on stdout, container output on stderr
    #[arg(short, long, value_enum, default_value_t = RunFormat::Text)]
    pub(crate) output: RunFormat,

    /// Also write the result as JSON to this file
    #[arg(long, value_name = "PATH")]
    pub(crate) result_file: Option<PathBuf>,

    /// Write the run's timeline to this file: what the classifiers saw at
    /// each step and what they decided (for `podrun hook replay`)
    #[arg(long, value_name = "PATH")]
    pub(crate) record: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RunFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct RunCommand {
    #[command(flatten)]
    pub(crate) run: RunArgs,

    #[command(flatten)]
    pub(crate) exec: ExecArgs,

    /// Set for pod-runner's invocation (no subcommand): `--command` is read
    /// as pod-runner read it, and the run needs a cluster.
    #[arg(long, hide = true)]
    pub(crate) pod_runner_form: bool,

    /// Submit the run to this `podrun serve` (http://HOST:PORT), follow it
    /// there, and exit as a local run would
    #[arg(long, env = "PODRUN_SERVER", value_name = "URL")]
    pub(crate) server: Option<String>,

    /// A file holding the server's API token [default: $PODRUN_TOKEN]
    #[arg(long, value_name = "PATH", requires = "server")]
    pub(crate) token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct PodRunArgs {
    /// The Pod manifest (YAML or JSON), `-` for stdin
    #[arg(short, long, value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// The namespace to run in [default: the manifest's, then the
    /// kubeconfig context's]
    #[arg(short, long, value_name = "NS")]
    pub(crate) namespace: Option<String>,

    /// The run's id [default: a new one]
    #[arg(long, value_name = "ID")]
    pub(crate) run_id: Option<String>,

    #[command(flatten)]
    pub(crate) exec: ExecArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ConvertArgs {
    /// The YAML file (several documents allowed), `-` for stdin
    #[arg(short, long, value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// A mutate hook to apply, in order: a built-in name or a .wasm path,
    /// optionally with settings as JSON (`sequence={"strategy":"entrypoint"}`)
    /// [default: sequence]
    #[arg(long = "hook", value_name = "HOOK[=SETTINGS]")]
    pub(crate) hooks: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The pod's name on the cluster
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub(crate) pod: Option<String>,

    /// The namespace [default: the kubeconfig's]
    #[arg(short, long, value_name = "NS")]
    pub(crate) namespace: Option<String>,

    /// Read the pod (YAML or JSON, with its status) from a file, `-` for
    /// stdin, instead of the cluster
    #[arg(short, long, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,

    /// Output format
    #[arg(short, long, value_enum, default_value_t = RunFormat::Text)]
    pub(crate) output: RunFormat,

    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// Delete podrun pods older than this (90s, 10m, 2h, 1d)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1h")]
    pub(crate) older_than: u64,

    /// Only in this namespace [default: all namespaces]
    #[arg(short, long, value_name = "NS")]
    pub(crate) namespace: Option<String>,

    /// Only pods that also match this label selector (app.kubernetes.io/name=report)
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub(crate) selector: Option<String>,

    /// Only list what would be deleted
    #[arg(long)]
    pub(crate) dry_run: bool,

    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum HookCommand {
    /// Run a hook on a fixture: a Pod, Job or CronJob (mutate), a pod with its
    /// status (classify) or a template (render)
    Test(HookTestArgs),
    /// Start a new hook: a Rust crate (or a Rhai script with --script), with
    /// a fixture and its expected result, ready for `podrun hook test`
    New(HookNewArgs),
    /// Feed a recorded timeline (`podrun run --record`) to classify hooks,
    /// in order, as the run fed it; print the verdict and where it came
    Replay(HookReplayArgs),
}

#[derive(Debug, Args)]
pub(crate) struct HookReplayArgs {
    /// The classifier chain: built-in names, .wasm components or .rhai
    /// scripts, asked in order
    #[arg(required = true, value_name = "HOOK")]
    pub(crate) hooks: Vec<String>,

    /// A timeline, or a directory of NAME.timeline.json files, each with
    /// the verdict it must come to in NAME.expect.yaml
    #[arg(long, value_name = "PATH")]
    pub(crate) timeline: PathBuf,

    /// The hooks' settings, as JSON or YAML
    #[arg(long, value_name = "SETTINGS", default_value = "{}")]
    pub(crate) with: String,

    /// The verdict it must come to (YAML: outcome, reason, exitCode,
    /// retryable, observation…); exit 1 with the differences otherwise
    #[arg(long, value_name = "FILE")]
    pub(crate) expect: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct HookNewArgs {
    /// The hook's name (lowercase letters, digits and dashes); its directory
    pub(crate) name: String,

    /// The hook's language: a Rust crate, a Rhai script (no toolchain
    /// needed), or a Python or JavaScript module built from the WIT
    #[arg(long, value_enum, default_value = "rust")]
    pub(crate) lang: LangArg,

    /// The same as `--lang rhai`
    #[arg(long, hide = true, conflicts_with = "lang")]
    pub(crate) script: bool,

    /// Where to create the hook's directory
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) dir: PathBuf,

    /// Depend on a local checkout of podrun's guest-sdk instead of the
    /// released crate
    #[arg(long, value_name = "PATH", conflicts_with = "script")]
    pub(crate) sdk_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LangArg {
    Rust,
    Rhai,
    Python,
    Js,
}

#[derive(Debug, Args)]
pub(crate) struct HookTestArgs {
    /// A built-in hook's name, a .wasm component or a .rhai script
    pub(crate) hook: String,

    /// The fixture (YAML)
    #[arg(short, long, value_name = "FILE")]
    pub(crate) input: PathBuf,

    /// The hook's settings, as JSON or YAML
    #[arg(long, value_name = "SETTINGS", default_value = "{}")]
    pub(crate) with: String,

    /// A runtime parameter the hook sees (repeatable)
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub(crate) params: Vec<(String, String)>,

    /// The kind of hook [default: the built-in's; for a .wasm or a script,
    /// the first of mutate, classify, render it provides]
    #[arg(long, value_enum)]
    pub(crate) kind: Option<KindArg>,

    /// Compare with this expected result (YAML) and fail when it differs
    #[arg(long, value_name = "FILE")]
    pub(crate) expect: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum KindArg {
    Render,
    Mutate,
    Classify,
}

#[derive(Debug, Subcommand)]
pub(crate) enum HooksCommand {
    /// List the built-in hooks
    List,
}

/// Which config file to read.
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// The config file [default: ./pod-runner.yaml]
    #[arg(long, env = "PODRUN_CONFIG", value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,

    /// The directory holding pod-runner.yaml (pod-runner's flag)
    #[arg(short = 'p', long, value_name = "DIR", conflicts_with = "config")]
    pub(crate) appconfig_path: Option<PathBuf>,
}

/// What to run: the application and the caller's values.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The application, as named in the config
    #[arg(short, long, value_name = "NAME")]
    pub(crate) application: String,

    /// The command, split like a shell would (quotes group words); no
    /// variables or globs are expanded
    #[arg(short, long, value_name = "COMMAND", allow_hyphen_values = true)]
    pub(crate) command: Option<String>,

    /// A runtime parameter the application accepts (repeatable)
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub(crate) params: Vec<(String, String)>,

    /// The namespace to run in
    #[arg(short, long, value_name = "NS")]
    pub(crate) namespace: Option<String>,

    /// The run's id [default: a new one]
    #[arg(long, value_name = "ID")]
    pub(crate) run_id: Option<String>,

    /// The run's deadline (90, 90s, 10m, 2h, 1d), overriding the config's
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) timeout: Option<u64>,

    /// The container image, overriding the config's (if the application
    /// allows it)
    #[arg(long, value_name = "IMAGE")]
    pub(crate) image: Option<String>,

    /// A JSON merge patch (YAML or JSON file) over the rendered pod, before
    /// the mutate hooks (if the application allows it)
    #[arg(long, value_name = "FILE")]
    pub(crate) pod_override: Option<PathBuf>,

    /// A resource request over the config's, `cpu=500m` or `memory=1Gi`
    /// (repeatable; within the application's `max-resources`)
    #[arg(long = "request", value_name = "RESOURCE=QUANTITY", value_parser = parse_resource)]
    pub(crate) requests: Vec<(String, String)>,

    /// A resource limit over the config's, `cpu=1` or `memory=2Gi`
    /// (repeatable; within the application's `max-resources`)
    #[arg(long = "limit", value_name = "RESOURCE=QUANTITY", value_parser = parse_resource)]
    pub(crate) limits: Vec<(String, String)>,

    /// Run as this tenant of the config: only what it may set, with its
    /// hooks
    #[arg(long, value_name = "NAME")]
    pub(crate) tenant: Option<String>,

    /// The command's arguments exactly as given, after `--` (instead of
    /// --command)
    #[arg(last = true, value_name = "ARGS", conflicts_with = "command")]
    pub(crate) args: Vec<String>,

    #[command(flatten)]
    pub(crate) config: ConfigArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,

    /// Output format
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    pub(crate) output: Format,

    /// Also show, on stderr, what each hook changed, in order
    #[arg(long)]
    pub(crate) explain: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Yaml,
    Json,
}

pub(crate) fn parse_param(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    Ok((name.to_string(), value.to_string()))
}

pub(crate) fn parse_resource(s: &str) -> Result<(String, String), String> {
    let (name, value) = parse_param(s)?;
    if name != "cpu" && name != "memory" {
        return Err(format!("{name:?}: the resources are cpu and memory"));
    }
    Ok((name, value))
}

pub(crate) fn parse_duration(s: &str) -> Result<u64, String> {
    podrun::config::parse_seconds(s)
}

/// `podrun serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,

    /// Where runs are stored: sqlite:PATH or postgres://USER@HOST/DATABASE (servers sharing one Postgres share its queue) [default: podrun.db in the user's data directory]
    #[arg(long, env = "PODRUN_STORE", value_name = "ADDRESS")]
    pub(crate) store: Option<String>,

    /// The address to listen on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub(crate) listen: std::net::SocketAddr,

    /// Where pods run [default: kube when a cluster is configured, else local]
    #[arg(long, value_enum)]
    pub(crate) runtime: Option<RuntimeKind>,

    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,

    /// Runs at once, at most; the others wait in the queue
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub(crate) max_running: usize,

    /// Bytes of log kept per run; the rest is cut, and the run says so
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub(crate) log_limit: i64,

    /// Seconds a server's hold on its runs lasts unless renewed: runs of a server that died are taken over this long after
    #[arg(long, value_name = "SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) lease: u64,

    /// How long ended runs are kept, with their logs (90s, 10m, 2h, 7d…)
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_duration)]
    pub(crate) retention: u64,

    /// A host a run's callbackUrl may name (host or host:port; * for any); repeat for more [default: none]
    #[arg(long = "callback-host", value_name = "HOST")]
    pub(crate) callback_hosts: Vec<String>,
}

/// Which server, and how to sign in.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// The podrun server
    #[arg(long, env = "PODRUN_SERVER", value_name = "URL")]
    pub(crate) server: String,

    /// A file holding the server's API token [default: $PODRUN_TOKEN]
    #[arg(long, value_name = "PATH")]
    pub(crate) token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// List runs, newest first
    List(RunsListArgs),
    /// Show a run: its state, times and verdict
    Get(RunsIdArgs),
    /// Print a run's log
    Logs(RunsLogsArgs),
    /// Cancel a run: a queued one ends at once, a running one once its pod has stopped
    Cancel(RunsIdArgs),
    /// Forget an ended run: its record and log are deleted
    Release(RunsIdArgs),
}

/// How `podrun runs` prints runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RunsFormat {
    /// For people: a table, or a summary of one run
    Text,
    /// The server's answer as JSON
    Json,
    /// The server's answer as YAML
    Yaml,
}

#[derive(Debug, Args)]
pub(crate) struct RunsListArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,

    /// Only runs in this state (queued, starting, running, succeeded, failed, cancelled, lost)
    #[arg(long)]
    pub(crate) state: Option<String>,

    /// Only runs of this application
    #[arg(short, long)]
    pub(crate) application: Option<String>,

    /// Only runs submitted at or after this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,

    /// At most this many runs
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) limit: u32,

    /// Output format
    #[arg(short, long, value_enum, default_value = "text")]
    pub(crate) output: RunsFormat,
}

#[derive(Debug, Args)]
pub(crate) struct RunsIdArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,

    /// The run's id
    pub(crate) id: String,

    /// Output format
    #[arg(short, long, value_enum, default_value = "text")]
    pub(crate) output: RunsFormat,
}

#[derive(Debug, Args)]
pub(crate) struct RunsLogsArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,

    /// The run's id
    pub(crate) id: String,

    /// Go on printing lines as they come until the run ends
    #[arg(short, long)]
    pub(crate) follow: bool,
}
