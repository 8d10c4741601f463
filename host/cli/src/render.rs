//! `podrun render`: the pod podrun would create, and with `--explain` what
//! each hook changed.

use std::io::Write;
use std::path::PathBuf;

use podrun::exit::Code;
use podrun::hooks::log;
use podrun::pipeline::{self, Explain, Prepared};

use crate::Failure;
use crate::args::{Format, RenderArgs};
use crate::run::{CommandForm, request};

pub(crate) async fn render(cache_dir: Option<PathBuf>, args: RenderArgs) -> Result<Code, Failure> {
    let config = crate::load_config(&args.run.config)?;
    let detail = if args.explain {
        Explain::Full
    } else {
        Explain::No
    };
    let request = request(&args.run, CommandForm::Shell, detail)?;
    let hooks = crate::engine(cache_dir)?;
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
    crate::print_out(&text);
    Ok(Code::Success)
}

/// What the hooks logged while preparing the pod, as podrun's own log.
pub(crate) fn show_hook_logs(prepared: &Prepared) {
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
