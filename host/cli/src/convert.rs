//! `podrun convert`: mutate hooks applied to the Pods, Jobs and CronJobs of
//! a YAML file.

use std::path::PathBuf;

use podrun::config;
use podrun::exit::Code;
use podrun::hooks::Kind;

use crate::args::ConvertArgs;
use crate::hook::load_unconfigured;
use crate::{Failure, print_out, read_input, usage};

pub(crate) async fn convert(
    cache_dir: Option<PathBuf>,
    args: ConvertArgs,
) -> Result<Code, Failure> {
    let name = args.file.display().to_string();
    let text = read_input(&args.file)?;
    let specs = if args.hooks.is_empty() {
        vec!["sequence".to_string()]
    } else {
        args.hooks
    };
    let hooks = crate::engine(cache_dir)?;
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
    let context = podrun::context::RunContext::bare("convert", &podrun::run_id::new());
    let out = podrun::convert::convert(&text, &name, &loaded, &context)
        .await
        .map_err(|e| {
            let code = match &e {
                podrun::convert::ConvertError::Hook { error, .. } => error.exit_code(),
                podrun::convert::ConvertError::Parse { .. } => Code::Usage,
            };
            Failure::from((code, e))
        })?;
    print_out(&out);
    Ok(Code::Success)
}
