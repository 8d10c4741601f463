//! The command line: parses it, runs the command, prints errors with their
//! causes, and turns every outcome into an exit code.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::config::{self, Config};
use crate::exit::Code;
use crate::hooks::{CacheOptions, EngineOptions, Hook, Hooks, Kind, builtin, log, types};
use crate::lifecycle;
use crate::pipeline::{self, Prepared, Request};

/// Run a command in a Kubernetes pod and report how it went.
#[derive(Debug, Parser)]
#[command(name = "podrun", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Where compiled hooks are cached [default: the user's cache directory]
    #[arg(long, global = true, env = "PODRUN_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Show podrun's own debug messages
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
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
enum PodCommand {
    /// Run a Pod manifest as it is
    Run(Box<PodRunArgs>),
}

/// Where the pod runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RuntimeKind {
    /// The pod's containers as processes on this machine
    Local,
    /// A Kubernetes cluster
    Kube,
}

/// Which cluster.
#[derive(Debug, Args)]
struct ClusterArgs {
    /// The kubeconfig file [default: $KUBECONFIG, ~/.kube/config, then in-cluster]
    #[arg(
        short = 'k',
        long = "kube-config",
        visible_alias = "kubeconfig",
        value_name = "PATH"
    )]
    kube_config: Option<PathBuf>,

    /// The kubeconfig context
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
}

impl ClusterArgs {
    fn connect(&self) -> crate::runtime::kube::Connect {
        crate::runtime::kube::Connect {
            kubeconfig: self.kube_config.clone(),
            context: self.context.clone(),
        }
    }
}

/// What happens to a cluster pod at the end of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KeepArg {
    Never,
    OnFailure,
    Always,
}

/// How a run executes and reports.
#[derive(Debug, Args)]
struct ExecArgs {
    /// Where the pod runs [default: kube when a cluster is configured, else local]
    #[arg(long, value_enum)]
    runtime: Option<RuntimeKind>,

    #[command(flatten)]
    cluster: ClusterArgs,

    /// Keep the cluster pod at the end: never, on-failure, always
    #[arg(long, value_enum, default_value_t = KeepArg::Never)]
    keep: KeepArg,

    /// How long the pod may stay Pending (90s, 10m…), overriding the config's
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pending_timeout: Option<u64>,

    /// Send podrun's stdin to the container named `worker`; its stdout is the
    /// run's output
    #[arg(long)]
    stdin: bool,

    /// Serve /healthy and /status as JSON on this address while the pod runs
    #[arg(long, value_name = "ADDR")]
    status_addr: Option<std::net::SocketAddr>,

    /// `text`: container output on stdout, a summary on stderr; `json`: the
    /// result as JSON on stdout, container output on stderr
    #[arg(short, long, value_enum, default_value_t = RunFormat::Text)]
    output: RunFormat,

    /// Also write the result as JSON to this file
    #[arg(long, value_name = "PATH")]
    result_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RunFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
struct RunCommand {
    #[command(flatten)]
    run: RunArgs,

    #[command(flatten)]
    exec: ExecArgs,

    /// Set for pod-runner's invocation (no subcommand): `--command` is read
    /// as pod-runner read it, and the run needs a cluster.
    #[arg(long, hide = true)]
    pod_runner_form: bool,
}

#[derive(Debug, Args)]
struct PodRunArgs {
    /// The Pod manifest (YAML or JSON), `-` for stdin
    #[arg(short, long, value_name = "FILE")]
    file: PathBuf,

    /// The namespace to run in [default: the manifest's, then the
    /// kubeconfig context's]
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,

    /// The run's id [default: a new one]
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,

    #[command(flatten)]
    exec: ExecArgs,
}

#[derive(Debug, Args)]
struct ConvertArgs {
    /// The YAML file (several documents allowed), `-` for stdin
    #[arg(short, long, value_name = "FILE")]
    file: PathBuf,

    /// A mutate hook to apply, in order: a built-in name or a .wasm path,
    /// optionally with settings as JSON (`sequence={"strategy":"entrypoint"}`)
    /// [default: sequence]
    #[arg(long = "hook", value_name = "HOOK[=SETTINGS]")]
    hooks: Vec<String>,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// The pod's name on the cluster
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pod: Option<String>,

    /// The namespace [default: the kubeconfig's]
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,

    /// Read the pod (YAML or JSON, with its status) from a file, `-` for
    /// stdin, instead of the cluster
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,

    /// Output format
    #[arg(short, long, value_enum, default_value_t = RunFormat::Text)]
    output: RunFormat,

    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, Args)]
struct GcArgs {
    /// Delete podrun pods older than this (90s, 10m, 2h, 1d)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1h")]
    older_than: u64,

    /// Only in this namespace [default: all namespaces]
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,

    /// Only pods that also match this label selector (app.kubernetes.io/name=report)
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    selector: Option<String>,

    /// Only list what would be deleted
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, Subcommand)]
enum HookCommand {
    /// Run a hook on a fixture: a Pod, Job or CronJob (mutate), a pod with its
    /// status (classify) or a template (render)
    Test(HookTestArgs),
    /// Start a new hook: a Rust crate (or a Rhai script with --script), with
    /// a fixture and its expected result, ready for `podrun hook test`
    New(HookNewArgs),
}

#[derive(Debug, Args)]
struct HookNewArgs {
    /// The hook's name (lowercase letters, digits and dashes); its directory
    name: String,

    /// A Rhai script instead of a Rust crate: no toolchain needed
    #[arg(long)]
    script: bool,

    /// Where to create the hook's directory
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,

    /// Depend on a local checkout of podrun's guest-sdk instead of the
    /// released crate
    #[arg(long, value_name = "PATH", conflicts_with = "script")]
    sdk_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct HookTestArgs {
    /// A built-in hook's name, a .wasm component or a .rhai script
    hook: String,

    /// The fixture (YAML)
    #[arg(short, long, value_name = "FILE")]
    input: PathBuf,

    /// The hook's settings, as JSON or YAML
    #[arg(long, value_name = "SETTINGS", default_value = "{}")]
    with: String,

    /// A runtime parameter the hook sees (repeatable)
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,

    /// The kind of hook [default: the built-in's; for a .wasm or a script,
    /// the first of mutate, classify, render it provides]
    #[arg(long, value_enum)]
    kind: Option<KindArg>,

    /// Compare with this expected result (YAML) and fail when it differs
    #[arg(long, value_name = "FILE")]
    expect: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Render,
    Mutate,
    Classify,
}

#[derive(Debug, Subcommand)]
enum HooksCommand {
    /// List the built-in hooks
    List,
}

/// Which config file to read.
#[derive(Debug, Args)]
struct ConfigArgs {
    /// The config file [default: ./pod-runner.yaml]
    #[arg(long, env = "PODRUN_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,

    /// The directory holding pod-runner.yaml (pod-runner's flag)
    #[arg(short = 'p', long, value_name = "DIR", conflicts_with = "config")]
    appconfig_path: Option<PathBuf>,
}

/// What to run: the application and the caller's values.
#[derive(Debug, Args)]
struct RunArgs {
    /// The application, as named in the config
    #[arg(short, long, value_name = "NAME")]
    application: String,

    /// The command, split like a shell would (quotes group words); no
    /// variables or globs are expanded
    #[arg(short, long, value_name = "COMMAND", allow_hyphen_values = true)]
    command: Option<String>,

    /// A runtime parameter the application accepts (repeatable)
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,

    /// The namespace to run in
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,

    /// The run's id [default: a new one]
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,

    /// The run's deadline (90, 90s, 10m, 2h, 1d), overriding the config's
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<u64>,

    /// The command's arguments exactly as given, after `--` (instead of
    /// --command)
    #[arg(last = true, value_name = "ARGS", conflicts_with = "command")]
    args: Vec<String>,

    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Args)]
struct RenderArgs {
    #[command(flatten)]
    run: RunArgs,

    /// Output format
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    output: Format,

    /// Also show, on stderr, what each hook changed, in order
    #[arg(long)]
    explain: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    Ok((name.to_string(), value.to_string()))
}

fn parse_duration(s: &str) -> Result<u64, String> {
    config::parse_seconds(s)
}

/// A failure with the exit code it ends podrun with.
struct Failure {
    code: Code,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<(Code, E)> for Failure {
    fn from((code, error): (Code, E)) -> Self {
        Failure {
            code,
            error: error.into(),
        }
    }
}

impl From<pipeline::PipelineError> for Failure {
    fn from(e: pipeline::PipelineError) -> Self {
        Failure {
            code: e.exit_code(),
            error: e.into(),
        }
    }
}

/// Runs podrun with the process's arguments.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(with_subcommand(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => Code::Usage.into(),
            };
        }
    };
    init_tracing(cli.verbose);
    match run(cli) {
        Ok(code) => code.into(),
        Err(failure) => {
            let mut message = format!("podrun: error: {}", failure.error);
            for cause in failure.error.chain().skip(1) {
                message.push_str(&format!("\n  caused by: {cause}"));
            }
            eprintln!("{message}");
            failure.code.into()
        }
    }
}

/// pod-runner's invocation has no subcommand (`podrun --application A
/// --namespace N --command C`): it means `run`.
fn with_subcommand(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let first = args
        .iter()
        .skip(1)
        .find(|a| !a.to_string_lossy().starts_with('-'));
    // The subcommands as clap knows them, so a new one is never read as a
    // pod-runner invocation.
    let named = first.is_some_and(|a| {
        let a = a.to_string_lossy();
        a == "help" || Cli::command().find_subcommand(a.as_ref()).is_some()
    });
    let runs = args.iter().any(|a| {
        let a = a.to_string_lossy();
        a == "-a" || a == "--application" || a.starts_with("--application=")
    });
    if runs && !named {
        let at = 1.min(args.len());
        args.splice(at..at, ["run".into(), "--pod-runner-form".into()]);
    }
    args
}

fn init_tracing(verbose: bool) {
    let filter = if verbose { "podrun=debug,info" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PODRUN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal, not in logs and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> Result<Code, Failure> {
    match cli.command {
        Command::Render(args) => on_runtime(render(cli.cache_dir, *args)),
        Command::Run(args) => on_runtime(run_application(cli.cache_dir, *args)),
        Command::Pod(PodCommand::Run(args)) => on_runtime(run_manifest(cli.cache_dir, *args)),
        Command::Gc(args) => gc(args),
        Command::Status(args) => status(args),
        Command::Hook(HookCommand::Test(args)) => on_runtime(hook_test(cli.cache_dir, args)),
        Command::Hook(HookCommand::New(args)) => hook_new(args),
        Command::Convert(args) => on_runtime(convert(cli.cache_dir, args)),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "podrun", &mut std::io::stdout());
            Ok(Code::Success)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| {
                    (
                        Code::Usage,
                        anyhow::anyhow!("cannot write the man page: {e}"),
                    )
                })?;
            Ok(Code::Success)
        }
        Command::Hooks(HooksCommand::List) => {
            let mut out = std::io::stdout().lock();
            for b in builtin::BUILTINS {
                let _ = writeln!(out, "{:<14} {:<9} {}", b.name, b.kind, b.summary);
            }
            Ok(Code::Success)
        }
    }
}

/// Hook instances at once in one CLI run: its hooks, each script hook
/// holding one for the whole run.
const CLI_POOL: u32 = 32;

/// Runs a command on an async runtime; a reader still blocked on stdin at
/// the end does not keep podrun alive.
fn on_runtime(
    command: impl std::future::Future<Output = Result<Code, Failure>>,
) -> Result<Code, Failure> {
    let rt = async_runtime()?;
    let result = rt.block_on(command);
    rt.shutdown_background();
    result
}

fn hooks(cache_dir: Option<PathBuf>) -> Result<Hooks, Failure> {
    let dir = cache_dir.or_else(|| dirs::cache_dir().map(|d| d.join("podrun")));
    Hooks::new(EngineOptions {
        // One run at a time: a small pool is set up faster.
        pool_size: CLI_POOL,
        cache: dir.and_then(|d| CacheOptions::in_dir(d.join("hooks"))),
        ..EngineOptions::default()
    })
    .map_err(|e| (e.exit_code(), e).into())
}

fn load_config(args: &ConfigArgs) -> Result<Config, Failure> {
    let path = config::locate(args.config.as_deref(), args.appconfig_path.as_deref());
    Config::load(&path).map_err(|e| (e.exit_code(), e).into())
}

/// How `--command` is read.
#[derive(Debug, Clone, Copy)]
enum CommandForm {
    /// podrun's: words split like a shell splits them.
    Shell,
    /// pod-runner's: the items of a YAML flow sequence.
    FlowItems,
}

fn request(run: &RunArgs, form: CommandForm, explain: bool) -> Result<Request, Failure> {
    let arguments = match (&run.command, form) {
        (Some(command), CommandForm::Shell) => crate::command::shell_words(command),
        (Some(command), CommandForm::FlowItems) => crate::command::flow_items(command),
        (None, _) => Ok(run.args.clone()),
    }
    .map_err(|e| Failure::from((Code::Usage, e)))?;
    Ok(Request {
        application: run.application.clone(),
        arguments,
        params: run.params.clone(),
        namespace: run.namespace.clone(),
        run_id: run.run_id.clone(),
        timeout: run.timeout,
        explain,
    })
}

async fn render(cache_dir: Option<PathBuf>, args: RenderArgs) -> Result<Code, Failure> {
    let config = load_config(&args.run.config)?;
    let request = request(&args.run, CommandForm::Shell, args.explain)?;
    let hooks = hooks(cache_dir)?;
    let prepared = pipeline::prepare(&hooks, &config, &request).await?;
    show_hook_logs(&prepared);
    if args.explain {
        explain(&prepared);
    }
    let text = match args.output {
        Format::Yaml => serde_saphyr::to_string(&prepared.pod).map_err(|e| {
            Failure::from((Code::HookFailed, anyhow::anyhow!("cannot write YAML: {e}")))
        })?,
        Format::Json => {
            serde_json::to_string_pretty(&prepared.pod).expect("a Pod serializes") + "\n"
        }
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    Ok(Code::Success)
}

fn show_hook_logs(prepared: &Prepared) {
    for step in &prepared.steps {
        for line in &step.logs {
            let hook = &step.hook;
            let m = &line.message;
            match line.level {
                log::Level::Error => tracing::error!("hook {hook}: {m}"),
                log::Level::Warn => tracing::warn!("hook {hook}: {m}"),
                log::Level::Info => tracing::info!("hook {hook}: {m}"),
                log::Level::Debug | log::Level::Trace => tracing::debug!("hook {hook}: {m}"),
            }
        }
    }
}

fn explain(prepared: &Prepared) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "# run {}", prepared.run_id);
    for (i, step) in prepared.steps.iter().enumerate() {
        let _ = writeln!(
            err,
            "# {}. {} hook {} ({} µs)",
            i + 1,
            step.kind,
            step.hook,
            step.elapsed.as_micros()
        );
        if step.changes.is_empty() {
            let _ = writeln!(err, "#    no change");
        }
        for change in &step.changes {
            let _ = writeln!(err, "#    {change}");
        }
    }
}

/// Loads a hook named outside a config (a built-in or a `.wasm` path);
/// `what` says where it was named, for the error.
async fn load_unconfigured(
    hooks: &Hooks,
    reference: &config::HookRef,
    kind: Kind,
    what: &str,
) -> Result<Hook, Failure> {
    let spec = config::builtin_spec(reference, kind)
        .map_err(|m| Failure::from((Code::Usage, anyhow::anyhow!("{what}: {m}"))))?;
    hooks
        .load(&spec)
        .await
        .map_err(|e| Failure::from((e.exit_code(), e)))
}

/// The default classifier, for runs whose config names none.
async fn default_classifiers(
    hooks: &Hooks,
    config: Option<(&Config, &config::Application)>,
) -> Result<Vec<Hook>, Failure> {
    let refs = match config {
        Some((_, app)) => app.classify_hooks(),
        None => vec![config::HookRef::named(config::DEFAULT_CLASSIFY)],
    };
    let mut loaded = Vec::new();
    for r in &refs {
        loaded.push(match config {
            Some((c, _)) => {
                let spec = c
                    .hook_spec(r, Kind::Classify)
                    .map_err(|m| Failure::from((Code::Usage, anyhow::anyhow!(m))))?;
                hooks
                    .load(&spec)
                    .await
                    .map_err(|e| Failure::from((e.exit_code(), e)))?
            }
            None => load_unconfigured(hooks, r, Kind::Classify, "classifier").await?,
        });
    }
    Ok(loaded)
}

async fn run_application(cache_dir: Option<PathBuf>, args: RunCommand) -> Result<Code, Failure> {
    let config = load_config(&args.run.config)?;
    let form = if args.pod_runner_form {
        CommandForm::FlowItems
    } else {
        CommandForm::Shell
    };
    let request = request(&args.run, form, false)?;
    if args.pod_runner_form
        && args.exec.runtime.is_none()
        && !args.exec.cluster.connect().configured()
    {
        return Err(Failure::from((
            Code::Usage,
            anyhow::anyhow!(
                "pod-runner's invocation runs on a cluster, and none is configured \
                 (no --kube-config, KUBECONFIG or ~/.kube/config); use `podrun run` \
                 to run on this machine"
            ),
        )));
    }
    let hooks = hooks(cache_dir)?;
    let started = std::time::Instant::now();
    let app = config
        .application(&request.application)
        .map_err(|e| (e.exit_code(), e))?;
    let classifiers = default_classifiers(&hooks, Some((&config, app))).await?;
    let mut prepared = pipeline::prepare(&hooks, &config, &request).await?;
    show_hook_logs(&prepared);
    if let Some(p) = args.exec.pending_timeout {
        prepared.context.pending_timeout_seconds = Some(p);
    }
    let namespace = prepared.context.namespace.clone();
    execute(
        prepared.pod,
        namespace,
        &prepared.context,
        &classifiers,
        &args.exec,
        started.elapsed(),
    )
    .await
}

async fn run_manifest(cache_dir: Option<PathBuf>, args: PodRunArgs) -> Result<Code, Failure> {
    let mut pod = read_pod(&args.file)?;
    if let Some(ns) = &args.namespace {
        pod.metadata.namespace = Some(ns.clone());
    }
    let run_id = match args.run_id {
        Some(id) if crate::run_id::is_valid(&id) => id,
        Some(id) => {
            return Err((Code::Usage, anyhow::anyhow!("--run-id {id:?} is not valid")).into());
        }
        None => crate::run_id::new(),
    };
    let hooks = hooks(cache_dir)?;
    let classifiers = default_classifiers(&hooks, None).await?;
    let pod_name = pod.metadata.name.clone().unwrap_or_else(|| "pod".into());
    let mut context = crate::hooks::bare_application(&pod_name, &run_id);
    context.namespace = pod.metadata.namespace.clone();
    context.pending_timeout_seconds = args.exec.pending_timeout;
    execute(
        pod,
        context.namespace.clone(),
        &context,
        &classifiers,
        &args.exec,
        std::time::Duration::ZERO,
    )
    .await
}

async fn execute(
    pod: k8s_openapi::api::core::v1::Pod,
    namespace: Option<String>,
    context: &types::Application,
    classifiers: &[Hook],
    exec: &ExecArgs,
    prepare: std::time::Duration,
) -> Result<Code, Failure> {
    let connect = exec.cluster.connect();
    let runtime = match exec.runtime {
        Some(r) => r,
        None if connect.configured() => RuntimeKind::Kube,
        None => {
            eprintln!(
                "podrun: no cluster configured (no --kube-config, KUBECONFIG or ~/.kube/config): running the pod locally"
            );
            RuntimeKind::Local
        }
    };
    let options = lifecycle::Options {
        stdin: exec.stdin,
        status_addr: exec.status_addr,
        logs_to_stderr: exec.output == RunFormat::Json,
        keep: match exec.keep {
            KeepArg::Never => lifecycle::Keep::Never,
            KeepArg::OnFailure => lifecycle::Keep::OnFailure,
            KeepArg::Always => lifecycle::Keep::Always,
        },
    };
    let outcome = async {
        let signals = lifecycle::Signals::catch();
        let runner = match runtime {
            RuntimeKind::Local => {
                eprintln!("podrun: local runtime: images are not pulled; containers run as processes on this machine");
                let local = crate::runtime::local::Options { stdin: exec.stdin };
                lifecycle::Runner::Local(crate::runtime::local::LocalPod::start(pod.clone(), local))
            }
            RuntimeKind::Kube => {
                use crate::runtime::kube::{KubePod, client};
                let (client, default_ns) = client(&connect).await.map_err(|e| Failure::from((e.exit_code(), e)))?;
                let ns = namespace.unwrap_or(default_ns);
                let kube = KubePod::start(client, &ns, pod.clone(), &context.run_id, exec.stdin)
                    .await
                    .map_err(|e| Failure::from((e.exit_code(), e)))?;
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                if kube.reattached {
                    eprintln!("podrun: re-attaching to pod {ns}/{name} of run {}", context.run_id);
                } else {
                    eprintln!("podrun: created pod {ns}/{name}");
                }
                lifecycle::Runner::Kube(kube)
            }
        };
        lifecycle::run(signals, runner, &pod, context, classifiers, &options)
            .await
            .map_err(|e| Failure::from((e.exit_code(), e)))
    }
    .await;
    let mut result = outcome?;
    result.timings.prepare_ms = prepare.as_millis() as u64;
    let json = serde_json::to_string_pretty(&result).unwrap_or_default();
    if let Some(path) = &exec.result_file {
        std::fs::write(path, format!("{json}\n")).map_err(|e| {
            Failure::from((
                Code::Usage,
                anyhow::anyhow!("cannot write {}: {e}", path.display()),
            ))
        })?;
    }
    if exec.output == RunFormat::Json {
        println!("{json}");
    }
    let detail = if result.message.is_empty() {
        String::new()
    } else {
        format!(": {}", result.message)
    };
    eprintln!(
        "podrun: run {} {} ({}){detail}; exit code {}",
        result.run_id, result.outcome, result.reason, result.exit_code
    );
    Ok(match result.exit_code {
        0 => Code::Success,
        n => Code::Container(n),
    })
}

fn gc(args: GcArgs) -> Result<Code, Failure> {
    let rt = async_runtime()?;
    let age = std::time::Duration::from_secs(args.older_than);
    let deleted = rt.block_on(async {
        let (client, _) = crate::runtime::kube::client(&args.cluster.connect()).await?;
        crate::runtime::kube::gc(
            client,
            args.namespace.as_deref(),
            args.selector.as_deref(),
            age,
            args.dry_run,
        )
        .await
    });
    let deleted = deleted.map_err(|e| Failure::from((e.exit_code(), e)))?;
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for pod in &deleted {
        println!("{verb} pod {pod}");
    }
    eprintln!("podrun: {verb} {} pod(s)", deleted.len());
    Ok(Code::Success)
}

fn status(args: StatusArgs) -> Result<Code, Failure> {
    let usage = |m: String| Failure::from((Code::Usage, anyhow::anyhow!(m)));
    let pod: k8s_openapi::api::core::v1::Pod = match (&args.file, &args.pod) {
        (Some(file), _) => read_pod(file)?,
        (None, Some(name)) => {
            let rt = async_runtime()?;
            let found = rt.block_on(async {
                use crate::runtime::kube;
                let (client, default_ns) = kube::client(&args.cluster.connect()).await?;
                let ns = args.namespace.clone().unwrap_or(default_ns);
                kube::get(client, &ns, name).await.map(|p| (p, ns))
            });
            match found.map_err(|e| Failure::from((e.exit_code(), e)))? {
                (Some(pod), _) => pod,
                (None, ns) => return Err(usage(format!("there is no pod {ns}/{name}"))),
            }
        }
        (None, None) => return Err(usage("name a pod, or a file with -f".into())),
    };
    let text = match args.output {
        RunFormat::Text => crate::steps::describe(&pod),
        RunFormat::Json => {
            let steps = crate::steps::steps(&pod);
            let running = steps
                .as_deref()
                .and_then(crate::steps::running)
                .map(|(n, s)| serde_json::json!({"step": n, "name": s.name}));
            let status = pod.status.as_ref();
            let json = serde_json::json!({
                "namespace": pod.metadata.namespace,
                "pod": pod.metadata.name,
                "phase": status.and_then(|s| s.phase.clone()),
                "containers": crate::result::containers(Some(&pod)),
                "steps": steps,
                "running": running,
            });
            serde_json::to_string_pretty(&json).unwrap_or_default() + "\n"
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    Ok(Code::Success)
}

/// The text of `path`, or of stdin for `-`.
fn read_input(path: &std::path::Path) -> Result<String, Failure> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| {
        Failure::from((
            Code::Usage,
            anyhow::anyhow!("cannot read {}: {e}", path.display()),
        ))
    })
}

/// A Pod manifest (YAML or JSON) from `path`, or from stdin for `-`.
fn read_pod(path: &std::path::Path) -> Result<k8s_openapi::api::core::v1::Pod, Failure> {
    let text = read_input(path)?;
    let name = path.display().to_string();
    serde_saphyr::from_str(&text).map_err(|e| {
        Failure::from((
            Code::Usage,
            anyhow::anyhow!(
                "{name}: not a Pod: {}",
                e.to_string().replace("<input>", &name)
            ),
        ))
    })
}

fn async_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            (
                Code::Cluster,
                anyhow::anyhow!("cannot start the async runtime: {e}"),
            )
                .into()
        })
}

async fn convert(cache_dir: Option<PathBuf>, args: ConvertArgs) -> Result<Code, Failure> {
    let usage = |m: String| Failure::from((Code::Usage, anyhow::anyhow!(m)));
    let name = args.file.display().to_string();
    let text = read_input(&args.file)?;
    let specs = if args.hooks.is_empty() {
        vec!["sequence".to_string()]
    } else {
        args.hooks
    };
    let hooks = hooks(cache_dir)?;
    let mut loaded = Vec::new();
    for s in &specs {
        let (hook, with) = match s.split_once('=') {
            Some((h, json)) => {
                let with: serde_json::Value = serde_json::from_str(json)
                    .map_err(|e| usage(format!("--hook {s}: the settings are not JSON: {e}")))?;
                (h, with)
            }
            None => (s.as_str(), serde_json::json!({})),
        };
        let mut r = config::HookRef::named(hook);
        r.with = with;
        loaded.push(load_unconfigured(&hooks, &r, Kind::Mutate, &format!("--hook {s}")).await?);
    }
    let context = crate::hooks::bare_application("convert", &crate::run_id::new());
    let out = crate::convert::convert(&text, &name, &loaded, &context)
        .await
        .map_err(|e| {
            let code = match &e {
                crate::convert::ConvertError::Hook { error, .. } => error.exit_code(),
                crate::convert::ConvertError::Parse { .. } => Code::Usage,
            };
            Failure::from((code, e))
        })?;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
    Ok(Code::Success)
}

fn hook_new(args: HookNewArgs) -> Result<Code, Failure> {
    use crate::scaffold::{Sdk, Template, create};
    let template = if args.script {
        Template::Script
    } else {
        Template::Rust
    };
    let sdk = match args.sdk_path {
        // Cargo resolves a relative path from the new crate, not from here.
        Some(p) => Sdk::Path(std::path::absolute(&p).unwrap_or(p)),
        None => Sdk::Version(env!("CARGO_PKG_VERSION").to_string()),
    };
    let made = create(&args.dir, &args.name, template, &sdk)
        .map_err(|e| Failure::from((Code::Usage, e)))?;
    println!("created {}; test it with:", made.dir.display());
    for line in made.next {
        println!("  {line}");
    }
    Ok(Code::Success)
}

async fn hook_test(cache_dir: Option<PathBuf>, args: HookTestArgs) -> Result<Code, Failure> {
    let usage = |m: String| Failure::from((Code::Usage, anyhow::anyhow!(m)));
    let fixture = read_input(&args.input)?;
    let with: serde_json::Value =
        serde_saphyr::from_str(&args.with).map_err(|e| usage(format!("--with: {e}")))?;
    let mut reference = config::HookRef::named(&args.hook);
    reference.with = with;
    let kinds = match (args.kind, builtin::find(&args.hook)) {
        (Some(KindArg::Render), _) => vec![Kind::Render],
        (Some(KindArg::Mutate), _) => vec![Kind::Mutate],
        (Some(KindArg::Classify), _) => vec![Kind::Classify],
        (None, Some(b)) => vec![b.kind],
        (None, None) => vec![Kind::Mutate, Kind::Classify, Kind::Render],
    };
    let hooks = hooks(cache_dir)?;
    let mut errors = Vec::new();
    let mut loaded = None;
    for kind in kinds {
        let spec = config::builtin_spec(&reference, kind).map_err(usage)?;
        match hooks.load(&spec).await {
            Ok(hook) => {
                loaded = Some((hook, kind));
                break;
            }
            Err(e) => errors.push(e),
        }
    }
    let (hook, kind) = match loaded {
        Some(l) => l,
        // One kind tried: its own error; several: why each did not fit.
        None if errors.len() == 1 => {
            let e = errors.remove(0);
            return Err((e.exit_code(), e).into());
        }
        None => {
            let code = errors
                .iter()
                .map(|e| e.exit_code())
                .find(|c| *c != Code::Usage)
                .unwrap_or(Code::Usage);
            let mut all: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            all.dedup();
            return Err((code, anyhow::anyhow!("{}", all.join("\n  "))).into());
        }
    };
    let mut context = crate::hooks::bare_application("test", "test");
    context.params = args
        .params
        .iter()
        .map(|(name, value)| types::Param {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    let actual = crate::hook_test::run(&hook, kind, &fixture, &context)
        .await
        .map_err(|e| Failure::from((e.exit_code(), e)))?;
    let Some(expect) = &args.expect else {
        let text = serde_saphyr::to_string(&actual).unwrap_or_default();
        print!("{text}");
        return Ok(Code::Success);
    };
    let expected: serde_json::Value = serde_saphyr::from_str(&read_input(expect)?)
        .map_err(|e| usage(format!("{}: {e}", expect.display())))?;
    let differences = crate::hook_test::differences(&expected, &actual);
    if differences.is_empty() {
        println!(
            "ok: {} on {} gives {}",
            hook.name(),
            args.input.display(),
            expect.display()
        );
        Ok(Code::Success)
    } else {
        println!(
            "FAILED: {} on {} differs from {}:",
            hook.name(),
            args.input.display(),
            expect.display()
        );
        for d in differences {
            println!("  {d}");
        }
        Ok(Code::Container(1))
    }
}
