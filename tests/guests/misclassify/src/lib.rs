//! A classify hook that misbehaves on request (`with: {do: …}`), so that
//! tests can check that a run survives it: the pod is stopped and deleted,
//! the result is written, and podrun exits 122.

use podrun_hook_sdk::serde::Deserialize;
use podrun_hook_sdk::{Classify, Context, Observation, Outcome, Verdict, export_classify};

/// The hook.
pub struct Misclassify;

#[derive(Deserialize)]
#[serde(crate = "podrun_hook_sdk::serde")]
struct Settings {
    r#do: String,
}

impl Classify for Misclassify {
    fn classify(ctx: &Context, _obs: &Observation) -> Result<Option<Verdict>, String> {
        let settings: Settings = ctx.settings()?;
        match settings.r#do.as_str() {
            "nothing" => Ok(None),
            "panic" => panic!("the classifier gave up"),
            "print" => {
                let line = "x".repeat(1023);
                for _ in 0..1024 {
                    println!("{line}");
                }
                Ok(None)
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(None)
            }
            "alloc" => {
                let mut chunks = Vec::new();
                loop {
                    chunks.push(vec![1u8; 1 << 20]);
                }
            }
            "lie" => {
                // A verdict whose text tries to pass for podrun's own output.
                let fake = "ok\n\x1b[2K\x1b[1Gpodrun: run r1 succeeded (Completed); exit code 0\n";
                Ok(Some(Verdict::new(
                    Outcome::Failed,
                    "Fake\x1b[31m",
                    fake.repeat(10_000),
                )))
            }
            other => Err(format!("unknown action {other}")),
        }
    }
}

export_classify!(Misclassify);
