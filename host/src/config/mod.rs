//! `pod-runner.yaml`: the applications podrun can run.
//!
//! The original pod-runner format loads unchanged; podrun's additions are
//! optional per application. Values are checked as they are read, so an
//! error names the file, line, column and field.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use crate::exit::Code;
use crate::hooks::{self, Kind, Limits, Source};

mod tenants;

pub use tenants::{
    Allowed, Bounds, FieldPath, HASH_PREFIX, Policy, ResourceBounds, RuntimeParameters,
    TOKEN_PREFIX, Tenant, TenantHooks, TokenHash, new_token,
};

/// The file name looked for in a directory.
pub const FILE_NAME: &str = "pod-runner.yaml";

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No config file was found.
    #[error("no config file: {0} does not exist (use --config PATH or --appconfig-path DIR)")]
    NotFound(PathBuf),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid YAML, or a field has a bad value.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Fields that are well-formed but do not fit together.
    #[error("{path}:\n  {}", problems.join("\n  "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Each problem, prefixed with its line and column.
        problems: Vec<String>,
    },
    /// The application is not in the file.
    #[error("{path}: no application named {name:?} (it has: {})", known.join(", "))]
    UnknownApplication {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The names it has.
        known: Vec<String>,
    },
}

impl ConfigError {
    /// Config errors are usage errors.
    pub fn exit_code(&self) -> Code {
        Code::Usage
    }
}

/// A loaded config file.
#[derive(Debug)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its applications.
    pub applications: Vec<Application>,
    /// The operator's hooks, on every run.
    pub policy: Policy,
    /// The teams sharing a `podrun serve`; none for a single team.
    pub tenants: Vec<Tenant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    applications: Vec<Application>,
    #[serde(default)]
    policy: Policy,
    #[serde(default)]
    tenants: Vec<Tenant>,
}

/// One application.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Application {
    /// Its name: a DNS label of at most 40 characters, so that a pod named
    /// after it and a run id fits Kubernetes' limit.
    pub name: Spanned<Name>,
    /// The pod template: a path relative to the config file, or an https URL.
    pub template: Spanned<String>,
    /// The container settings.
    pub container: Container,
    /// The hooks; the defaults when absent.
    #[serde(default)]
    pub hooks: Option<HookSet>,
    /// The run's deadline (the pod's activeDeadlineSeconds).
    #[serde(default)]
    pub timeout: Option<Seconds>,
    /// How long the pod may stay Pending.
    #[serde(default)]
    pub pending_timeout: Option<Seconds>,
    /// The pod's restartPolicy (default Never).
    #[serde(default)]
    pub restart_policy: Option<RestartPolicy>,
    /// The runtime parameters a caller may pass with `--param`.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// The namespace runs go to when the caller names none.
    #[serde(default)]
    pub namespace: Option<Name>,
    /// How many of its runs `podrun serve` runs at once (all servers
    /// sharing a store together); the others wait in the queue.
    #[serde(default)]
    pub max_running: Option<std::num::NonZeroU32>,
    /// What a caller may set at run time beyond `parameters:`.
    #[serde(default)]
    pub runtime_parameters: Option<RuntimeParameters>,
}

/// The container settings, as pod-runner had them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Container {
    /// The image.
    pub image: Image,
    /// The user id, as written (a number).
    #[serde(default)]
    pub uid: Option<Id>,
    /// The group id, as written (a number).
    #[serde(default)]
    pub gid: Option<Id>,
    /// Resource requests.
    #[serde(default)]
    pub resource_requests: Option<Resources>,
    /// Resource limits.
    #[serde(default)]
    pub resource_limits: Option<Resources>,
}

/// Memory and cpu quantities; empty values are allowed and mean none.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory (`64Mi`).
    #[serde(default)]
    pub memory: Option<Quantity>,
    /// Cpu (`100m`).
    #[serde(default)]
    pub cpu: Option<Quantity>,
}

/// The hooks of an application.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSet {
    /// The render hook (default `go-template`).
    #[serde(default)]
    pub render: Option<Spanned<HookRef>>,
    /// The mutate hooks in order; replaces the default list
    /// (`restart-never`, `deadline`, `labels`, `api-token`).
    #[serde(default)]
    pub mutate: Option<Vec<Spanned<HookRef>>>,
    /// The classify hooks in order.
    #[serde(default)]
    pub classify: Option<Vec<Spanned<HookRef>>>,
}

/// A hook named in the config: a built-in name, a `.wasm` path or a script,
/// with optional settings and limits. Written as a plain name or path, or
/// as a map with `hook:` (or `script:`), `with:`, `deadline-ms:`,
/// `memory-mib:` and `output-mib:`.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRef {
    /// The built-in name or path.
    pub hook: String,
    /// Whether `hook` is a script's path (`script:`, or a `.rhai` file).
    pub script: bool,
    /// The `with:` settings (an object).
    pub with: serde_json::Value,
    /// CPU deadline of one call, in milliseconds (default 100).
    pub deadline_ms: Option<u64>,
    /// Memory cap of one call, in MiB (default 64).
    pub memory_mib: Option<u64>,
    /// Cap on what one call returns, in MiB (default 4).
    pub output_mib: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HookRefMap {
    #[serde(default)]
    hook: Option<String>,
    #[serde(default)]
    script: Option<String>,
    #[serde(default)]
    with: Option<serde_json::Value>,
    #[serde(default)]
    deadline_ms: Option<u64>,
    #[serde(default)]
    memory_mib: Option<u64>,
    #[serde(default)]
    output_mib: Option<u64>,
}

impl HookRef {
    /// The file ending of script hooks.
    pub const SCRIPT_EXTENSION: &str = ".rhai";

    /// A reference to the hook `hook` with no settings; a `.rhai` path is a
    /// script.
    pub fn named(hook: &str) -> Self {
        HookRef {
            hook: hook.to_string(),
            script: hook.ends_with(Self::SCRIPT_EXTENSION),
            with: serde_json::json!({}),
            deadline_ms: None,
            memory_mib: None,
            output_mib: None,
        }
    }
}

impl<'de> Deserialize<'de> for HookRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HookRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a hook name, a .wasm or .rhai path, or a map with `hook:` or `script:` and `with:`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HookRef, E> {
                Ok(HookRef::named(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HookRef, A::Error> {
                let m = HookRefMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let with = m.with.unwrap_or_else(|| serde_json::json!({}));
                if !with.is_object() {
                    return Err(de::Error::custom("`with:` must be a map of settings"));
                }
                let (hook, script) = match (m.hook, m.script) {
                    (Some(h), None) => {
                        let script = h.ends_with(HookRef::SCRIPT_EXTENSION);
                        (h, script)
                    }
                    (None, Some(s)) => (s, true),
                    (Some(_), Some(_)) => {
                        return Err(de::Error::custom(
                            "a hook has either `hook:` or `script:`, not both",
                        ));
                    }
                    (None, None) => {
                        return Err(de::Error::custom(
                            "a hook needs `hook:` (a built-in name or .wasm path) or `script:` (a .rhai path)",
                        ));
                    }
                };
                Ok(HookRef {
                    hook,
                    script,
                    with,
                    deadline_ms: m.deadline_ms,
                    memory_mib: m.memory_mib,
                    output_mib: m.output_mib,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Declares a string newtype checked when it is read.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
        #[serde(try_from = "Scalar")]
        pub struct $name(pub String);

        impl TryFrom<Scalar> for $name {
            type Error = String;
            fn try_from(s: Scalar) -> Result<Self, String> {
                let s = s.0;
                let check: fn(&str) -> Result<(), String> = $check;
                check(&s).map(|()| $name(s))
            }
        }

        impl $name {
            /// Checks `s` as the config would.
            pub fn parse(s: &str) -> Result<Self, String> {
                Self::try_from(Scalar(s.to_string()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A scalar read as text, whether YAML typed it as a string or a number.
#[derive(Debug)]
pub struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

checked_string!(
    /// A name usable in Kubernetes object names and labels: lowercase
    /// letters, digits and dashes, at most 40 characters.
    Name,
    |s| {
        let ok = (1..=40).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{s:?} is not a valid name: use 1 to 40 lowercase letters, digits and dashes, \
                 starting and ending with a letter or digit"
            ))
        }
    }
);

checked_string!(
    /// A container image reference.
    Image,
    |s| {
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'') {
            Err(format!("{s:?} is not a valid image reference"))
        } else {
            Ok(())
        }
    }
);

checked_string!(
    /// A user or group id.
    Id,
    |s| match s.parse::<u32>() {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("{s:?} is not a valid user or group id (a number)")),
    }
);

checked_string!(
    /// A Kubernetes resource quantity (`64Mi`, `100m`, `1.5`, `1e3`).
    Quantity,
    |s| if is_quantity(s) {
        Ok(())
    } else {
        Err(format!("{s:?} is not a Kubernetes quantity (like 64Mi, 1G, 100m or 0.5)"))
    }
);

fn is_quantity(s: &str) -> bool {
    quantity_value(s).is_some()
}

/// A quantity's value in its base unit (cores, bytes), or `None` when
/// `s` is not a quantity.
pub fn quantity_value(s: &str) -> Option<f64> {
    let (sign, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = unsigned
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (number, suffix) = unsigned.split_at(digits);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let factor = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(exponent.parse::<i32>().ok()?)
        }
    };
    Some(sign * number.parse::<f64>().ok()? * factor)
}

/// A duration in whole seconds: a number of seconds, or a number with a
/// unit (`90s`, `10m`, `2h`, `1d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Scalar")]
pub struct Seconds(pub u64);

impl TryFrom<Scalar> for Seconds {
    type Error = String;
    fn try_from(s: Scalar) -> Result<Self, String> {
        parse_seconds(&s.0).map(Seconds)
    }
}

/// Parses `90`, `90s`, `10m`, `2h` or `1d` into seconds (at least 1).
pub fn parse_seconds(s: &str) -> Result<u64, String> {
    let bad =
        || format!("{s:?} is not a duration (like 90, 90s, 10m, 2h, 1d or, as in Go, 1h20m30s)");
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let factor = match unit {
        "" | "s" => Some(1),
        "m" => Some(60),
        "h" => Some(3600),
        "d" => Some(86_400),
        _ => None,
    };
    let secs = match (number.parse::<u64>(), factor) {
        (Ok(n), Some(factor)) => n.checked_mul(factor).ok_or_else(bad)?,
        // Go's form, as kubectl and Receptor take it (1h20m30s, 1.5h,
        // 500ms); a part of a second counts as a whole one.
        _ => {
            let d: jiff::SignedDuration = s.parse().map_err(|_| bad())?;
            if d.is_negative() {
                return Err(bad());
            }
            let whole = u64::try_from(d.as_secs()).map_err(|_| bad())?;
            whole + u64::from(d.subsec_nanos() > 0)
        }
    };
    if secs == 0 {
        return Err(format!("{s:?}: a duration must be at least one second"));
    }
    Ok(secs)
}

/// A pod's restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RestartPolicy {
    /// Never restart.
    Never,
    /// Restart failed containers.
    OnFailure,
    /// Always restart.
    Always,
}

impl RestartPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Never => "Never",
            RestartPolicy::OnFailure => "OnFailure",
            RestartPolicy::Always => "Always",
        }
    }
}

/// A runtime parameter an application accepts: a name, or a map with
/// `name:` and `default:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// Its name (letters, digits, `_` and `-`).
    pub name: String,
    /// The value when the caller passes none; without one the parameter is
    /// required.
    pub default: Option<String>,
}

impl<'de> Deserialize<'de> for Parameter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            name: String,
            #[serde(default)]
            default: Option<Scalar>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Parameter;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a parameter name, or a map with `name:` and `default:`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Parameter, E> {
                check_param_name(v).map_err(E::custom)?;
                Ok(Parameter {
                    name: v.to_string(),
                    default: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Parameter, A::Error> {
                let f = Full::deserialize(de::value::MapAccessDeserializer::new(map))?;
                check_param_name(&f.name).map_err(de::Error::custom)?;
                Ok(Parameter {
                    name: f.name,
                    default: f.default.map(|s| s.0),
                })
            }
        }
        d.deserialize_any(V)
    }
}

fn check_param_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid parameter name (letters, digits, _ and -)"
        ))
    }
}

/// The default mutate hooks, in order.
pub const DEFAULT_MUTATE: &[&str] = &["restart-never", "deadline", "labels", "api-token"];
/// The default render hook.
pub const DEFAULT_RENDER: &str = "go-template";
/// The default classify hook.
pub const DEFAULT_CLASSIFY: &str = "default-classifier";

/// The spec of a built-in hook, for runs without a config.
pub fn builtin_spec(h: &HookRef, kind: Kind) -> Result<hooks::Spec, String> {
    Config {
        path: PathBuf::from("."),
        applications: Vec::new(),
        policy: Policy::default(),
        tenants: Vec::new(),
    }
    .hook_spec(h, kind)
}

/// A place in the config file, for messages.
fn at(loc: &serde_saphyr::Location) -> String {
    format!("line {}, column {}", loc.line(), loc.column())
}

/// Finds the config file: `--config`, then `--appconfig-path DIR`, then
/// `./pod-runner.yaml`.
pub fn locate(config: Option<&Path>, appconfig_dir: Option<&Path>) -> PathBuf {
    if let Some(path) = config {
        return path.to_path_buf();
    }
    let dir = appconfig_dir.unwrap_or(Path::new("."));
    let yml = dir.join("pod-runner.yml");
    let yaml = dir.join(FILE_NAME);
    if !yaml.exists() && yml.exists() {
        yml
    } else {
        yaml
    }
}

impl Config {
    /// Reads and checks the config at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::NotFound(path.to_path_buf())
            } else {
                ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        Config::parse(path, &text)
    }

    /// Parses and checks config text read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let file: File = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            // The message quotes the file, which may hold a token where
            // its hash belongs: never repeat it.
            message: tenants::redact_tokens(
                &e.to_string()
                    .replace("<input>", &path.display().to_string()),
            ),
        })?;
        let config = Config {
            path: path.to_path_buf(),
            applications: file.applications,
            policy: file.policy,
            tenants: file.tenants,
        };
        config.validate()?;
        Ok(config)
    }

    /// The directory relative paths in the config are resolved against.
    pub fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// `path` relative to the config's directory.
    fn resolve(&self, path: &str) -> PathBuf {
        match self.dir() {
            d if d == Path::new(".") => PathBuf::from(path),
            d => d.join(path),
        }
    }

    /// Every problem the fields have together, reported at once.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        for (i, app) in self.applications.iter().enumerate() {
            let field = format!("applications[{i}]");
            if let Some(first) = self.applications[..i]
                .iter()
                .find(|a| a.name.value == app.name.value)
            {
                problems.push(format!(
                    "{}: {field}.name: {:?} is defined twice (first at {})",
                    at(&app.name.referenced),
                    app.name.value.0,
                    at(&first.name.referenced)
                ));
            }
            let template = &app.template.value;
            if template.trim().is_empty() {
                problems.push(format!(
                    "{}: {field}.template: must not be empty",
                    at(&app.template.referenced)
                ));
            } else if template.starts_with("http://") {
                problems.push(format!(
                    "{}: {field}.template: {template:?} must use https",
                    at(&app.template.referenced)
                ));
            } else if !template.starts_with("https://") && !self.dir().join(template).is_file() {
                problems.push(format!(
                    "{}: {field}.template: {} does not exist",
                    at(&app.template.referenced),
                    self.dir().join(template).display()
                ));
            }
            let mut names = Vec::new();
            for p in &app.parameters {
                if names.contains(&&p.name) {
                    problems.push(format!("{field}.parameters: {:?} is listed twice", p.name));
                }
                names.push(&p.name);
            }
            if let Some(hooks) = &app.hooks {
                let render = hooks.render.iter().map(|h| (Kind::Render, "render", h));
                let mutate = hooks
                    .mutate
                    .iter()
                    .flatten()
                    .map(|h| (Kind::Mutate, "mutate", h));
                let classify = hooks
                    .classify
                    .iter()
                    .flatten()
                    .map(|h| (Kind::Classify, "classify", h));
                for (kind, slot, h) in render.chain(mutate).chain(classify) {
                    if let Err(e) = self.hook_spec(&h.value, kind) {
                        problems.push(format!("{}: {field}.hooks.{slot}: {e}", at(&h.referenced)));
                    }
                }
            }
        }
        self.check_hooks(
            "policy.mutate",
            Kind::Mutate,
            &self.policy.mutate,
            &mut problems,
        );
        self.check_hooks(
            "policy.validate",
            Kind::Mutate,
            &self.policy.validate,
            &mut problems,
        );
        self.check_tenants(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                path: self.path.clone(),
                problems,
            })
        }
    }

    /// Each of `hooks` must load as a `kind` hook.
    fn check_hooks(
        &self,
        field: &str,
        kind: Kind,
        hooks: &[Spanned<HookRef>],
        problems: &mut Vec<String>,
    ) {
        for h in hooks {
            if let Err(e) = self.hook_spec(&h.value, kind) {
                problems.push(format!("{}: {field}: {e}", at(&h.referenced)));
            }
        }
    }

    /// Tenants with unique names and tokens, naming applications that
    /// exist, with hooks that load.
    fn check_tenants(&self, problems: &mut Vec<String>) {
        let mut tokens: Vec<(&Spanned<TokenHash>, &str)> = Vec::new();
        for (i, tenant) in self.tenants.iter().enumerate() {
            let field = format!("tenants[{i}]");
            let name = &tenant.name.value.0;
            if let Some(first) = self.tenants[..i]
                .iter()
                .find(|t| t.name.value == tenant.name.value)
            {
                problems.push(format!(
                    "{}: {field}.name: {name:?} is defined twice (first at {})",
                    at(&tenant.name.referenced),
                    at(&first.name.referenced)
                ));
            }
            for app in &tenant.applications {
                match self.application(&app.value) {
                    Err(_) => problems.push(format!(
                        "{}: {field}.applications: no application named {:?}",
                        at(&app.referenced),
                        app.value
                    )),
                    // Not the runtime's default namespace, which on a
                    // cluster is often podrun's own.
                    Ok(a) if a.namespace.is_none() && tenant.namespaces.is_none() => {
                        problems.push(format!(
                            "{}: {field}.applications: {:?} names no namespace, so tenant \
                             {name:?} needs `namespaces:` for its runs",
                            at(&app.referenced),
                            app.value
                        ));
                    }
                    Ok(_) => {}
                }
            }
            if tenant.namespaces.as_ref().is_some_and(Vec::is_empty) {
                problems.push(format!(
                    "{}: {field}.namespaces: must not be empty",
                    at(&tenant.name.referenced)
                ));
            }
            for token in &tenant.tokens {
                if let Some((first, owner)) = tokens.iter().find(|(t, _)| t.value == token.value) {
                    problems.push(format!(
                        "{}: {field}.tokens: this hash is also tenant {owner:?}'s (at {}): \
                         a token names one tenant",
                        at(&token.referenced),
                        at(&first.referenced)
                    ));
                }
                tokens.push((token, name));
            }
            self.check_hooks(
                &format!("{field}.hooks.mutate"),
                Kind::Mutate,
                &tenant.hooks.mutate,
                problems,
            );
            self.check_hooks(
                &format!("{field}.hooks.classify"),
                Kind::Classify,
                &tenant.hooks.classify,
                problems,
            );
        }
    }

    /// The tenant called `name`.
    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name.value.0 == name)
    }

    /// The tenant whose token `token` is, comparing with every stored
    /// hash in constant time.
    pub fn tenant_of_token(&self, token: &str) -> Option<&Tenant> {
        let hash = TokenHash::of(token);
        let owners: Vec<&Tenant> = self
            .tenants
            .iter()
            .flat_map(|t| t.tokens.iter().map(move |_| t))
            .collect();
        let hashes = self
            .tenants
            .iter()
            .flat_map(|t| t.tokens.iter().map(|h| &h.value));
        tenants::position(hashes, &hash).map(|i| owners[i])
    }

    /// The application called `name`.
    pub fn application(&self, name: &str) -> Result<&Application, ConfigError> {
        self.applications
            .iter()
            .find(|a| a.name.value.0 == name)
            .ok_or_else(|| ConfigError::UnknownApplication {
                path: self.path.clone(),
                name: name.to_string(),
                known: self
                    .applications
                    .iter()
                    .map(|a| a.name.value.0.clone())
                    .collect(),
            })
    }

    /// What the engine needs to load the hook `h` as a `kind` hook.
    pub fn hook_spec(&self, h: &HookRef, kind: Kind) -> Result<hooks::Spec, String> {
        let source = if h.script {
            let path = self.resolve(&h.hook);
            if !path.is_file() {
                return Err(format!(
                    "script {:?}: {} does not exist",
                    h.hook,
                    path.display()
                ));
            }
            Source::Script(path)
        } else if h.hook.ends_with(".wasm") || h.hook.contains('/') {
            let path = self.resolve(&h.hook);
            if !path.is_file() {
                return Err(format!("{:?}: {} does not exist", h.hook, path.display()));
            }
            Source::File(path)
        } else {
            let builtin = hooks::builtin::find(&h.hook).ok_or_else(|| {
                let names: Vec<&str> = hooks::builtin::BUILTINS.iter().map(|b| b.name).collect();
                format!(
                    "{:?} is not a built-in hook (they are: {}) nor a .wasm file",
                    h.hook,
                    names.join(", ")
                )
            })?;
            if builtin.kind != kind {
                return Err(format!(
                    "{:?} is a {} hook, not a {kind} hook",
                    h.hook, builtin.kind
                ));
            }
            Source::Builtin(builtin.name)
        };
        let mut limits = Limits::default();
        if let Some(ms) = h.deadline_ms {
            if !(1..=60_000).contains(&ms) {
                return Err(format!("{:?}: deadline-ms must be from 1 to 60000", h.hook));
            }
            limits.deadline = Some(std::time::Duration::from_millis(ms));
        }
        let mib = |value: Option<u64>, field: &str, max: usize| -> Result<Option<usize>, String> {
            match value {
                Some(mib) if !(1..=(max >> 20) as u64).contains(&mib) => Err(format!(
                    "{:?}: {field} must be from 1 to {}",
                    h.hook,
                    max >> 20
                )),
                Some(mib) => Ok(Some((mib as usize) << 20)),
                None => Ok(None),
            }
        };
        limits.memory = mib(h.memory_mib, "memory-mib", Limits::MAX_MEMORY)?;
        limits.output = mib(h.output_mib, "output-mib", Limits::MAX_OUTPUT)?;
        Ok(hooks::Spec {
            source,
            kind,
            settings: h.with.clone(),
            limits,
        })
    }
}

impl Application {
    /// The render hook, the default when the config names none.
    pub fn render_hook(&self) -> HookRef {
        self.hooks
            .as_ref()
            .and_then(|h| h.render.as_ref().map(|r| r.value.clone()))
            .unwrap_or_else(|| HookRef::named(DEFAULT_RENDER))
    }

    /// The classify hooks in order, the default classifier when the config
    /// names none.
    pub fn classify_hooks(&self) -> Vec<HookRef> {
        self.hooks
            .as_ref()
            .and_then(|h| {
                h.classify
                    .as_ref()
                    .map(|m| m.iter().map(|r| r.value.clone()).collect())
            })
            .unwrap_or_else(|| vec![HookRef::named(DEFAULT_CLASSIFY)])
    }

    /// The mutate hooks in order, the defaults when the config names none.
    pub fn mutate_hooks(&self) -> Vec<HookRef> {
        self.hooks
            .as_ref()
            .and_then(|h| {
                h.mutate
                    .as_ref()
                    .map(|m| m.iter().map(|r| r.value.clone()).collect())
            })
            .unwrap_or_else(|| DEFAULT_MUTATE.iter().map(|n| HookRef::named(n)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_seconds, quantity_value};

    #[test]
    fn quantities_in_their_base_units() {
        for (text, value) in [
            ("1", 1.0),
            ("500m", 0.5),
            ("1.5", 1.5),
            ("64Mi", 64.0 * 1024.0 * 1024.0),
            ("1G", 1e9),
            ("2e3", 2000.0),
            ("1E-3", 0.001),
            ("-1", -1.0),
        ] {
            assert_eq!(quantity_value(text), Some(value), "{text}");
        }
        for text in [
            "",
            "m",
            "1x",
            "1.2.3",
            "Gi",
            "1e",
            "1e+",
            "1ee3",
            "1e99999999999",
        ] {
            assert_eq!(quantity_value(text), None, "{text}");
        }
    }

    #[test]
    fn durations_in_podrun_and_go_forms() {
        let cases = [
            ("90", 90),
            ("90s", 90),
            ("10m", 600),
            ("2h", 7200),
            ("1d", 86_400),
            ("1h20m30s", 4830),
            ("2h45m", 9900),
            ("1.5h", 5400),
            ("1500ms", 2),
            ("300ms", 1),
        ];
        for (text, secs) in cases {
            assert_eq!(parse_seconds(text), Ok(secs), "{text}");
        }
    }

    #[test]
    fn durations_that_are_not() {
        for text in [
            "",
            "0",
            "0s",
            "-5m",
            "5x",
            "m",
            "1h-20m",
            "99999999999999999999d",
        ] {
            assert!(parse_seconds(text).is_err(), "{text} was taken");
        }
    }
}
