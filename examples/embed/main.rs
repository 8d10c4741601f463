//! podrun as a library: one run of the `hello` example application on the
//! local runtime, its output collected, its verdict printed.
//!
//! `cargo run -p podrun --example embed`

use std::path::Path;

use podrun::cancel::Cancel;
use podrun::config::Config;
use podrun::hooks::{EngineOptions, Hooks};
use podrun::lifecycle::{Io, Notice, Options, Sink};
use podrun::pipeline::Request;
use podrun::result::RunResult;
use podrun::runtime::local::LocalRuntime;

/// Keeps the container's output; ignores podrun's notices.
#[derive(Default)]
struct Output(Vec<String>);

impl Sink for Output {
    /// `lines` may hold several lines: one batch of output.
    fn log(&mut self, _container: &str, lines: &[u8]) {
        let text = String::from_utf8_lossy(lines);
        self.0.extend(text.lines().map(String::from));
    }

    fn notice(&mut self, _: Notice<'_>) {}
}

async fn run_hello(command: &[&str]) -> Result<(RunResult, Output), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
    let config = Config::load(&dir.join("pod-runner.yaml"))?;
    let hooks = Hooks::new(EngineOptions::default())?;
    let request = Request {
        application: "hello".into(),
        arguments: command.iter().map(|s| s.to_string()).collect(),
        ..Request::default()
    };
    let mut output = Output::default();
    let io = Io {
        cancel: Cancel::new(),
        stdin: None,
        sink: &mut output,
    };
    let result = podrun::run::run(
        &hooks,
        &config,
        &request,
        &LocalRuntime,
        &Options::default(),
        io,
    )
    .await?;
    Ok((result, output))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (result, output) = run_hello(&["sh", "-c", "echo hello from a library; exit 3"]).await?;
    for line in &output.0 {
        println!("{line}");
    }
    println!(
        "run {} {} ({}): exit code {}",
        result.run_id, result.outcome, result.reason, result.exit_code
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_embedded_run_gives_the_containers_verdict_and_output() {
        let (result, output) = super::run_hello(&["sh", "-c", "echo hi; echo there; exit 3"])
            .await
            .unwrap();
        assert_eq!(result.outcome, "failed", "{result:?}");
        assert_eq!(result.exit_code, 3);
        assert_eq!(result.runtime, "local");
        assert_eq!(output.0, ["hi", "there"]);
    }
}
