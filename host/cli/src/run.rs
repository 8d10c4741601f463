//! `podrun run` and `podrun pod run`: one run, on the runtime the flags or
//! the machine choose, with signals, stdin and the console wired to it.

use k8s_openapi::api::core::v1::Pod;
use podrun::exit::Code;
use podrun::hooks::{Hook, Hooks, Kind};
use podrun::lifecycle::{self, Io, Keep};
use podrun::pipeline::{Explain, Request};
use podrun::result::RunResult;
use podrun::runtime::Runtime;
use podrun::runtime::kube::KubeRuntime;
use podrun::runtime::local::LocalRuntime;
use podrun::status_server;

use crate::args::{ExecArgs, KeepArg, PodRunArgs, RunArgs, RunCommand, RunFormat, RuntimeKind};
use crate::console::{Console, cancel_on_signals};
use crate::{Failure, usage};

/// How `--command` is read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CommandForm {
    /// podrun's: words split like a shell splits them.
    Shell,
    /// pod-runner's: the items of a YAML flow sequence.
    FlowItems,
}

/// The library's request from the command line.
pub(crate) fn request(
    run: &RunArgs,
    form: CommandForm,
    explain: Explain,
) -> Result<Request, Failure> {
    let arguments = match (&run.command, form) {
        (Some(command), CommandForm::Shell) => podrun::command::shell_words(command),
        (Some(command), CommandForm::FlowItems) => podrun::command::flow_items(command),
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
        pending_timeout: None,
        explain,
        tenant: run.tenant.clone(),
        image: run.image.clone(),
        pod_override: run.pod_override.as_deref().map(pod_override).transpose()?,
        resources: resources(run),
    })
}

/// `--request` and `--limit`, if any were given (the last of each wins).
pub(crate) fn resources(run: &RunArgs) -> Option<podrun::pipeline::ResourceRequest> {
    if run.requests.is_empty() && run.limits.is_empty() {
        return None;
    }
    let pick = |given: &[(String, String)]| {
        let last = |name: &str| {
            given
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        podrun::context::Resources {
            cpu: last("cpu"),
            memory: last("memory"),
        }
    };
    Some(podrun::pipeline::ResourceRequest {
        requests: pick(&run.requests),
        limits: pick(&run.limits),
    })
}

/// A pod override file: a YAML (or JSON) map.
pub(crate) fn pod_override(path: &std::path::Path) -> Result<serde_json::Value, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    let value: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    if !value.is_object() {
        return Err(usage(format!(
            "{}: a pod override is a map (a merge patch over the pod)",
            path.display()
        )));
    }
    Ok(value)
}

/// `podrun run` (and pod-runner's invocation).
pub(crate) async fn application(
    cache_dir: Option<std::path::PathBuf>,
    args: RunCommand,
) -> Result<Code, Failure> {
    if args.server.is_some() {
        return crate::remote::run(args).await;
    }
    let config = crate::load_config(&args.run.config)?;
    let form = if args.pod_runner_form {
        CommandForm::FlowItems
    } else {
        CommandForm::Shell
    };
    let mut request = request(&args.run, form, Explain::No)?;
    request.pending_timeout = args.exec.pending_timeout;
    if args.pod_runner_form
        && args.exec.runtime.is_none()
        && !args.exec.cluster.connect().configured()
    {
        return Err(usage(
            "pod-runner's invocation runs on a cluster, and none is configured \
             (no --kube-config, KUBECONFIG or ~/.kube/config); use `podrun run` \
             to run on this machine",
        ));
    }
    let hooks = crate::engine(cache_dir)?;
    let runtime = runtime(&args.exec).await?;
    let cancel = cancel_on_signals();
    let status = status_server(&args.exec).await?;
    let mut console = Console::new(&args.exec, status);
    let io = Io {
        cancel,
        stdin: stdin(&args.exec),
        sink: &mut console,
    };
    let options = options(&args.exec);
    let ran = podrun::run::run(&hooks, &config, &request, runtime.as_ref(), &options, io).await;
    console.done();
    console.finish_timeline();
    let result = ran.map_err(|e| Failure::from((e.exit_code(), e)))?;
    report(&result, &args.exec)
}

/// `podrun pod run`: a manifest as it is, with the default classifier.
pub(crate) async fn manifest(
    cache_dir: Option<std::path::PathBuf>,
    args: PodRunArgs,
) -> Result<Code, Failure> {
    let mut pod = crate::read_pod(&args.file)?;
    if let Some(ns) = &args.namespace {
        pod.metadata.namespace = Some(ns.clone());
    }
    let run_id = match args.run_id {
        Some(id) if podrun::run_id::is_valid(&id) => id,
        Some(id) => return Err(usage(format!("--run-id {id:?} is not valid"))),
        None => podrun::run_id::new(),
    };
    let hooks = crate::engine(cache_dir)?;
    let classifiers = vec![default_classifier(&hooks).await?];
    let pod_name = pod.metadata.name.clone().unwrap_or_else(|| "pod".into());
    let mut context = podrun::context::RunContext::bare(&pod_name, &run_id);
    context.namespace = pod.metadata.namespace.clone();
    context.pending_timeout_seconds = args.exec.pending_timeout;
    execute(pod, &context, &classifiers, &args.exec).await
}

async fn default_classifier(hooks: &Hooks) -> Result<Hook, Failure> {
    let name = podrun::config::HookRef::named(podrun::config::DEFAULT_CLASSIFY);
    let spec = podrun::config::builtin_spec(&name, Kind::Classify).map_err(usage)?;
    hooks
        .load(&spec)
        .await
        .map_err(|e| Failure::from((e.exit_code(), e)))
}

/// The runtime the flags name, or the one this machine has.
async fn runtime(exec: &ExecArgs) -> Result<Box<dyn Runtime>, Failure> {
    choose_runtime(exec.runtime, &exec.cluster, false).await
}

/// The runtime `kind`, or without one the cluster's if one is configured,
/// else the local one.
/// The runtime to use; on a cluster, `shared_watch` makes runs share one
/// pod watch per namespace (a server's many runs).
pub(crate) async fn choose_runtime(
    kind: Option<RuntimeKind>,
    cluster: &crate::args::ClusterArgs,
    shared_watch: bool,
) -> Result<Box<dyn Runtime>, Failure> {
    let connect = cluster.connect();
    let kind = match kind {
        Some(r) => r,
        None if connect.configured() => RuntimeKind::Kube,
        None => {
            eprintln!(
                "podrun: no cluster configured (no --kube-config, KUBECONFIG or ~/.kube/config): running the pod locally"
            );
            RuntimeKind::Local
        }
    };
    Ok(match kind {
        RuntimeKind::Local => {
            eprintln!(
                "podrun: local runtime: images are not pulled; containers run as processes on this machine"
            );
            Box::new(LocalRuntime)
        }
        RuntimeKind::Kube => {
            let runtime = KubeRuntime::connect(&connect)
                .await
                .map_err(|e| Failure::from((e.exit_code(), e)))?;
            Box::new(if shared_watch {
                runtime.with_shared_watch()
            } else {
                runtime
            })
        }
    })
}

async fn execute(
    pod: Pod,
    context: &podrun::context::RunContext,
    classifiers: &[Hook],
    exec: &ExecArgs,
) -> Result<Code, Failure> {
    let runtime = runtime(exec).await?;
    let cancel = cancel_on_signals();
    let status = status_server(exec).await?;
    let mut console = Console::new(exec, status);
    console.pod(&pod);
    console.start_timeline(context);
    let io = Io {
        cancel,
        stdin: stdin(exec),
        sink: &mut console,
    };
    let ran = lifecycle::run(
        runtime.as_ref(),
        pod,
        context,
        classifiers,
        &options(exec),
        io,
    )
    .await;
    console.done();
    console.finish_timeline();
    let result = ran.map_err(|e| Failure::from((e.exit_code(), e)))?;
    report(&result, exec)
}

fn options(exec: &ExecArgs) -> lifecycle::Options {
    lifecycle::Options {
        keep: match exec.keep {
            KeepArg::Never => Keep::Never,
            KeepArg::OnFailure => Keep::OnFailure,
            KeepArg::Always => Keep::Always,
        },
        ..lifecycle::Options::default()
    }
}

/// podrun's stdin, for the `worker` container, with `--stdin`.
fn stdin(exec: &ExecArgs) -> Option<podrun::runtime::Stdin> {
    exec.stdin
        .then(|| Box::new(tokio::io::stdin()) as podrun::runtime::Stdin)
}

/// The status server of `--status-addr`, started before the pod.
async fn status_server(exec: &ExecArgs) -> Result<Option<status_server::Shared>, Failure> {
    let Some(addr) = exec.status_addr else {
        return Ok(None);
    };
    let shared = status_server::Shared::default();
    status_server::serve(addr, shared.clone())
        .await
        .map_err(|e| usage(format!("cannot serve the status on {addr}: {e}")))?;
    Ok(Some(shared))
}

/// Prints the result as asked and gives the exit code it means.
pub(crate) fn report(result: &RunResult, exec: &ExecArgs) -> Result<Code, Failure> {
    let json = serde_json::to_string_pretty(result).unwrap_or_default();
    if let Some(path) = &exec.result_file {
        std::fs::write(path, format!("{json}\n"))
            .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))?;
    }
    if exec.output == RunFormat::Json {
        crate::print_out(&format!("{json}\n"));
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
