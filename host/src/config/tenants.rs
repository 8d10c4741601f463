//! Tenants, runtime parameters and the operator's policy: who may run what,
//! what a caller may set at run time, and the hooks no application or
//! tenant entry can remove.

use std::num::NonZeroU32;

use serde::Deserialize;
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{HookRef, Name, Quantity, Scalar, Seconds, quantity_value};

/// The start of every token `podrun token new` makes, so that a leaked one
/// is recognised (by people and by secret scanners).
pub const TOKEN_PREFIX: &str = "podrun_";
/// The start of a stored token hash.
pub const HASH_PREFIX: &str = "sha256:";

/// The SHA-256 of a tenant's token, written `sha256:<64 hex digits>`. The
/// config never holds a token itself.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Scalar")]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

impl TryFrom<Scalar> for TokenHash {
    type Error = String;
    fn try_from(s: Scalar) -> Result<Self, String> {
        let s = s.0;
        if s.starts_with(TOKEN_PREFIX) {
            return Err(format!(
                "this is a token, not its hash: store the `{HASH_PREFIX}…` line that \
                 `podrun token new` prints, and revoke this token (it has been written down)"
            ));
        }
        let hex = s.strip_prefix(HASH_PREFIX).unwrap_or_default();
        let mut hash = [0u8; 32];
        match hex::decode_to_slice(hex, &mut hash) {
            Ok(()) if hex.bytes().all(|b| !b.is_ascii_uppercase()) => Ok(TokenHash(hash)),
            _ => Err(format!(
                "a token hash is `{HASH_PREFIX}` and 64 lowercase hex digits (`podrun token new` prints one)"
            )),
        }
    }
}

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }
}

impl std::fmt::Display for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{HASH_PREFIX}{}", hex::encode(self.0))
    }
}

/// A new token, from the operating system's random numbers: 256 bits
/// after [`TOKEN_PREFIX`].
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

/// `text` with what follows each [`TOKEN_PREFIX`] hidden.
pub(crate) fn redact_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(TOKEN_PREFIX) {
        let (before, after) = rest.split_at(at + TOKEN_PREFIX.len());
        out.push_str(before);
        let secret = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        if secret > 0 {
            out.push_str("(redacted)");
        }
        rest = &after[secret..];
    }
    out.push_str(rest);
    out
}

/// The position of the first of `hashes` equal to `hash`. Every hash is
/// compared, each in constant time, so the time taken says nothing about
/// which one matched or how much of it did.
pub fn position<'a>(
    hashes: impl Iterator<Item = &'a TokenHash>,
    hash: &TokenHash,
) -> Option<usize> {
    let mut found = None;
    for (i, h) in hashes.enumerate() {
        let equal: bool = h.0.ct_eq(&hash.0).into();
        if equal && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// One tenant: a team sharing a `podrun serve`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Tenant {
    /// Its name: shown in runs and their pods' `podrun.dev/tenant` label.
    pub name: Spanned<Name>,
    /// The hashes of its API tokens.
    #[serde(default)]
    pub tokens: Vec<Spanned<TokenHash>>,
    /// The applications it may run.
    pub applications: Vec<Spanned<String>>,
    /// The namespaces its runs may use; without this, only the
    /// application's own.
    #[serde(default)]
    pub namespaces: Option<Vec<Name>>,
    /// How many of its runs run at once (all servers together); the others
    /// wait in the queue.
    #[serde(default)]
    pub max_concurrent: Option<NonZeroU32>,
    /// How many runs it may submit a minute, per server (429 above it).
    #[serde(default)]
    pub submits_per_minute: Option<NonZeroU32>,
    /// Hooks after the application's own, on every run of the tenant.
    #[serde(default)]
    pub hooks: TenantHooks,
    /// What its callers may set at run time, narrowing the application's.
    #[serde(default)]
    pub runtime_parameters: Option<RuntimeParameters>,
    /// Whether its runs may use the local runtime, which runs a pod's
    /// commands as processes on the server's own host.
    #[serde(default)]
    pub local_runtime: bool,
}

impl Tenant {
    /// Whether the tenant may run `application`.
    pub fn may_run(&self, application: &str) -> bool {
        self.applications.iter().any(|a| a.value == application)
    }
}

/// A tenant's own hooks, appended to every run's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantHooks {
    /// Mutate hooks, after the application's.
    #[serde(default)]
    pub mutate: Vec<Spanned<HookRef>>,
    /// Classify hooks, after the application's.
    #[serde(default)]
    pub classify: Vec<Spanned<HookRef>>,
}

/// The operator's policy: hooks after every other mutate hook of every
/// run, CLI and server alike.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Mutate hooks, after the tenant's.
    #[serde(default)]
    pub mutate: Vec<Spanned<HookRef>>,
    /// Validate hooks, last: mutate hooks that may only allow or deny. A
    /// validate hook that returns a change fails the run.
    #[serde(default)]
    pub validate: Vec<Spanned<HookRef>>,
}

/// What a caller may set at run time beyond the declared `parameters:`.
/// Unset fields keep their defaults (per application) or the
/// application's choice (per tenant, which can only narrow).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuntimeParameters {
    /// The command (default allowed, as pod-runner's `-c`).
    #[serde(default)]
    pub command: Option<bool>,
    /// The namespace (default allowed, as pod-runner's `-n`).
    #[serde(default)]
    pub namespace: Option<bool>,
    /// The run's deadline (default allowed).
    #[serde(default)]
    pub timeout: Option<bool>,
    /// The longest deadline a caller may set.
    #[serde(default)]
    pub max_timeout: Option<Seconds>,
    /// The container image (default never).
    #[serde(default)]
    pub image: Option<bool>,
    /// The fields a merge patch over the rendered pod may change, as
    /// dotted paths (`metadata.annotations`, `spec.tolerations`); none by
    /// default.
    #[serde(default)]
    pub pod_override: Option<Vec<FieldPath>>,
    /// The largest cpu and memory a caller may request or limit; only the
    /// resources named here may be set (default: none).
    #[serde(default)]
    pub max_resources: Option<ResourceBounds>,
}

/// A dotted path to a field of a pod (`spec.tolerations`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Scalar")]
pub struct FieldPath(pub Vec<String>);

impl TryFrom<Scalar> for FieldPath {
    type Error = String;
    fn try_from(s: Scalar) -> Result<Self, String> {
        let segments: Vec<String> = s.0.split('.').map(str::to_string).collect();
        let ok = segments.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if ok {
            Ok(FieldPath(segments))
        } else {
            Err(format!(
                "{:?} is not a field path (like metadata.annotations or spec.tolerations)",
                s.0
            ))
        }
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// The largest quantities a caller may ask for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceBounds {
    /// Cpu (`2`, `500m`).
    #[serde(default)]
    pub cpu: Option<Quantity>,
    /// Memory (`4Gi`).
    #[serde(default)]
    pub memory: Option<Quantity>,
}

/// Resource bounds as numbers: millicores and bytes; `None` for a
/// resource callers may not set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Cpu, in millicores.
    pub cpu_millis: Option<u64>,
    /// Memory, in bytes.
    pub memory_bytes: Option<u64>,
}

impl Bounds {
    fn of(b: &ResourceBounds) -> Bounds {
        let value = |q: &Option<Quantity>, scale: f64| {
            q.as_ref()
                .and_then(|q| quantity_value(&q.0))
                .map(|v| (v * scale).floor().max(0.0) as u64)
        };
        Bounds {
            cpu_millis: value(&b.cpu, 1000.0),
            memory_bytes: value(&b.memory, 1.0),
        }
    }
}

/// What a caller may set, all settings applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// The command.
    pub command: bool,
    /// The namespace.
    pub namespace: bool,
    /// The deadline.
    pub timeout: bool,
    /// The longest deadline, in seconds.
    pub max_timeout: Option<u64>,
    /// The image.
    pub image: bool,
    /// Where a pod override may change the pod: a field is open when
    /// every list (the application's, and the tenant's if it has one)
    /// holds it or a field around it. No lists: no override.
    pub pod_override: Vec<Vec<FieldPath>>,
    /// Cpu and memory up to these bounds; `None`: no resources.
    pub resources: Option<Bounds>,
}

impl Allowed {
    /// What pod-runner allowed: a command, a namespace, a deadline.
    pub const DEFAULT: Allowed = Allowed {
        command: true,
        namespace: true,
        timeout: true,
        max_timeout: None,
        image: false,
        pod_override: Vec::new(),
        resources: None,
    };

    /// The application's settings over the defaults, narrowed by the
    /// tenant's: a tenant can take a permission away, never add one.
    pub fn of(
        application: Option<&RuntimeParameters>,
        tenant: Option<&RuntimeParameters>,
    ) -> Allowed {
        let mut a = Allowed::DEFAULT;
        if let Some(p) = application {
            a.command = p.command.unwrap_or(a.command);
            a.namespace = p.namespace.unwrap_or(a.namespace);
            a.timeout = p.timeout.unwrap_or(a.timeout);
            a.max_timeout = p.max_timeout.map(|s| s.0);
            a.image = p.image.unwrap_or(a.image);
            a.pod_override = p.pod_override.iter().cloned().collect();
            a.resources = p.max_resources.as_ref().map(Bounds::of);
        }
        if let Some(p) = tenant {
            a.command &= p.command.unwrap_or(true);
            a.namespace &= p.namespace.unwrap_or(true);
            a.timeout &= p.timeout.unwrap_or(true);
            a.image &= p.image.unwrap_or(true);
            if !a.pod_override.is_empty()
                && let Some(list) = &p.pod_override
            {
                a.pod_override.push(list.clone());
            }
            a.max_timeout = match (a.max_timeout, p.max_timeout.map(|s| s.0)) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
            // Only what both name, at the smaller bound.
            if let (Some(app), Some(tenant)) = (a.resources, p.max_resources.as_ref()) {
                let tenant = Bounds::of(tenant);
                let both = |x: Option<u64>, y: Option<u64>| Some(x?.min(y?));
                a.resources = Some(Bounds {
                    cpu_millis: both(app.cpu_millis, tenant.cpu_millis),
                    memory_bytes: both(app.memory_bytes, tenant.memory_bytes),
                });
            }
        }
        a
    }

    /// Whether a pod override may change the field at `path`.
    pub fn may_override(&self, path: &[&str]) -> bool {
        let within =
            |p: &FieldPath| p.0.len() <= path.len() && p.0.iter().zip(path).all(|(a, b)| a == b);
        !self.pod_override.is_empty()
            && self.pod_override.iter().all(|list| list.iter().any(within))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_its_own_hash_only() {
        let token = new_token().unwrap();
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == TOKEN_PREFIX.len() + 64);
        assert_ne!(token, new_token().unwrap());
        let hash = TokenHash::of(&token);
        let written = hash.to_string();
        let read = TokenHash::try_from(Scalar(written)).unwrap();
        assert_eq!(read, hash);
        assert_ne!(TokenHash::of(&format!("{token}x")), hash);
    }

    #[test]
    fn tokens_are_redacted_from_messages() {
        let token = new_token().unwrap();
        let text = format!("8 |   tokens: [\"{token}\"] and {}…", &token[..30]);
        let shown = redact_tokens(&text);
        assert_eq!(
            shown,
            "8 |   tokens: [\"podrun_(redacted)\"] and podrun_(redacted)…"
        );
        assert_eq!(redact_tokens("podrun_ podrun"), "podrun_ podrun");
    }

    #[test]
    fn every_hash_is_compared_wherever_the_match_is() {
        let hashes: Vec<TokenHash> = (0..5).map(|i| TokenHash::of(&i.to_string())).collect();
        for (wanted, expect) in [("0", Some(0)), ("4", Some(4)), ("none", None)] {
            let mut compared = 0;
            let found = position(
                hashes.iter().inspect(|_| compared += 1),
                &TokenHash::of(wanted),
            );
            assert_eq!(found, expect, "{wanted}");
            assert_eq!(compared, hashes.len(), "{wanted}: stopped early");
        }
        // A hash differing only in its last byte is no match.
        let mut near = hashes[2].clone();
        near.0[31] ^= 1;
        assert_eq!(position(hashes.iter(), &near), None);
    }

    #[test]
    fn a_token_where_its_hash_belongs_is_refused() {
        let token = new_token().unwrap();
        let err = TokenHash::try_from(Scalar(token.clone())).unwrap_err();
        assert!(err.contains("not its hash"), "{err}");
        assert!(!err.contains(&token), "the error repeats the token");
        for bad in [
            "sha256:abc",
            "abc",
            "sha256:",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert!(
                TokenHash::try_from(Scalar(bad.to_string())).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_tenant_narrows_and_never_widens() {
        let app = RuntimeParameters {
            image: Some(true),
            max_timeout: Some(Seconds(3600)),
            ..Default::default()
        };
        let tenant = RuntimeParameters {
            command: Some(false),
            pod_override: Some(vec![FieldPath(vec!["spec".into()])]),
            max_timeout: Some(Seconds(60)),
            ..Default::default()
        };
        let a = Allowed::of(Some(&app), Some(&tenant));
        assert!(!a.command && a.image && a.namespace);
        assert!(
            !a.may_override(&["spec"]),
            "the tenant widened the application's grant"
        );
        assert_eq!(a.max_timeout, Some(60));
        assert_eq!(Allowed::of(None, None), Allowed::DEFAULT);
        let wide = RuntimeParameters {
            max_timeout: Some(Seconds(99_999)),
            ..Default::default()
        };
        assert_eq!(Allowed::of(Some(&app), Some(&wide)).max_timeout, Some(3600));
    }

    #[test]
    fn an_override_reaches_only_fields_every_list_opens() {
        let path = |p: &str| FieldPath::try_from(Scalar(p.into())).unwrap();
        let app = RuntimeParameters {
            pod_override: Some(vec![path("metadata.annotations"), path("spec")]),
            ..Default::default()
        };
        let tenant = RuntimeParameters {
            pod_override: Some(vec![path("spec.tolerations"), path("metadata")]),
            ..Default::default()
        };
        let a = Allowed::of(Some(&app), Some(&tenant));
        assert!(a.may_override(&["spec", "tolerations"]));
        assert!(a.may_override(&["metadata", "annotations", "example.com/x"]));
        assert!(
            !a.may_override(&["metadata", "labels"]),
            "the application's list"
        );
        assert!(
            !a.may_override(&["spec", "nodeSelector"]),
            "the tenant's list"
        );
        assert!(
            !a.may_override(&["spec"]),
            "a whole spec where only a part is open"
        );
        assert!(
            !a.may_override(&["metadata", "annotations.x"]),
            "a key is not a path"
        );
        assert!(!Allowed::of(None, Some(&tenant)).may_override(&["spec", "tolerations"]));
        let closed = RuntimeParameters {
            pod_override: Some(Vec::new()),
            ..Default::default()
        };
        assert!(!Allowed::of(Some(&app), Some(&closed)).may_override(&["spec", "x"]));
        for bad in ["", "spec..x", "spec.*", "spec containers"] {
            assert!(FieldPath::try_from(Scalar(bad.into())).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tenant_keeps_only_the_resources_both_name_at_the_smaller_bound() {
        let bounds = |cpu: Option<&str>, memory: Option<&str>| ResourceBounds {
            cpu: cpu.map(|c| Quantity(c.into())),
            memory: memory.map(|m| Quantity(m.into())),
        };
        let app = RuntimeParameters {
            max_resources: Some(bounds(Some("2"), Some("4Gi"))),
            ..Default::default()
        };
        let tenant = RuntimeParameters {
            max_resources: Some(bounds(None, Some("8Gi"))),
            ..Default::default()
        };
        assert_eq!(
            Allowed::of(Some(&app), Some(&tenant)).resources,
            Some(Bounds {
                cpu_millis: None,
                memory_bytes: Some(4 << 30)
            })
        );
        assert_eq!(
            Allowed::of(Some(&app), None).resources,
            Some(Bounds {
                cpu_millis: Some(2000),
                memory_bytes: Some(4 << 30)
            })
        );
        assert_eq!(Allowed::of(None, Some(&tenant)).resources, None);
    }
}
