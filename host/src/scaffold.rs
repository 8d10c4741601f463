//! `podrun hook new`: a new hook, ready for `podrun hook test` — a Rust
//! crate depending on the SDK, a Rhai script, or a Python or JavaScript
//! module built from the WIT — with a fixture and the result it should
//! give. Every language's hook is the same team-label policy.

use std::path::{Path, PathBuf};

/// The language of a new hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// A Rust mutate hook (a crate).
    Rust,
    /// A Rhai mutate script.
    Script,
    /// A Python mutate hook, built by componentize-py.
    Python,
    /// A JavaScript mutate hook, built by componentize-js.
    Js,
}

/// The componentize-py release new Python hooks are built with.
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// The componentize-js release new JavaScript hooks are built with.
pub const COMPONENTIZE_JS: &str = "0.23.0";
/// The preview2-shim release componentize-js loads but does not depend on.
pub const PREVIEW2_SHIM: &str = "0.25.0";

/// The contract, copied into Python and JavaScript hooks: their build
/// tools generate the bindings from it.
const WIT: &str = include_str!("../../wit/hook.wit");

/// Where the SDK comes from, for a Rust hook.
#[derive(Debug, Clone)]
pub enum Sdk {
    /// A version from the registry.
    Version(String),
    /// A local checkout of podrun's `guest-sdk`.
    Path(PathBuf),
}

/// Why the hook could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot name a crate or a file.
    #[error(
        "{0:?} is not a valid hook name: use lowercase letters, digits and dashes, starting with a letter"
    )]
    Name(String),
    /// The directory is there already.
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The files of a new hook, and the commands that test it.
#[derive(Debug)]
pub struct Scaffold {
    /// The directory made.
    pub dir: PathBuf,
    /// The commands to run next, from the current directory.
    pub next: Vec<String>,
}

/// The fixture every new hook starts from.
const FIXTURE: &str = "\
# The object the hook is tested on: `podrun hook test … -i fixture.yaml`.
apiVersion: v1
kind: Pod
metadata:
  name: fixture
spec:
  containers:
  - name: main
    image: busybox
    command: [sh, -c, echo hello]
";

/// What the new hook makes of the fixture (with `--param team=data`).
const EXPECTED: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: fixture
  labels:
    team: data
spec:
  containers:
  - name: main
    image: busybox
    command: [sh, -c, echo hello]
";

const SCRIPT: &str = r#"// A mutate hook in Rhai, run by podrun's built-in interpreter.
//
// `object` is the Pod (or Job, CronJob) as a map; `ctx` has the run's
// `name`, `run_id`, `namespace`, `image`, `arguments`, `params` (a map)
// and this hook's `settings` (the `with:` map of pod-runner.yaml).
// Return the changed object, patch(#{...}) to change a few fields, or ()
// to change nothing; deny("why") refuses the run.
//
// Use it in pod-runner.yaml:
//   hooks:
//     mutate: [restart-never, deadline, labels, {script: HOOK.rhai}, api-token]

fn mutate(object, ctx) {
    let team = ctx.params.team ?? ctx.settings.team;
    if team == () {
        deny("every run needs a team: pass --param team=NAME");
    }
    patch(#{ metadata: #{ labels: #{ team: team } } })
}
"#;

const LIB: &str = r##"//! A podrun mutate hook: labels every pod with its team, from the run's
//! `team` parameter or the `team` setting, and refuses runs without one.
//!
//! Use it in pod-runner.yaml:
//!
//! ```yaml
//! hooks:
//!   mutate: [restart-never, deadline, labels, {hook: WASM, with: {team: platform}}, api-token]
//! ```

use podrun_hook_sdk::serde::Deserialize;
use podrun_hook_sdk::serde_json::json;
use podrun_hook_sdk::{Context, Mutate, Mutation, Object, Refusal, export_mutate};

/// The hook.
pub struct Hook;

/// The `with:` settings from pod-runner.yaml.
#[derive(Deserialize, Default)]
#[serde(crate = "podrun_hook_sdk::serde", default, deny_unknown_fields)]
struct Settings {
    team: Option<String>,
}

impl Mutate for Hook {
    fn mutate(ctx: &Context, _object: &Object) -> Result<Mutation, Refusal> {
        let settings: Settings = ctx.settings()?;
        let team = ctx
            .param("team")
            .or(settings.team.as_deref())
            .ok_or_else(|| Refusal::Denied("every run needs a team: pass --param team=NAME".into()))?;
        // A merge patch names only what changes.
        Mutation::merge(&json!({ "metadata": { "labels": { "team": team } } }))
    }
}

export_mutate!(Hook);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_the_pod_with_the_team() {
        let ctx = Context::for_test("app").with_param("team", "data");
        let pod = Object::pod(&json!({"apiVersion": "v1", "kind": "Pod"}));
        assert_eq!(
            Hook::mutate(&ctx, &pod).unwrap(),
            Mutation::MergePatch(r#"{"metadata":{"labels":{"team":"data"}}}"#.into())
        );
    }

    #[test]
    fn refuses_a_run_without_a_team() {
        let pod = Object::pod(&json!({"apiVersion": "v1", "kind": "Pod"}));
        assert!(matches!(
            Hook::mutate(&Context::for_test("app"), &pod),
            Err(Refusal::Denied(_))
        ));
    }
}
"##;

const PYTHON: &str = r#""""A podrun mutate hook in Python: labels every pod with its team, from the
run's `team` parameter or the `team` setting, and refuses runs without one.

Bindings come from the WIT in wit/ (componentize-py generates them at build
time). Use it in pod-runner.yaml:

    hooks:
      mutate: [restart-never, deadline, labels, {hook: WASM, with: {team: platform}}, api-token]
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import mutate


class Mutate(exports.Mutate):
    def mutate(self, ctx, object):
        settings = json.loads(ctx.settings)
        params = {p.name: p.value for p in ctx.application.params}
        team = params.get("team") or settings.get("team")
        if not team:
            # Err(...) is the hook's refusal; any other exception crashes it.
            raise Err(mutate.Refusal_Denied("every run needs a team: pass --param team=NAME"))
        # A merge patch names only what changes.
        patch = {"metadata": {"labels": {"team": team}}}
        return mutate.Mutation_MergePatch(json.dumps(patch))
"#;

const JS: &str = r#"// A podrun mutate hook in JavaScript: labels every pod with its team, from
// the run's `team` parameter or the `team` setting, and refuses runs
// without one.
//
// componentize-js builds it against the WIT in wit/ (`npm run build`). Use
// it in pod-runner.yaml:
//
//   hooks:
//     mutate: [restart-never, deadline, labels, {hook: WASM, with: {team: platform}}, api-token]

export const mutate = {
  mutate(ctx, object) {
    const settings = JSON.parse(ctx.settings);
    const param = ctx.application.params.find((p) => p.name === "team");
    const team = param?.value || settings.team;
    if (!team) {
      // A thrown variant is the hook's refusal.
      throw { tag: "denied", val: "every run needs a team: pass --param team=NAME" };
    }
    // A merge patch names only what changes.
    const patch = { metadata: { labels: { team } } };
    return { tag: "merge-patch", val: JSON.stringify(patch) };
  },
};
"#;

fn package_json(name: &str, wasm: &str) -> String {
    let package = serde_json::json!({
        "name": name,
        "private": true,
        "type": "module",
        "scripts": {
            "build": format!(
                "componentize-js app.js --wit wit --world-name mutate-hook --disable http fetch-event -o {wasm}"
            ),
        },
        "devDependencies": {
            "@bytecodealliance/componentize-js": COMPONENTIZE_JS,
            "@bytecodealliance/preview2-shim": PREVIEW2_SHIM,
        },
    });
    format!("{package:#}\n")
}

/// The example's lock: the same tools, every package pinned with its hash.
const PACKAGE_LOCK: &str =
    include_str!("../../examples/hooks/retry-classifier-js/package-lock.json");

/// `word` as one shell word, quoted when it needs to be.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-')
}

/// Writes a new hook called `name` into `parent/name`.
pub fn create(
    parent: &Path,
    name: &str,
    template: Template,
    sdk: &Sdk,
) -> Result<Scaffold, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::Name(name.to_string()));
    }
    let dir = parent.join(name);
    // Made here, not found: nothing planted at the path is written through.
    if let Err(source) = std::fs::create_dir(&dir) {
        return Err(if source.kind() == std::io::ErrorKind::AlreadyExists {
            ScaffoldError::Exists(dir)
        } else {
            ScaffoldError::Write { path: dir, source }
        });
    }
    let shown = shell_word(&dir.display().to_string());
    let mut files = vec![
        ("fixture.yaml".to_string(), FIXTURE.to_string()),
        ("expected.yaml".to_string(), EXPECTED.to_string()),
    ];
    let test = |wasm: &str| {
        format!("podrun hook test {wasm} -i fixture.yaml --param team=data --expect expected.yaml")
    };
    let next = match template {
        Template::Script => {
            files.push((format!("{name}.rhai"), SCRIPT.replace("HOOK", name)));
            vec![format!(
                "podrun hook test {shown}/{name}.rhai -i {shown}/fixture.yaml --param team=data --expect {shown}/expected.yaml"
            )]
        }
        Template::Rust => {
            let wasm = format!("{}.wasm", name.replace('-', "_"));
            let dependency = match sdk {
                Sdk::Version(v) => format!("{v:?}"),
                Sdk::Path(p) => format!("{{ path = {:?} }}", p.display().to_string()),
            };
            files.push(("Cargo.toml".into(), cargo_toml(name, &dependency)));
            files.push(("src/lib.rs".into(), LIB.replace("WASM", &wasm)));
            files.push((".gitignore".into(), "/target\n".into()));
            vec![
                format!("cd {shown} && cargo test && cargo build --release --target wasm32-wasip2"),
                test(&format!("target/wasm32-wasip2/release/{wasm}")),
            ]
        }
        Template::Python => {
            let wasm = format!("{name}.wasm");
            files.push(("app.py".into(), PYTHON.replace("WASM", &wasm)));
            files.push(("wit/hook.wit".into(), WIT.into()));
            files.push((".gitignore".into(), "/.venv\n__pycache__/\n*.wasm\n".into()));
            vec![
                format!(
                    "cd {shown} && python3 -m venv .venv && .venv/bin/pip install --only-binary=:all: componentize-py=={COMPONENTIZE_PY}"
                ),
                format!(
                    ".venv/bin/componentize-py -d wit -w mutate-hook componentize app -o {wasm}"
                ),
                test(&wasm),
            ]
        }
        Template::Js => {
            let wasm = format!("{name}.wasm");
            files.push(("app.js".into(), JS.replace("WASM", &wasm)));
            files.push(("package.json".into(), package_json(name, &wasm)));
            files.push((
                "package-lock.json".into(),
                PACKAGE_LOCK.replace("\"retry-classifier-js\"", &format!("{name:?}")),
            ));
            files.push(("wit/hook.wit".into(), WIT.into()));
            files.push((".gitignore".into(), "/node_modules\n*.wasm\n".into()));
            vec![
                // The lock pins every package and its hash; none needs
                // an install script.
                format!("cd {shown} && npm ci --ignore-scripts && npm run build"),
                test(&wasm),
            ]
        }
    };
    for (file, text) in files {
        let path = dir.join(&file);
        let write = || -> std::io::Result<()> {
            // Below the directory made above.
            std::fs::create_dir_all(path.parent().unwrap_or(&dir))?;
            std::fs::write(&path, text)
        };
        write().map_err(|source| ScaffoldError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(Scaffold { dir, next })
}

fn cargo_toml(name: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A hook is a WebAssembly component (cdylib); rlib lets `cargo test` run
# the hook's logic on this machine.
[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
podrun-hook-sdk = {sdk}

# Its own workspace, wherever it is created.
[workspace]

# Small, fast components: `cargo build --release --target wasm32-wasip2`.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = Sdk::Version("0.1.0".into());
        for bad in ["", "Team", "1team", "team_policy", "team-", "../x"] {
            assert!(
                matches!(
                    create(dir.path(), bad, Template::Script, &sdk),
                    Err(ScaffoldError::Name(_))
                ),
                "{bad:?}"
            );
        }
        create(dir.path(), "team", Template::Script, &sdk).unwrap();
        assert!(matches!(
            create(dir.path(), "team", Template::Rust, &sdk),
            Err(ScaffoldError::Exists(_))
        ));
        // Nor written through a link planted where the directory would be.
        let elsewhere = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("planted")).unwrap();
        assert!(matches!(
            create(dir.path(), "planted", Template::Python, &sdk),
            Err(ScaffoldError::Exists(_))
        ));
        assert!(!elsewhere.exists());
    }

    #[test]
    fn a_rust_hook_depends_on_the_sdk_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let s = create(
            dir.path(),
            "team-label",
            Template::Rust,
            &Sdk::Path("/src/podrun/guest-sdk".into()),
        )
        .unwrap();
        let toml = std::fs::read_to_string(s.dir.join("Cargo.toml")).unwrap();
        assert!(toml.contains(r#"podrun-hook-sdk = { path = "/src/podrun/guest-sdk" }"#));
        assert!(s.next[1].contains("team_label.wasm"));
        let lib = std::fs::read_to_string(s.dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("{hook: team_label.wasm"));
    }

    #[test]
    fn python_and_js_hooks_carry_the_contract_and_name_their_component() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = Sdk::Version("0.1.0".into());
        let py = create(dir.path(), "team-py", Template::Python, &sdk).unwrap();
        assert_eq!(
            std::fs::read_to_string(py.dir.join("wit/hook.wit")).unwrap(),
            WIT
        );
        assert!(py.next[1].ends_with("-o team-py.wasm"), "{:?}", py.next);
        assert!(py.next[0].contains(&format!("componentize-py=={COMPONENTIZE_PY}")));
        let js = create(dir.path(), "team-js", Template::Js, &sdk).unwrap();
        let package: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(js.dir.join("package.json")).unwrap())
                .unwrap();
        assert!(
            package["scripts"]["build"]
                .as_str()
                .unwrap()
                .ends_with("-o team-js.wasm")
        );
        assert!(js.next[1].starts_with("podrun hook test team-js.wasm"));
        let app = std::fs::read_to_string(js.dir.join("app.js")).unwrap();
        assert!(app.contains("{hook: team-js.wasm"));
    }

    #[test]
    fn printed_commands_quote_the_directory() {
        let parent = tempfile::tempdir().unwrap();
        let odd = parent.path().join("it's a dir; rm -rf x");
        std::fs::create_dir(&odd).unwrap();
        let made = create(&odd, "team", Template::Js, &Sdk::Version("0.1.0".into())).unwrap();
        let quoted = format!(
            "'{}'",
            made.dir.display().to_string().replace('\'', r"'\''")
        );
        assert_eq!(
            made.next[0],
            format!("cd {quoted} && npm ci --ignore-scripts && npm run build")
        );
        assert_eq!(shell_word("/tmp/a-b_c.d"), "/tmp/a-b_c.d");
        // The lock is the example's, under the new name.
        let lock = std::fs::read_to_string(made.dir.join("package-lock.json")).unwrap();
        assert!(lock.contains("\"name\": \"team\"") && !lock.contains("retry-classifier-js"));
        // A script's message keeps its placeholder; its usage names it.
        let script = create(
            &odd,
            "policy",
            Template::Script,
            &Sdk::Version("0.1.0".into()),
        )
        .unwrap();
        let text = std::fs::read_to_string(script.dir.join("policy.rhai")).unwrap();
        assert!(text.contains("--param team=NAME") && text.contains("{script: policy.rhai}"));
    }

    /// The examples are built with the tools new hooks get.
    #[test]
    fn the_examples_use_the_same_tool_versions() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hooks");
        let build =
            std::fs::read_to_string(examples.join("retry-classifier-python/build.sh")).unwrap();
        assert!(build.contains(&format!("version={COMPONENTIZE_PY}\n")));
        let package: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(examples.join("retry-classifier-js/package.json")).unwrap(),
        )
        .unwrap();
        let dev = &package["devDependencies"];
        assert_eq!(dev["@bytecodealliance/componentize-js"], COMPONENTIZE_JS);
        assert_eq!(dev["@bytecodealliance/preview2-shim"], PREVIEW2_SHIM);
    }
}
