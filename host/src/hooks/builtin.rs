//! The built-in hooks, compiled from `hooks/*` by the build script and
//! embedded in the binary.

use super::Kind;

include!(concat!(env!("OUT_DIR"), "/builtin_wasm.rs"));

/// A built-in hook.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// The name a config uses.
    pub name: &'static str,
    /// What kind of hook it is.
    pub kind: Kind,
    /// One line for `podrun hooks list`.
    pub summary: &'static str,
}

/// Every built-in hook.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "go-template",
        kind: Kind::Render,
        summary: "pod-runner's Go templates; user values can never change the pod's structure",
    },
    Builtin {
        name: "restart-never",
        kind: Kind::Mutate,
        summary: "restartPolicy Never, unless the application says otherwise",
    },
    Builtin {
        name: "deadline",
        kind: Kind::Mutate,
        summary: "activeDeadlineSeconds from the run's timeout, the template, or a default (1 day)",
    },
    Builtin {
        name: "labels",
        kind: Kind::Mutate,
        summary: "labels for finding and cleaning up runs: managed-by, application, run id",
    },
    Builtin {
        name: "api-token",
        kind: Kind::Mutate,
        summary: "no service-account API token unless the pod names a service account or asks for one",
    },
    Builtin {
        name: "pod-security",
        kind: Kind::Mutate,
        summary: "validate: the Pod Security Standards (baseline, restricted) and required deadline, no token, no finalizers",
    },
    Builtin {
        name: "sequence",
        kind: Kind::Mutate,
        summary: "run a pod's containers one after the other (init-containers or entrypoint strategy)",
    },
    Builtin {
        name: "default-classifier",
        kind: Kind::Classify,
        summary: "the usual endings: exit codes, OOMKilled, deadlines, evictions, image errors, pending timeout",
    },
];

/// The built-in script interpreter (`hooks/rhai`): runs `script:` hooks.
pub const SCRIPT_INTERPRETER: &str = "rhai";

/// The built-in hook called `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The component of a built-in hook.
pub fn wasm(name: &str) -> Option<&'static [u8]> {
    builtin_wasm(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_crate_under_hooks_is_listed_and_embedded() {
        let mut listed: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
        listed.push(SCRIPT_INTERPRETER);
        listed.sort();
        assert_eq!(listed, BUILTIN_CRATES);
        for b in BUILTINS {
            let wasm = wasm(b.name).unwrap();
            assert!(wasm.starts_with(b"\0asm"), "{} is not wasm", b.name);
        }
        assert!(wasm(SCRIPT_INTERPRETER).unwrap().starts_with(b"\0asm"));
    }
}
