//! `podrun serve`: the server, with the process's signals wired to its
//! shutdown.

use podrun::exit::Code;
use podrun::hooks::{CacheOptions, EngineOptions, Hooks};

use crate::Failure;
use crate::args::ServeArgs;

/// Hook instances at once in a server: many runs share them.
const SERVER_POOL: u32 = 256;

pub(crate) async fn serve(
    cache_dir: Option<std::path::PathBuf>,
    args: ServeArgs,
) -> Result<Code, Failure> {
    let config = crate::load_config(&args.config)?;
    let dir = cache_dir.or_else(|| dirs::cache_dir().map(|d| d.join("podrun")));
    let hooks = Hooks::new(EngineOptions {
        pool_size: SERVER_POOL,
        cache: dir.and_then(|d| CacheOptions::in_dir(d.join("hooks"))),
        ..EngineOptions::default()
    })
    .map_err(|e| Failure::from((e.exit_code(), e)))?;
    let runtime = crate::run::choose_runtime(args.runtime, &args.cluster, true).await?;
    let store = match args.store {
        Some(s) => s,
        None => default_store()?,
    };
    let server = podrun_server::Server::bind(podrun_server::Options {
        config,
        hooks,
        runtime,
        store,
        listen: args.listen,
        max_running: args.max_running,
        log_bytes: args.log_limit,
        lease: std::time::Duration::from_secs(args.lease),
        callback_hosts: args.callback_hosts,
        retention: std::time::Duration::from_secs(args.retention),
    })
    .await
    .map_err(|e| Failure::from((Code::Usage, e)))?;
    let addr = server
        .local_addr()
        .map_err(|e| Failure::from((Code::Usage, e)))?;
    eprintln!("podrun: serving on http://{addr}");
    server
        .serve(shutdown())
        .await
        .map_err(|e| Failure::from((Code::Cluster, e)))?;
    Ok(Code::Success)
}

/// `podrun.db` in the user's data directory, which is made if needed.
fn default_store() -> Result<String, Failure> {
    let dir = dirs::data_dir()
        .map(|d| d.join("podrun"))
        .ok_or_else(|| crate::usage("no data directory for the store: give --store sqlite:PATH"))?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| crate::usage(format!("cannot make {}: {e}", dir.display())))?;
    Ok(format!("sqlite:{}", dir.join("podrun.db").display()))
}

/// Resolves at SIGINT or SIGTERM: the server stops taking requests; runs
/// in flight on a cluster stay in the store for the next start, those on
/// the local runtime are stopped.
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    eprintln!("podrun: stopping");
}
