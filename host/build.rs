//! Builds the built-in hooks (`hooks/*`) and the test guests
//! (`tests/guests/*`) as WebAssembly components, so that `cargo build` of
//! podrun is all a user runs. The components are embedded in the binary.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// Built-in hooks that run in every run and need little stack, with the
/// stack each is linked with instead of Rust's 1 MiB. The host zeroes the
/// start of a hook's memory after each call (`KEEP_RESIDENT` in
/// hooks/engine.rs), and the stack comes first in it, so a smaller stack is
/// less to zero on every call. An overflow still traps: below the stack is
/// no memory. go-template gets more: its template language allows 99
/// nested blocks or parentheses, which need more than 128 KiB, and YAML
/// nested far deeper than any pod (tests/e2e/engine.rs tries both, and
/// that deeper still is a trap).
const SMALL_STACK: &[(&str, u32)] = &[
    ("api-token", 128 << 10),
    ("deadline", 128 << 10),
    ("default-classifier", 128 << 10),
    ("go-template", 256 << 10),
    ("labels", 128 << 10),
    ("pod-security", 128 << 10),
    ("restart-never", 128 << 10),
    ("sequence", 128 << 10),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    for dir in [
        "hooks",
        "guest-sdk",
        "wit",
        "tests/guests",
        "examples/hooks",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

    let builtins = crate_dirs(&root.join("hooks"));
    let guests = crate_dirs(&root.join("tests/guests"));
    // The example hooks are built too, so that the tests can run them.
    let examples = crate_dirs(&root.join("examples/hooks"));
    let packages: Vec<String> = builtins
        .iter()
        .map(|n| format!("podrun-hook-{n}"))
        .chain(guests.iter().map(|n| format!("podrun-test-{n}")))
        .chain(examples.iter().map(|n| format!("podrun-example-{n}")))
        .collect();

    ensure_target();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    // Shared by debug and release builds of the host: <target>/podrun-hooks.
    let target_dir = out_dir.ancestors().nth(4).unwrap().join("podrun-hooks");
    build_components(&root, &target_dir, &packages);
    let wasm_dir = target_dir.join(TARGET).join("hook");

    let mut code = String::from(
        "/// The component of the built-in hook in `hooks/<name>`.\n\
         pub(crate) fn builtin_wasm(name: &str) -> Option<&'static [u8]> {\n    match name {\n",
    );
    for name in &builtins {
        let file = wasm_dir.join(format!("podrun_hook_{}.wasm", name.replace('-', "_")));
        writeln!(
            code,
            "        {name:?} => Some(include_bytes!({:?})),",
            file.display()
        )
        .unwrap();
    }
    code.push_str("        _ => None,\n    }\n}\n\n/// The names of the crates under `hooks/`.\n#[cfg(test)]\npub(crate) const BUILTIN_CRATES: &[&str] = &[");
    for name in &builtins {
        write!(code, "{name:?}, ").unwrap();
    }
    code.push_str("];\n");
    fs::write(out_dir.join("builtin_wasm.rs"), code).unwrap();
    println!("cargo:rustc-env=PODRUN_TEST_GUESTS={}", wasm_dir.display());
    // For the CLI crate's end-to-end tests (DEP_PODRUN_TEST_GUESTS there).
    println!("cargo:test_guests={}", wasm_dir.display());
}

/// The names of the directories under `dir` that hold a crate.
fn crate_dirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Installs the wasm target with rustup when it is missing, or stops with a
/// message saying how to.
fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = |root: &Option<PathBuf>| {
        root.as_ref()
            .is_some_and(|r| r.join("lib/rustlib").join(TARGET).is_dir())
    };
    if installed(&sysroot) {
        return;
    }
    println!(
        "cargo:warning=installing the {TARGET} target with rustup (podrun's hooks are WebAssembly components)"
    );
    let ok = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    if !ok || !installed(&sysroot) {
        panic!(
            "\n\npodrun's built-in hooks are WebAssembly components and need the Rust target \
             {TARGET}, which is not installed.\nInstall it with:\n\n    rustup target add {TARGET}\n\n"
        );
    }
}

fn build_components(root: &Path, target_dir: &Path, packages: &[String]) {
    let small: Vec<(String, u32)> = SMALL_STACK
        .iter()
        .map(|(n, bytes)| (format!("podrun-hook-{n}"), *bytes))
        .collect();
    let rest = packages
        .iter()
        .filter(|p| !small.iter().any(|(s, _)| s == *p));
    let mut cmd = guest_cargo(root, target_dir, "build");
    for p in rest {
        cmd.args(["-p", p]);
    }
    run(cmd);
    // A link argument for one package's own crate only: `cargo rustc`
    // (RUSTFLAGS would change every dependency's build too).
    for (p, bytes) in &small {
        let mut cmd = guest_cargo(root, target_dir, "rustc");
        cmd.args(["-p", p, "--lib", "--"])
            .arg(format!("-Clink-arg=-zstack-size={bytes}"));
        run(cmd);
    }
}

/// A cargo command that builds guests for [`TARGET`] with the `hook`
/// profile into `target_dir`.
fn guest_cargo(root: &Path, target_dir: &Path, command: &str) -> Command {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            command,
            "--profile",
            "hook",
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(target_dir);
    // The outer build's settings are for the host, not for the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
        "__CARGO_FIX_PLZ",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn run(mut cmd: Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the hooks: {e}"));
    if !status.success() {
        panic!("building the hooks for {TARGET} failed (see the output above)");
    }
}
