//! `podrun hooks list`, `podrun hook new` and `podrun hook test`: tools for
//! hook authors.

use std::io::Write;
use std::path::PathBuf;

use podrun::config;
use podrun::exit::Code;
use podrun::hooks::{Hook, Hooks, Kind, builtin};

use crate::args::{HookNewArgs, HookTestArgs, KindArg, LangArg};
use crate::{Failure, read_input, usage};

/// `podrun hooks list`.
pub(crate) fn list() -> Result<Code, Failure> {
    let mut out = std::io::stdout().lock();
    for b in builtin::BUILTINS {
        let _ = writeln!(out, "{:<14} {:<9} {}", b.name, b.kind, b.summary);
    }
    Ok(Code::Success)
}

/// Loads a hook named outside a config (a built-in or a `.wasm` path);
/// `what` says where it was named, for the error.
pub(crate) async fn load_unconfigured(
    hooks: &Hooks,
    reference: &config::HookRef,
    kind: Kind,
    what: &str,
) -> Result<Hook, Failure> {
    let spec = config::builtin_spec(reference, kind).map_err(|m| usage(format!("{what}: {m}")))?;
    hooks
        .load(&spec)
        .await
        .map_err(|e| Failure::from((e.exit_code(), e)))
}

pub(crate) fn new(args: HookNewArgs) -> Result<Code, Failure> {
    use podrun::scaffold::{Sdk, Template, create};
    let template = match (args.script, args.lang) {
        (true, _) | (_, LangArg::Rhai) => Template::Script,
        (_, LangArg::Rust) => Template::Rust,
        (_, LangArg::Python) => Template::Python,
        (_, LangArg::Js) => Template::Js,
    };
    if args.sdk_path.is_some() && template != Template::Rust {
        return Err(usage("--sdk-path is for Rust hooks"));
    }
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

pub(crate) async fn test(cache_dir: Option<PathBuf>, args: HookTestArgs) -> Result<Code, Failure> {
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
    let hooks = crate::engine(cache_dir)?;
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
    let mut context = podrun::context::RunContext::bare("test", "test");
    context.params = args
        .params
        .iter()
        .map(|(name, value)| podrun::context::Param {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    // A classifier tested on a recorded timeline (`podrun run --record`)
    // gets it as the run gave it, and shows the verdict it comes to.
    let timeline = if kind == Kind::Classify
        && fixture.trim_start().starts_with('{')
        && fixture.contains("\"observations\"")
    {
        if !args.params.is_empty() {
            return Err(usage("--param: a timeline carries its run's parameters"));
        }
        Some(
            podrun::timeline::Timeline::parse(&fixture)
                .map_err(|e| usage(format!("{}: {e}", args.input.display())))?,
        )
    } else {
        None
    };
    let actual = match timeline {
        Some(timeline) => {
            let replayed = podrun::timeline::replay(std::slice::from_ref(&hook), &timeline)
                .await
                .map_err(|e| Failure::from((e.exit_code(), e)))?;
            serde_json::to_value(replayed.verdict).unwrap_or_default()
        }
        None => podrun::hook_test::run(&hook, kind, &fixture, &context)
            .await
            .map_err(|e| Failure::from((e.exit_code(), e)))?,
    };
    let Some(expect) = &args.expect else {
        let text = serde_saphyr::to_string(&actual).unwrap_or_default();
        print!("{text}");
        return Ok(Code::Success);
    };
    let expected: serde_json::Value = serde_saphyr::from_str(&read_input(expect)?)
        .map_err(|e| usage(format!("{}: {e}", expect.display())))?;
    let differences = podrun::hook_test::differences(&expected, &actual);
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
