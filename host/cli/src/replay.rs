//! `podrun hook replay`: a classifier chain fed a recorded timeline as the
//! run fed it, with the verdict it comes to and where; with `--expect`, a
//! test, and with a directory of timelines, a suite.

use std::path::{Path, PathBuf};

use podrun::config;
use podrun::exit::Code;
use podrun::hooks::{Hook, Kind};
use podrun::timeline::{Decision, Timeline, replay};

use crate::args::HookReplayArgs;
use crate::{Failure, usage};

/// The file ending of timelines in a directory; the expected verdict of
/// `NAME.timeline.json` is `NAME.expect.yaml` beside it.
const TIMELINE: &str = ".timeline.json";
const EXPECT: &str = ".expect.yaml";

pub(crate) async fn replay_command(
    cache_dir: Option<PathBuf>,
    args: HookReplayArgs,
) -> Result<Code, Failure> {
    let with: serde_json::Value =
        serde_saphyr::from_str(&args.with).map_err(|e| usage(format!("--with: {e}")))?;
    let hooks = crate::engine(cache_dir)?;
    let mut chain = Vec::new();
    for name in &args.hooks {
        let mut reference = config::HookRef::named(name);
        reference.with = with.clone();
        let spec = config::builtin_spec(&reference, Kind::Classify).map_err(usage)?;
        chain.push(
            hooks
                .load(&spec)
                .await
                .map_err(|e| Failure::from((e.exit_code(), e)))?,
        );
    }
    if args.timeline.is_dir() {
        if args.expect.is_some() {
            return Err(usage(format!(
                "--expect is for one timeline; in a directory each NAME{TIMELINE} has its NAME{EXPECT}"
            )));
        }
        return suite(&chain, &args.timeline).await;
    }
    let failed = one(&chain, &args.timeline, args.expect.as_deref()).await?;
    Ok(if failed {
        Code::Container(1)
    } else {
        Code::Success
    })
}

/// Every timeline of `dir` with its expectation; fails if any differs.
async fn suite(chain: &[Hook], dir: &Path) -> Result<Code, Failure> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| usage(format!("cannot read {}: {e}", dir.display())))?;
    let mut timelines: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(TIMELINE))
        .collect();
    timelines.sort();
    if timelines.is_empty() {
        return Err(usage(format!("no *{TIMELINE} in {}", dir.display())));
    }
    let mut failures = 0;
    for path in &timelines {
        let name = path.to_string_lossy();
        let expect = PathBuf::from(format!("{}{EXPECT}", &name[..name.len() - TIMELINE.len()]));
        if !expect.is_file() {
            return Err(usage(format!(
                "{} has no {}",
                path.display(),
                expect.display()
            )));
        }
        if one(chain, path, Some(&expect)).await? {
            failures += 1;
        }
    }
    println!("{} timelines, {failures} failed", timelines.len());
    Ok(if failures == 0 {
        Code::Success
    } else {
        Code::Container(1)
    })
}

/// Replays one timeline and shows what it comes to; whether it differs
/// from `expect`.
async fn one(chain: &[Hook], path: &Path, expect: Option<&Path>) -> Result<bool, Failure> {
    let text = read_timeline(path)?;
    let timeline = Timeline::parse(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let replayed = replay(chain, &timeline)
        .await
        .map_err(|e| Failure::from((e.exit_code(), e)))?;
    let shown = describe(&timeline, replayed.verdict.as_ref());
    let Some(expect) = expect else {
        println!("{}: {shown}", path.display());
        return Ok(false);
    };
    let text = std::fs::read_to_string(expect)
        .map_err(|e| usage(format!("cannot read {}: {e}", expect.display())))?;
    let expected: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| usage(format!("{}: {e}", expect.display())))?;
    let Some(fields) = expected.as_object() else {
        return Err(usage(format!(
            "{}: a map of the verdict's fields (outcome, reason, exitCode…)",
            expect.display()
        )));
    };
    // Only the fields the expectation names are compared.
    let actual = serde_json::to_value(&replayed.verdict).unwrap_or_default();
    let picked: serde_json::Map<String, serde_json::Value> = fields
        .keys()
        .map(|k| (k.clone(), actual.get(k).cloned().unwrap_or_default()))
        .collect();
    let differences = podrun::hook_test::differences(&expected, &picked.into());
    if differences.is_empty() {
        println!("ok: {}: {shown}", path.display());
        Ok(false)
    } else {
        println!(
            "FAILED: {}: {shown}; differs from {}:",
            path.display(),
            expect.display()
        );
        for d in differences {
            println!("  {d}");
        }
        Ok(true)
    }
}

/// A timeline file's text: a regular file (not a device or a pipe that
/// never ends) of at most [`MAX_INPUT`](crate::MAX_INPUT) bytes.
pub(crate) fn read_timeline(path: &Path) -> Result<String, Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let cannot = |e: String| usage(format!("cannot read {}: {e}", path.display()));
    // Opened without waiting for a pipe's writer, then checked as opened.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| cannot(e.to_string()))?;
    let meta = file.metadata().map_err(|e| cannot(e.to_string()))?;
    if !meta.is_file() {
        return Err(cannot("not a regular file".into()));
    }
    crate::read_bounded(file, path)
}

/// `failed OOMKilled (exit code 137) by default-classifier at observation
/// 3 (from 0, of 6), 3.2 s after the pod was created`.
fn describe(timeline: &Timeline, verdict: Option<&Decision>) -> String {
    let Some(v) = verdict else {
        return format!(
            "no verdict after {} observations",
            timeline.observations.len()
        );
    };
    let code = v
        .exit_code
        .map(|c| format!(" (exit code {c})"))
        .unwrap_or_default();
    let at = timeline
        .observations
        .get(v.observation)
        .map_or(0, |o| o.elapsed_ms);
    format!(
        "{} {}{code} by {} at observation {} (from 0, of {}), {:.1} s after the pod was created",
        v.outcome,
        v.reason,
        v.hook,
        v.observation,
        timeline.observations.len(),
        at as f64 / 1000.0
    )
}
