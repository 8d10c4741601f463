//! The `podrun` command: parses the command line, runs the command with
//! podrun's library, prints what it has to say, and turns every outcome
//! into an exit code (see the README's table). Everything that touches the
//! process (signals, stdin, the console, exiting) happens here and only
//! here.

mod args;
mod cluster;
mod console;
mod convert;
mod hook;
mod record;
mod remote;
mod render;
mod replay;
mod run;
mod runs;
mod serve;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use podrun::config::{self, Config};
use podrun::exit::Code;
use podrun::hooks::{CacheOptions, EngineOptions, Hooks};

use crate::args::{Cli, Command, HookCommand, HooksCommand, PodCommand};

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(with_subcommand(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => exit_code(Code::Usage),
            };
        }
    };
    init_tracing(cli.verbose);
    match dispatch(cli) {
        Ok(code) => exit_code(code),
        Err(failure) => {
            let mut message = format!("podrun: error: {}", failure.error);
            for cause in failure.error.chain().skip(1) {
                message.push_str(&format!("\n  caused by: {cause}"));
            }
            eprintln!("{message}");
            exit_code(failure.code)
        }
    }
}

fn exit_code(code: Code) -> ExitCode {
    ExitCode::from(code.number())
}

/// A failure with the exit code it ends podrun with.
pub(crate) struct Failure {
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

impl From<podrun::pipeline::PipelineError> for Failure {
    fn from(e: podrun::pipeline::PipelineError) -> Self {
        Failure {
            code: e.exit_code(),
            error: e.into(),
        }
    }
}

/// A usage error (exit 125) with `message`.
pub(crate) fn usage(message: impl std::fmt::Display) -> Failure {
    Failure::from((Code::Usage, anyhow::anyhow!("{message}")))
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

fn dispatch(cli: Cli) -> Result<Code, Failure> {
    let cache = cli.cache_dir;
    match cli.command {
        Command::Render(args) => on_runtime(render::render(cache, *args)),
        Command::Run(args) => on_runtime(run::application(cache, *args)),
        Command::Pod(PodCommand::Run(args)) => on_runtime(run::manifest(cache, *args)),
        Command::Gc(args) => cluster::gc(args),
        Command::Status(args) => cluster::status(args),
        Command::Hook(HookCommand::Test(args)) => on_runtime(hook::test(cache, args)),
        Command::Hook(HookCommand::New(args)) => hook::new(args),
        Command::Hook(HookCommand::Replay(args)) => on_runtime(replay::replay_command(cache, args)),
        Command::Hooks(HooksCommand::List) => hook::list(),
        Command::Convert(args) => on_runtime(convert::convert(cache, args)),
        Command::Serve(args) => on_runtime(serve::serve(cache, *args)),
        Command::Runs(command) => runs::runs(command),
        Command::Token(args::TokenCommand::New) => {
            let token = podrun::config::new_token()
                .map_err(|e| usage(format!("no random numbers from the system: {e}")))?;
            let hash = podrun::config::TokenHash::of(&token);
            println!("token: {token}\nhash:  {hash}");
            Ok(Code::Success)
        }
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "podrun", &mut std::io::stdout());
            Ok(Code::Success)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| usage(format!("cannot write the man page: {e}")))?;
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

pub(crate) fn async_runtime() -> Result<tokio::runtime::Runtime, Failure> {
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

/// The hook engine of one CLI run, caching compiled hooks in the user's
/// cache directory.
pub(crate) fn engine(cache_dir: Option<PathBuf>) -> Result<Hooks, Failure> {
    let dir = cache_dir.or_else(|| dirs::cache_dir().map(|d| d.join("podrun")));
    Hooks::new(EngineOptions {
        // One run at a time: a small pool is set up faster.
        pool_size: CLI_POOL,
        cache: dir.and_then(|d| CacheOptions::in_dir(d.join("hooks"))),
        ..EngineOptions::default()
    })
    .map_err(|e| (e.exit_code(), e).into())
}

pub(crate) fn load_config(args: &args::ConfigArgs) -> Result<Config, Failure> {
    let path = config::locate(args.config.as_deref(), args.appconfig_path.as_deref());
    Config::load(&path).map_err(|e| (e.exit_code(), e).into())
}

/// The text of `path`, or of stdin for `-`, of at most [`MAX_INPUT`]
/// bytes.
pub(crate) fn read_input(path: &Path) -> Result<String, Failure> {
    if path.as_os_str() == "-" {
        return read_bounded(std::io::stdin(), path);
    }
    let file = std::fs::File::open(path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    read_bounded(file, path)
}

/// The most a manifest, fixture or timeline read by a command may be.
pub(crate) const MAX_INPUT: u64 = 64 << 20;

/// The text `input` (read from `path`) holds, of at most [`MAX_INPUT`]
/// bytes.
pub(crate) fn read_bounded(input: impl std::io::Read, path: &Path) -> Result<String, Failure> {
    use std::io::Read;
    let cannot = |e: String| usage(format!("cannot read {}: {e}", path.display()));
    let mut bytes = Vec::new();
    input
        .take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot(e.to_string()))?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(cannot(format!("larger than {} MiB", MAX_INPUT >> 20)));
    }
    String::from_utf8(bytes).map_err(|e| cannot(e.to_string()))
}

/// A Pod manifest (YAML or JSON) from `path`, or from stdin for `-`.
pub(crate) fn read_pod(path: &Path) -> Result<k8s_openapi::api::core::v1::Pod, Failure> {
    let text = read_input(path)?;
    let name = path.display().to_string();
    serde_saphyr::from_str(&text).map_err(|e| {
        usage(format!(
            "{name}: not a Pod: {}",
            e.to_string().replace("<input>", &name)
        ))
    })
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error worth
/// reporting.
pub(crate) fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_runners_invocation_means_run_and_subcommands_stay_subcommands() {
        let args = |a: &[&str]| {
            a.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert_eq!(
            with_subcommand(args(&["podrun", "-a", "x", "-c", "ls"])),
            args(&["podrun", "run", "--pod-runner-form", "-a", "x", "-c", "ls"])
        );
        assert_eq!(
            with_subcommand(args(&["podrun", "render", "-a", "x"])),
            args(&["podrun", "render", "-a", "x"])
        );
    }
}
