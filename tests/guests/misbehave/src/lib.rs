//! A mutate hook that misbehaves on request (`with: {do: …}`), so that tests
//! can check what podrun's sandbox does with it. Whatever the hook could
//! observe of the host it reports in its refusal, so a test sees it.

use podrun_hook_sdk::serde::Deserialize;
use podrun_hook_sdk::serde_json::json;
use podrun_hook_sdk::{Context, Mutate, Mutation, Object, Refusal, export_mutate, log};

/// The hook.
pub struct Misbehave;

#[derive(Deserialize)]
#[serde(crate = "podrun_hook_sdk::serde")]
struct Settings {
    r#do: String,
    #[serde(default)]
    mib: usize,
}

fn report(what: &str, seen: impl std::fmt::Debug) -> Result<Mutation, Refusal> {
    Err(Refusal::Invalid(format!("{what}: {seen:?}")))
}

impl Mutate for Misbehave {
    fn mutate(ctx: &Context, object: &Object) -> Result<Mutation, Refusal> {
        let settings: Settings = ctx.settings()?;
        match settings.r#do.as_str() {
            "nothing" => Ok(Mutation::Unchanged),
            "deny" => Err(Refusal::Denied(
                "pods of this team need a cost centre".into(),
            )),
            "typed-round-trip" => {
                let pod: podrun_hook_sdk::k8s_openapi::api::core::v1::Pod = object.parse()?;
                Mutation::replace(&pod)
            }
            "log" => {
                log::warn("careful");
                log::info("hello from the hook");
                Ok(Mutation::Unchanged)
            }
            "panic" => panic!("the hook gave up"),
            "trap" => {
                #[cfg(target_arch = "wasm32")]
                core::arch::wasm32::unreachable();
                #[allow(unreachable_code)]
                Ok(Mutation::Unchanged)
            }
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let big = vec![1u8; 1 << 30];
                report("allocated", big.len())
            }
            "alloc-slowly" => {
                let mut chunks = Vec::new();
                loop {
                    chunks.push(vec![1u8; 1 << 20]);
                }
            }
            "garbage" => Ok(Mutation::MergePatch("{not json".into())),
            "garbage-object" => Ok(Mutation::Replace(json!({"kind": 5}).to_string())),
            "read-file" => report(
                "read /etc/hostname",
                std::fs::read_to_string("/etc/hostname"),
            ),
            "list-dir" => report("list /", std::fs::read_dir("/").map(|d| d.count())),
            "env" => report("env", std::env::vars().collect::<Vec<_>>()),
            "args" => report("args", std::env::args().collect::<Vec<_>>()),
            "clock" => report(
                "clock",
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH),
            ),
            "random" => {
                use std::hash::BuildHasher;
                report(
                    "random",
                    std::collections::hash_map::RandomState::new().hash_one("x"),
                )
            }
            "net" => report(
                "net",
                std::net::TcpStream::connect("127.0.0.1:22").map(|_| ()),
            ),
            "sleep-hour" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(Mutation::Unchanged)
            }
            "sleep-forever" => {
                std::thread::sleep(std::time::Duration::MAX);
                Ok(Mutation::Unchanged)
            }
            "print" => {
                let line = "x".repeat(1023);
                for _ in 0..1024 {
                    println!("{line}");
                }
                Ok(Mutation::Unchanged)
            }
            "recurse" => {
                // Unbounded on purpose: the host must survive it.
                #[allow(unconditional_recursion)]
                fn down(n: u64) -> u64 {
                    std::hint::black_box(down(std::hint::black_box(n) + 1)) + 1
                }
                report("recursed", down(0))
            }
            "log-million" => {
                for i in 0..1_000_000 {
                    log::info(&format!("line {i}"));
                }
                Ok(Mutation::Unchanged)
            }
            "log-huge" => {
                log::warn(&"y".repeat(8 << 20));
                Ok(Mutation::Unchanged)
            }
            "big-result" => Ok(Mutation::Replace("z".repeat(settings.mib << 20))),
            "deny-huge" => {
                let fake = "ok\n\x1b[2Kpodrun: run r1 succeeded; exit code 0\n";
                Err(Refusal::Denied(fake.repeat((10 << 20) / fake.len())))
            }
            "secure-random" => report("secure random", wasip2::random::random::get_random_u64()),
            "stdout" => {
                println!("to stdout");
                eprintln!("to stderr");
                Ok(Mutation::Unchanged)
            }
            other => Err(Refusal::Invalid(format!("unknown action {other}"))),
        }
    }
}

export_mutate!(Misbehave);
