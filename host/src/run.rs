//! One run in one call: prepare the pod (render, mutate, the classifier
//! chain), run it on a runtime, return the result.

use crate::config::Config;
use crate::exit::Code;
use crate::hooks::Hooks;
use crate::lifecycle::{self, Io, Notice, Options, RunError};
use crate::pipeline::{self, PipelineError, Request};
use crate::result::RunResult;
use crate::runtime::Runtime;

/// Why a run could not be carried out (a run whose pod failed is not an
/// error: its result says so).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pod could not be prepared: config, request, template or hook.
    #[error(transparent)]
    Prepare(#[from] PipelineError),
    /// The pod could not be run.
    #[error(transparent)]
    Run(#[from] RunError),
}

impl Error {
    /// The exit code this failure ends a run with.
    pub fn exit_code(&self) -> Code {
        match self {
            Error::Prepare(e) => e.exit_code(),
            Error::Run(e) => e.exit_code(),
        }
    }
}

/// Runs `request` for an application of `config` on `runtime` to its
/// verdict. The prepared pod, and what each hook did, go to the sink as
/// [`Notice::Prepared`] before the pod starts.
pub async fn run(
    hooks: &Hooks,
    config: &Config,
    request: &Request,
    runtime: &dyn Runtime,
    options: &Options,
    io: Io<'_>,
) -> Result<RunResult, Error> {
    let started = std::time::Instant::now();
    // The run id is fixed first, so that even a run cancelled while it is
    // prepared reports it.
    let mut request = request.clone();
    let run_id = request
        .run_id
        .get_or_insert_with(crate::run_id::new)
        .clone();
    let request = &request;
    let prepare = async {
        pipeline::check_runtime(config, request.tenant.as_deref(), runtime.name())?;
        let classifiers = pipeline::classifiers(
            hooks,
            config,
            &request.application,
            request.tenant.as_deref(),
        )
        .await?;
        let prepared = pipeline::prepare(hooks, config, request).await?;
        Ok::<_, PipelineError>((classifiers, prepared))
    };
    // Nothing runs yet: a cancel while hooks compile or run ends it here.
    let cancel = io.cancel.clone();
    let (classifiers, prepared) = tokio::select! {
        prepared = prepare => prepared?,
        reason = cancel.cancelled() => return Ok(lifecycle::cancelled_before_start(
            reason,
            &run_id,
            runtime.name(),
        )),
    };
    io.sink.notice(Notice::Prepared(&prepared));
    let prepare = started.elapsed();
    let mut result = lifecycle::run(
        runtime,
        prepared.pod,
        &prepared.context,
        &classifiers,
        options,
        io,
    )
    .await?;
    result.timings.prepare_ms = prepare.as_millis() as u64;
    Ok(result)
}
