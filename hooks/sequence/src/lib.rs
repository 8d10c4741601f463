//! Built-in mutate hook `sequence`: runs a pod's containers one after the
//! other — in a Pod, or in the pod template of a Job or CronJob — so that a
//! failed step stops the chain and the pod's result is that step's.
//!
//! Settings: `strategy:`
//! - `init-containers` (default): every container but the last becomes an
//!   init container, after any existing ones. Works with any image; probes
//!   and lifecycle hooks of the moved containers are dropped, as Kubernetes
//!   allows none on init containers.
//! - `entrypoint`: containers stay containers (probes and resources keep
//!   working); each one's command is wrapped in a shell (`shell:`, default
//!   `/bin/sh`) that waits for the previous step through a shared emptyDir,
//!   runs the command, and records how it ended. After a failure the later
//!   steps exit 0 without running, so the failed step alone decides. Every
//!   container needs a `command` and a shell in its image.
//!
//! Either way the pod (or the pod template) is annotated with its steps in
//! order (`podrun.dev/steps: fetch,build,publish`), so that `podrun status`
//! and the progress line of `podrun run` can tell which step is running.

use podrun_hook_sdk::serde::Deserialize;
use podrun_hook_sdk::serde_json::{Value, json};
use podrun_hook_sdk::{Context, Mutate, Mutation, Object, Refusal, export_mutate};

/// The hook.
pub struct Sequence;

/// Where the steps record their ends, in the entrypoint strategy.
pub const STATE_DIR: &str = "/podrun-sequence";
const VOLUME: &str = "podrun-sequence";
/// The annotation that lists the steps, by container name, in order.
pub const STEPS_ANNOTATION: &str = "podrun.dev/steps";

#[derive(Deserialize, Default, PartialEq)]
#[serde(crate = "podrun_hook_sdk::serde", rename_all = "kebab-case")]
enum Strategy {
    #[default]
    InitContainers,
    Entrypoint,
}

#[derive(Deserialize)]
#[serde(crate = "podrun_hook_sdk::serde", default, deny_unknown_fields)]
struct Settings {
    strategy: Strategy,
    shell: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            strategy: Strategy::default(),
            shell: "/bin/sh".into(),
        }
    }
}

impl Mutate for Sequence {
    fn mutate(ctx: &Context, object: &Object) -> Result<Mutation, Refusal> {
        let settings: Settings = ctx.settings()?;
        let Some(path) = object.pod_spec_path() else {
            return Ok(Mutation::Unchanged);
        };
        let mut value: Value = object.parse()?;
        // The pod template's metadata sits beside its spec.
        let (spec_key, parents) = path.split_last().unwrap_or((&"spec", &[]));
        let mut parent = &mut value;
        for key in parents {
            parent = parent.get_mut(*key).ok_or_else(|| {
                Refusal::Invalid(format!("the {} has no {}", object.kind, path.join(".")))
            })?;
        }
        let spec = parent.get_mut(*spec_key).ok_or_else(|| {
            Refusal::Invalid(format!("the {} has no {}", object.kind, path.join(".")))
        })?;
        let steps: Vec<String> = containers(spec)?
            .iter()
            .map(|c| c["name"].as_str().unwrap_or("?").to_string())
            .collect();
        let changed = match settings.strategy {
            Strategy::InitContainers => as_init_containers(spec)?,
            Strategy::Entrypoint => with_entrypoints(spec, &settings.shell)?,
        };
        if !changed {
            return Ok(Mutation::Unchanged);
        }
        let metadata = &mut parent["metadata"];
        if !metadata.is_object() {
            *metadata = json!({});
        }
        if !metadata["annotations"].is_object() {
            metadata["annotations"] = json!({});
        }
        metadata["annotations"][STEPS_ANNOTATION] = json!(steps.join(","));
        Mutation::replace(&value)
    }
}

export_mutate!(Sequence);

fn containers(spec: &mut Value) -> Result<Vec<Value>, Refusal> {
    match spec.get("containers") {
        Some(Value::Array(c)) => Ok(c.clone()),
        _ => Err(Refusal::Invalid("the pod spec has no containers".into())),
    }
}

fn as_init_containers(spec: &mut Value) -> Result<bool, Refusal> {
    let mut containers = containers(spec)?;
    if containers.len() < 2 {
        return Ok(false);
    }
    let last = containers.pop().unwrap_or_default();
    let mut inits = match spec.get("initContainers") {
        Some(Value::Array(i)) => i.clone(),
        _ => Vec::new(),
    };
    for mut c in containers {
        if let Value::Object(map) = &mut c {
            for field in [
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
                "lifecycle",
            ] {
                map.remove(field);
            }
        }
        inits.push(c);
    }
    spec["initContainers"] = Value::Array(inits);
    spec["containers"] = json!([last]);
    Ok(true)
}

/// The shell script that makes step `index` wait for the one before it.
fn script(index: usize) -> String {
    let dir = STATE_DIR;
    let wait = if index == 0 {
        String::new()
    } else {
        let prev = index - 1;
        format!(
            "while [ ! -e {dir}/{prev}.done ] && [ ! -e {dir}/failed ]; do sleep 0.2; done\n\
             if [ -e {dir}/failed ]; then echo \"podrun sequence: skipped: step $(cat {dir}/failed) failed\"; exit 0; fi\n"
        )
    };
    format!(
        "{wait}echo {index} > {dir}/running\n\"$@\"\nrc=$?\n\
         if [ \"$rc\" -eq 0 ]; then touch {dir}/{index}.done; else echo {index} > {dir}/failed; touch {dir}/{index}.done; fi\n\
         exit \"$rc\"\n"
    )
}

fn with_entrypoints(spec: &mut Value, shell: &str) -> Result<bool, Refusal> {
    let containers = containers(spec)?;
    if containers.len() < 2 {
        return Ok(false);
    }
    let mut wrapped = Vec::new();
    for (i, mut c) in containers.into_iter().enumerate() {
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let command = match c.get("command") {
            Some(Value::Array(cmd)) if !cmd.is_empty() => cmd.clone(),
            _ => {
                return Err(Refusal::Invalid(format!(
                    "container {name} has no command: the entrypoint strategy needs one on every container (or use strategy: init-containers)"
                )));
            }
        };
        let args = match c.get("args") {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        // "$@" is the original command and arguments; `sh -c SCRIPT NAME ARGS…`.
        let mut new_args = vec![json!(script(i)), json!(format!("step-{i}"))];
        new_args.extend(command);
        new_args.extend(args);
        c["command"] = json!([shell, "-c"]);
        c["args"] = Value::Array(new_args);
        let mounts = c
            .get("volumeMounts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut mounts: Vec<Value> = mounts.into_iter().filter(|m| m["name"] != VOLUME).collect();
        mounts.push(json!({"name": VOLUME, "mountPath": STATE_DIR}));
        c["volumeMounts"] = Value::Array(mounts);
        wrapped.push(c);
    }
    spec["containers"] = Value::Array(wrapped);
    let volumes = spec
        .get("volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut volumes: Vec<Value> = volumes
        .into_iter()
        .filter(|v| v["name"] != VOLUME)
        .collect();
    volumes.push(json!({"name": VOLUME, "emptyDir": {}}));
    spec["volumes"] = Value::Array(volumes);
    Ok(true)
}

#[cfg(test)]
mod tests;
