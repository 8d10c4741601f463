//! From an application and a caller's request to the final Pod: the render
//! hook, then each mutate hook in order. Data flows one way; each step is
//! recorded so that `--explain` can show what it changed.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::config::{Application, Config, ConfigError};
use crate::context::RunContext;
use crate::exit::Code;
use crate::hooks::text::{MESSAGE_LIMIT, shown};
use crate::hooks::{Called, Hook, HookError, Hooks, Kind, LogLine, mutate, render, types};
use crate::run_id;

mod access;

pub use access::{TENANT_LABEL, check_runtime};

/// What the caller asks for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The application's name.
    pub application: String,
    /// The command, split into arguments.
    pub arguments: Vec<String>,
    /// `--param name=value` pairs.
    pub params: Vec<(String, String)>,
    /// The namespace, when the caller names one.
    pub namespace: Option<String>,
    /// The run id; a new one when `None`.
    pub run_id: Option<String>,
    /// The run's deadline in seconds, overriding the config's.
    pub timeout: Option<u64>,
    /// How long the pod may stay pending, in seconds, overriding the
    /// config's.
    pub pending_timeout: Option<u64>,
    /// Whether to record what each hook changed.
    pub explain: Explain,
    /// The tenant the run is for: its permissions and hooks apply.
    pub tenant: Option<String>,
    /// The container image, overriding the config's (a runtime parameter
    /// the application must allow).
    pub image: Option<String>,
    /// A JSON merge patch over the rendered pod, before the mutate hooks
    /// (a runtime parameter the application must allow).
    pub pod_override: Option<Value>,
    /// Cpu and memory over the config's (a runtime parameter the
    /// application must allow, within its bounds).
    pub resources: Option<ResourceRequest>,
}

/// Whether the pipeline records what each hook changed, and how much of
/// it: a server shows the changes to callers who may not see the values
/// the config's and the operator's hooks put in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Explain {
    /// Nothing (the fast path).
    #[default]
    No,
    /// Each change with its value (`podrun render --explain`).
    Full,
    /// Each change, with what [`crate::timeline::redact`] hides in a pod
    /// hidden in the values too.
    Redacted,
}

/// Cpu and memory a caller asks for, each replacing the config's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRequest {
    /// Requests (`cpu: 500m`).
    pub requests: crate::context::Resources,
    /// Limits (`memory: 1Gi`).
    pub limits: crate::context::Resources,
}

/// One hook's part in preparing the pod.
#[derive(Debug)]
pub struct HookStep {
    /// The hook's name.
    pub hook: String,
    /// Its kind.
    pub kind: Kind,
    /// How long the call took.
    pub elapsed: Duration,
    /// What it changed, one line per change (only with `explain`).
    pub changes: Vec<String>,
    /// What it logged.
    pub logs: Vec<LogLine>,
}

/// The pod, ready to run.
#[derive(Debug)]
pub struct Prepared {
    /// The run id.
    pub run_id: String,
    /// The final pod.
    pub pod: Pod,
    /// The application context the hooks saw (for the classifiers).
    pub context: RunContext,
    /// What each hook did, in order.
    pub steps: Vec<HookStep>,
}

/// Why the pod could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The config is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A hook failed or refused.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The request does not fit the application.
    #[error("{0}")]
    Request(String),
    /// The request sets what its caller may not set.
    #[error("{message}")]
    NotAllowed {
        /// The parameter, as the API and the config name it
        /// (`application`, `namespace`, `image`, `timeout`…).
        parameter: &'static str,
        /// Why, naming it.
        message: String,
    },
    /// A parameter (`params`) is unknown or missing.
    #[error("{message}")]
    Parameter {
        /// The parameter's name.
        name: String,
        /// Why, naming it.
        message: String,
    },
    /// The template could not be read.
    #[error("cannot read the template {template}: {message}")]
    Template {
        /// The path or URL.
        template: String,
        /// Why.
        message: String,
    },
    /// The render hook could not render the template (a template error).
    #[error("hook {hook} cannot render the template: {message}")]
    Render {
        /// The render hook.
        hook: String,
        /// Its message.
        message: String,
    },
    /// The template renders something that is not a valid Pod.
    #[error("the template {template} does not render a valid Pod: {message}")]
    InvalidTemplate {
        /// The template.
        template: String,
        /// What is wrong, with the field's path.
        message: String,
    },
}

impl PipelineError {
    /// The exit code this failure ends podrun with.
    pub fn exit_code(&self) -> Code {
        match self {
            PipelineError::Config(e) => e.exit_code(),
            PipelineError::Hook(e) => e.exit_code(),
            PipelineError::Request(_)
            | PipelineError::Parameter { .. }
            | PipelineError::NotAllowed { .. }
            | PipelineError::Template { .. }
            | PipelineError::Render { .. }
            | PipelineError::InvalidTemplate { .. } => Code::Usage,
        }
    }
}

/// Runs the application's render and mutate hooks for `request`, then
/// its tenant's, then the operator's policy: mutate hooks, and validate
/// hooks that may only allow or deny.
pub async fn prepare(
    hooks: &Hooks,
    config: &Config,
    request: &Request,
) -> Result<Prepared, PipelineError> {
    let app = config.application(&request.application)?;
    let tenant = access::tenant(config, request)?;
    let granted = access::check(app, tenant, request)?;
    let run_id = match &request.run_id {
        Some(id) if run_id::is_valid(id) => id.clone(),
        Some(id) => {
            return Err(PipelineError::Request(format!(
                "--run-id {id:?} is not valid: use 1 to 40 lowercase letters, digits and dashes"
            )));
        }
        None => run_id::new(),
    };
    let context = application_context(app, request, &run_id, &granted)?;
    let spec = |h: &crate::config::HookRef| {
        config.hook_spec(h, Kind::Mutate).map_err(|message| {
            PipelineError::Config(ConfigError::Invalid {
                path: config.path.clone(),
                problems: vec![message],
            })
        })
    };
    let render_spec = config
        .hook_spec(&app.render_hook(), Kind::Render)
        .map_err(|message| {
            PipelineError::Config(ConfigError::Invalid {
                path: config.path.clone(),
                problems: vec![message],
            })
        })?;
    let render_hook = hooks.load(&render_spec).await?;
    let mut wanted: Vec<(Phase, crate::config::HookRef)> = app
        .mutate_hooks()
        .into_iter()
        .map(|h| (Phase::Application, h))
        .collect();
    let listed = |phase: Phase, hooks: &[serde_saphyr::Spanned<crate::config::HookRef>]| {
        hooks
            .iter()
            .map(|h| (phase, h.value.clone()))
            .collect::<Vec<_>>()
    };
    if let Some(t) = tenant {
        wanted.extend(listed(Phase::Tenant, &t.hooks.mutate));
    }
    wanted.extend(listed(Phase::Policy, &config.policy.mutate));
    wanted.extend(listed(Phase::Validate, &config.policy.validate));
    let mut mutate_hooks = Vec::new();
    for (phase, h) in wanted {
        let spec = spec(&h)?;
        mutate_hooks.push((phase, hooks.load(&spec).await?));
    }

    let template = render::Template {
        source: app.template.value.clone(),
        text: read_template(config.dir(), &app.template.value).await?,
    };
    let mut steps = Vec::new();
    let called = render_hook
        .render(&context, &template)
        .await
        .map_err(|e| match e {
            HookError::Failed { hook, message } => PipelineError::Render { hook, message },
            e => e.into(),
        })?;
    let mut object = parse_object(render_hook.name(), &called.value)?;
    ensure_name(&mut object, &context).map_err(|message| HookError::Output {
        hook: render_hook.name().to_string(),
        message,
    })?;
    validate(&object).map_err(|message| PipelineError::InvalidTemplate {
        template: template.source.clone(),
        message,
    })?;
    steps.push(HookStep {
        hook: render_hook.name().to_string(),
        kind: Kind::Render,
        elapsed: called.elapsed,
        changes: match request.explain {
            Explain::No => Vec::new(),
            Explain::Full => vec![format!("rendered {}", template.source)],
            // A template's address may hold a token.
            Explain::Redacted => vec!["rendered the application's template".into()],
        },
        logs: called.logs,
    });
    if let Some(patch) = &request.pod_override {
        access::override_pod(&mut object, patch, &granted.allowed)?;
    }
    access::label_tenant(&mut object, tenant);

    // Redacted changes wait for the final pod: a value is shown only where
    // that pod shows the same (a hook's passing value is not the caller's).
    let mut redacted: Vec<(usize, Vec<Change>)> = Vec::new();
    for (phase, hook) in &mutate_hooks {
        if *phase == Phase::Policy || *phase == Phase::Validate {
            // No hook before the operator's can pass for another tenant.
            access::label_tenant(&mut object, tenant);
        }
        let before =
            (request.explain != Explain::No || *phase == Phase::Validate).then(|| object.clone());
        let called = apply(hook, &context, &mut object).await?;
        if *phase == Phase::Validate && before.as_ref() != Some(&object) {
            return Err(HookError::Output {
                hook: hook.name().to_string(),
                message: "a validate hook may only allow or deny, and this one changed the pod"
                    .into(),
            }
            .into());
        }
        validate(&object).map_err(|m| HookError::Output {
            hook: hook.name().to_string(),
            message: format!("the Pod is no longer valid: {m}"),
        })?;
        steps.push(HookStep {
            hook: hook.name().to_string(),
            kind: Kind::Mutate,
            elapsed: called.elapsed,
            changes: match (request.explain, before) {
                (Explain::Full, Some(b)) => changes(&b, &object, false)
                    .into_iter()
                    .map(|c| c.line)
                    .collect(),
                (Explain::Redacted, Some(b)) => {
                    redacted.push((steps.len(), changes(&b, &object, true)));
                    Vec::new()
                }
                _ => Vec::new(),
            },
            logs: called.logs,
        });
    }
    access::check_final(&mut object, tenant, &granted)?;
    let pod: Pod = serde_json::from_value(object).map_err(|e| HookError::Output {
        hook: "(final pod)".into(),
        message: e.to_string(),
    })?;
    if !redacted.is_empty() {
        // The pod as the caller sees it: typed (fields Kubernetes does not
        // know are gone), redacted.
        let mut last = serde_json::to_value(&pod).unwrap_or_default();
        crate::timeline::redact(&mut last);
        for (step, changes) in redacted {
            steps[step].changes = changes.into_iter().map(|c| c.seen_against(&last)).collect();
        }
    }
    Ok(Prepared {
        run_id,
        pod,
        context,
        steps,
    })
}

/// Whose a mutate hook is, which decides where it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Application,
    Tenant,
    Policy,
    Validate,
}

/// The application's classifier chain, then its tenant's, in the order
/// they are asked.
pub async fn classifiers(
    hooks: &Hooks,
    config: &Config,
    application: &str,
    tenant: Option<&str>,
) -> Result<Vec<Hook>, PipelineError> {
    let app = config.application(application)?;
    let tenant = match tenant {
        Some(name) => Some(access::tenant_named(config, name)?),
        None => None,
    };
    let mut chain = app.classify_hooks();
    if let Some(t) = tenant {
        chain.extend(t.hooks.classify.iter().map(|h| h.value.clone()));
    }
    let mut loaded = Vec::new();
    for h in chain {
        let spec = config.hook_spec(&h, Kind::Classify).map_err(|message| {
            PipelineError::Config(ConfigError::Invalid {
                path: config.path.clone(),
                problems: vec![message],
            })
        })?;
        loaded.push(hooks.load(&spec).await?);
    }
    Ok(loaded)
}

/// Calls the mutate hook `hook` on `object` and applies what it returns.
/// A hook may not change the object's type.
pub async fn apply(
    hook: &Hook,
    context: &RunContext,
    object: &mut Value,
) -> Result<Called<mutate::Mutation>, HookError> {
    let wire = types::Object {
        api_version: string_field(object, "apiVersion"),
        kind: string_field(object, "kind"),
        json: object.to_string(),
    };
    let called = hook.mutate(context, &wire).await?;
    apply_mutation(hook.name(), object, &called.value)?;
    Ok(called)
}

/// Applies what the mutate hook `hook` returned to `object`; the object's
/// type may not change.
fn apply_mutation(
    hook: &str,
    object: &mut Value,
    mutation: &mutate::Mutation,
) -> Result<(), HookError> {
    let (api_version, kind) = (
        string_field(object, "apiVersion"),
        string_field(object, "kind"),
    );
    let malformed = |message: String| HookError::Output {
        hook: hook.to_string(),
        message,
    };
    match mutation {
        mutate::Mutation::Unchanged => {}
        mutate::Mutation::MergePatch(patch) => {
            let patch: Value = serde_json::from_str(patch)
                .map_err(|e| malformed(format!("the merge patch is not JSON: {e}")))?;
            if !patch.is_object() {
                return Err(malformed("the merge patch is not a JSON object".into()));
            }
            json_patch::merge(object, &patch);
        }
        mutate::Mutation::Replace(json) => *object = parse_object(hook, json)?,
    }
    if string_field(object, "kind") != kind || string_field(object, "apiVersion") != api_version {
        return Err(malformed(shown(
            &format!("it changed the object's type from {api_version} {kind}"),
            MESSAGE_LIMIT,
        )));
    }
    Ok(())
}

/// The context every hook of the run sees.
fn application_context(
    app: &Application,
    request: &Request,
    run_id: &str,
    granted: &access::Granted,
) -> Result<RunContext, PipelineError> {
    let mut params = Vec::new();
    for (name, _) in &request.params {
        if !app.parameters.iter().any(|p| &p.name == name) {
            let allowed: Vec<&str> = app.parameters.iter().map(|p| p.name.as_str()).collect();
            return Err(PipelineError::Parameter {
                name: name.clone(),
                message: format!(
                    "application {} does not accept the parameter {name:?} (it accepts: {})",
                    app.name.value,
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
            });
        }
    }
    for p in &app.parameters {
        let given = request.params.iter().rev().find(|(n, _)| n == &p.name);
        match (given, &p.default) {
            (Some((_, v)), _) | (None, Some(v)) => params.push(crate::context::Param {
                name: p.name.clone(),
                value: v.clone(),
            }),
            (None, None) => {
                return Err(PipelineError::Parameter {
                    name: p.name.clone(),
                    message: format!(
                        "application {} needs the parameter {:?}: pass --param {}=VALUE",
                        app.name.value, p.name, p.name
                    ),
                });
            }
        }
    }
    let resources = |r: &Option<crate::config::Resources>,
                     asked: Option<&crate::context::Resources>| {
        crate::context::Resources {
            cpu: asked
                .and_then(|a| a.cpu.clone())
                .or_else(|| r.as_ref().and_then(|r| r.cpu.as_ref()).map(|q| q.0.clone())),
            memory: asked.and_then(|a| a.memory.clone()).or_else(|| {
                r.as_ref()
                    .and_then(|r| r.memory.as_ref())
                    .map(|q| q.0.clone())
            }),
        }
    };
    let asked = request.resources.as_ref();
    let c = &app.container;
    Ok(RunContext {
        name: app.name.value.0.clone(),
        run_id: run_id.to_string(),
        namespace: granted.namespace.clone(),
        image: request.image.clone().unwrap_or_else(|| c.image.0.clone()),
        arguments: request.arguments.clone(),
        uid: c.uid.as_ref().map(|i| i.0.clone()),
        gid: c.gid.as_ref().map(|i| i.0.clone()),
        requests: resources(&c.resource_requests, asked.map(|a| &a.requests)),
        limits: resources(&c.resource_limits, asked.map(|a| &a.limits)),
        params,
        restart_policy: app.restart_policy.map(|p| p.as_str().to_string()),
        timeout_seconds: granted.timeout,
        pending_timeout_seconds: request.pending_timeout.or(app.pending_timeout.map(|s| s.0)),
        tenant: request.tenant.clone(),
    })
}

/// The largest template read, in bytes.
const MAX_TEMPLATE: u64 = 1 << 20;

/// The template's text, from a file relative to the config or an https URL.
async fn read_template(dir: &Path, source: &str) -> Result<String, PipelineError> {
    let err = |message: String| PipelineError::Template {
        template: source.to_string(),
        message,
    };
    if source.starts_with("https://") {
        let url = source.to_string();
        return tokio::task::spawn_blocking(move || fetch(&template_agent(), &url))
            .await
            .map_err(|e| err(e.to_string()))?
            .map_err(|e| err(e.to_string()));
    }
    // One blocking call: tokio's file reads would hop to a blocking thread
    // for the open and again for each read.
    let path = dir.join(source);
    let text = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(&path)?
            .take(MAX_TEMPLATE + 1)
            .read_to_string(&mut text)?;
        Ok::<_, std::io::Error>(text)
    })
    .await
    .map_err(|e| err(e.to_string()))?
    .map_err(|e| err(e.to_string()))?;
    if text.len() as u64 > MAX_TEMPLATE {
        return Err(err(format!("it is larger than {} KiB", MAX_TEMPLATE >> 10)));
    }
    Ok(text)
}

/// The HTTP client for templates: https only, on every redirect too.
fn template_agent() -> ureq::Agent {
    agent_trusting(ureq::tls::TlsConfig::default())
}

/// The template client, trusting the certificates `tls` says.
fn agent_trusting(tls: ureq::tls::TlsConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .tls_config(tls)
        .https_only(true)
        .max_redirects(5)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn fetch(agent: &ureq::Agent, url: &str) -> Result<String, ureq::Error> {
    agent
        .get(url)
        .call()?
        .body_mut()
        .with_config()
        .limit(MAX_TEMPLATE)
        .read_to_string()
}

fn parse_object(hook: &str, json: &str) -> Result<Value, HookError> {
    let malformed = |message: String| HookError::Output {
        hook: hook.to_string(),
        message,
    };
    let value: Value =
        serde_json::from_str(json).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let typed = |f: &str| value.get(f).is_some_and(Value::is_string);
    if !(value.is_object() && typed("apiVersion") && typed("kind")) {
        return Err(malformed(
            "not a Kubernetes object with apiVersion and kind".into(),
        ));
    }
    Ok(value)
}

fn string_field(object: &Value, field: &str) -> String {
    object
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A pod without a name is named after the application and the run.
/// `metadata` must be an object (or absent).
fn ensure_name(object: &mut Value, app: &RunContext) -> Result<(), String> {
    let Some(object) = object.as_object_mut() else {
        return Err("not a JSON object".into());
    };
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    if metadata.is_null() {
        *metadata = Value::Object(Default::default());
    }
    let Some(metadata) = metadata.as_object_mut() else {
        return Err(format!(
            "its metadata is not an object: {}",
            kind_of(metadata)
        ));
    };
    if !metadata.contains_key("name") && !metadata.contains_key("generateName") {
        metadata.insert(
            "name".into(),
            Value::String(format!("{}-{}", app.name, app.run_id)),
        );
    }
    Ok(())
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks a Pod against the Kubernetes types, naming the bad field.
fn validate(object: &Value) -> Result<(), String> {
    if string_field(object, "kind") != "Pod" || string_field(object, "apiVersion") != "v1" {
        return Err(shown(
            &format!(
                "expected apiVersion v1 and kind Pod, found {} {}",
                string_field(object, "apiVersion"),
                string_field(object, "kind")
            ),
            MESSAGE_LIMIT,
        ));
    }
    serde_path_to_error::deserialize::<_, Pod>(object)
        .map(|_| ())
        // The path holds the object's own keys: shown escaped.
        .map_err(|e| shown(&format!("{}: {}", e.path(), e.inner()), MESSAGE_LIMIT))
}

/// One line per change between two objects, as JSON Patch operations.
/// One change a hook made, as `--explain` shows it.
struct Change {
    /// `add`, `replace` or `remove`, the path and the value it set.
    what: Option<(&'static str, String, Option<Value>)>,
    line: String,
}

impl Change {
    /// The line as a caller who sees only `last` (the final pod, redacted)
    /// may read it: a value only where that pod shows the same, and a path
    /// only as far as that pod has it.
    fn seen_against(self, last: &Value) -> String {
        let Some((op, path, value)) = self.what else {
            return self.line;
        };
        if value.is_some() && last.pointer(&path) == value.as_ref() {
            return self.line;
        }
        let mut shown_path = path.as_str();
        while last.pointer(shown_path).is_none() {
            match shown_path.rfind('/') {
                Some(end) => shown_path = &shown_path[..end],
                None => break,
            }
        }
        let cut = if shown_path.len() < path.len() {
            "/…"
        } else {
            ""
        };
        let note = match value {
            Some(_) => " (not so in the final pod)",
            None => "",
        };
        shown(&format!("{op} {shown_path}{cut}{note}"), MESSAGE_LIMIT)
    }
}

/// What a hook changed, one line each; with `redacted`, values as
/// [`crate::timeline::redact`] leaves them in the hook's result (a value
/// redact drops whole is not shown).
fn changes(before: &Value, after: &Value, redacted: bool) -> Vec<Change> {
    let hidden = redacted.then(|| {
        let mut pod = after.clone();
        crate::timeline::redact(&mut pod);
        pod
    });
    let value = |path: &str, value: &Value| match &hidden {
        None => value.clone(),
        Some(pod) => pod
            .pointer(path)
            .cloned()
            .unwrap_or_else(|| Value::from(crate::timeline::REDACTED)),
    };
    json_patch::diff(before, after)
        .0
        .iter()
        .map(|op| {
            let (what, line) = match op {
                json_patch::PatchOperation::Add(o) => {
                    let (path, value) = (o.path.to_string(), value(o.path.as_str(), &o.value));
                    let line = format!("add {path} = {value}");
                    (Some(("add", path, Some(value))), line)
                }
                json_patch::PatchOperation::Replace(o) => {
                    let (path, value) = (o.path.to_string(), value(o.path.as_str(), &o.value));
                    let line = format!("replace {path} = {value}");
                    (Some(("replace", path, Some(value))), line)
                }
                json_patch::PatchOperation::Remove(o) => {
                    let path = o.path.to_string();
                    let line = format!("remove {path}");
                    (Some(("remove", path, None)), line)
                }
                // diff makes only the three above.
                _ if redacted => (None, "a change (not shown)".to_string()),
                other => (None, other.to_string()),
            };
            Change {
                what,
                line: shown(&line, MESSAGE_LIMIT),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The host's readers of hook output, fuzzed: whatever a hook returns,
    //! they answer with a value or an error, never a panic.

    use proptest::prelude::*;

    use super::*;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z\\x00-\\x1f\"\\\\]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 96, 8, |inner| {
            let key = "apiVersion|kind|metadata|name|generateName|spec|containers|image|[a-z]{0,6}";
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// A rendered object: a Pod's type with anything else.
    fn rendered() -> impl Strategy<Value = Value> {
        (json(), json()).prop_map(|(metadata, spec)| {
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
        })
    }

    fn context() -> RunContext {
        RunContext::bare("app", "run")
    }

    fn read_rendered(text: &str) -> Result<Value, String> {
        let mut object = parse_object("h", text).map_err(|e| e.to_string())?;
        ensure_name(&mut object, &context())?;
        validate(&object)?;
        Ok(object)
    }

    proptest! {
        #[test]
        fn any_text_as_a_render_result(text in ".{0,200}") {
            let _ = read_rendered(&text);
        }

        #[test]
        fn any_json_as_a_render_result(value in json()) {
            let _ = read_rendered(&value.to_string());
        }

        #[test]
        fn any_pod_shaped_render_result(value in rendered()) {
            let named = read_rendered(&value.to_string());
            let metadata = &value["metadata"];
            if !(metadata.is_object() || metadata.is_null()) {
                prop_assert!(named.is_err());
            }
        }

        #[test]
        fn any_mutation_result(object in rendered(), patch in json(), text in ".{0,60}") {
            for mutation in [
                mutate::Mutation::MergePatch(patch.to_string()),
                mutate::Mutation::MergePatch(text.clone()),
                mutate::Mutation::Replace(patch.to_string()),
                mutate::Mutation::Replace(text.clone()),
            ] {
                let mut changed = object.clone();
                if apply_mutation("h", &mut changed, &mutation).is_ok() {
                    prop_assert_eq!(&changed["kind"], "Pod");
                    let _ = validate(&changed);
                }
            }
        }
    }

    #[test]
    fn metadata_that_is_not_an_object_is_an_error() {
        for metadata in [
            serde_json::json!("x"),
            serde_json::json!(5),
            serde_json::json!([]),
        ] {
            let text = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata});
            let err = read_rendered(&text.to_string()).unwrap_err();
            assert!(err.contains("metadata is not an object"), "{err}");
        }
        let named = read_rendered(
            r#"{"apiVersion":"v1","kind":"Pod","metadata":null,"spec":{"containers":[]}}"#,
        )
        .unwrap();
        assert_eq!(named["metadata"]["name"], "app-run");
    }

    #[test]
    fn templates_are_fetched_over_https_only() {
        let err = fetch(&template_agent(), "http://127.0.0.1:9/template").unwrap_err();
        assert!(matches!(err, ureq::Error::RequireHttpsOnly(_)), "{err}");
    }

    #[test]
    fn an_https_template_redirecting_to_http_is_refused() {
        use std::io::{BufRead, BufReader, Write};
        use std::net::TcpListener;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};

        // The redirect's target: it must never be reached.
        let plain = TcpListener::bind("127.0.0.1:0").unwrap();
        let plain_port = plain.local_addr().unwrap().port();
        plain.set_nonblocking(true).unwrap();

        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        let server = Arc::new(server);
        let tls = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tls.local_addr().unwrap().port();
        let done = Arc::new(AtomicBool::new(false));
        let serving = done.clone();
        std::thread::spawn(move || {
            for stream in tls.incoming() {
                if serving.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let conn = rustls::ServerConnection::new(server.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut request = String::new();
                let mut reader = BufReader::new(&mut tls);
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let response = if request.starts_with("GET /moved ") {
                    format!(
                        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{plain_port}/template\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nkind: Pod"
                        .to_string()
                };
                let _ = tls.write_all(response.as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });

        let roots = ureq::tls::RootCerts::new_with_certs(&[ureq::tls::Certificate::from_der(
            cert.cert.der(),
        )
        .to_owned()]);
        let agent = agent_trusting(ureq::tls::TlsConfig::builder().root_certs(roots).build());
        // The server works: a template straight from it is read.
        let base = format!("https://127.0.0.1:{port}");
        assert_eq!(
            fetch(&agent, &format!("{base}/template")).unwrap(),
            "kind: Pod"
        );
        // Its redirect to http is refused, and the http side never called.
        let err = fetch(&agent, &format!("{base}/moved")).unwrap_err();
        assert!(matches!(err, ureq::Error::RequireHttpsOnly(_)), "{err}");
        assert!(plain.accept().is_err(), "the http URL was reached");
        done.store(true, Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(("127.0.0.1", port));
    }

    #[test]
    fn a_redacted_change_shows_only_what_the_final_pod_shows() {
        let before = serde_json::json!({"spec": {"containers": [{"name": "c", "env": []}]},
            "metadata": {"annotations": {"keep": "1"}}});
        let after = serde_json::json!({"spec": {"containers": [{"name": "c",
            "env": [{"name": "KEY", "value": "sesame"}]}], "bogus": "hidden-in-an-unknown-field"},
            "metadata": {"annotations": {"keep": "1", "note": "for-the-next-hook"}}});
        // The final pod: the env var stays, the note and the unknown field
        // are gone.
        let mut last = serde_json::json!({"spec": {"containers": [{"name": "c",
            "env": [{"name": "KEY", "value": "sesame"}]}]},
            "metadata": {"annotations": {"keep": "1"}}});
        crate::timeline::redact(&mut last);
        let lines: Vec<String> = changes(&before, &after, true)
            .into_iter()
            .map(|c| c.seen_against(&last))
            .collect();
        let text = lines.join("\n");
        assert!(
            text.contains(r#"add /spec/containers/0/env/0 = {"name":"KEY","value":"(redacted)"}"#),
            "{text}"
        );
        assert!(
            text.contains("add /spec/… (not so in the final pod)"),
            "{text}"
        );
        assert!(
            text.contains("add /metadata/annotations/… (not so in the final pod)"),
            "{text}"
        );
        for secret in ["sesame", "hidden", "bogus", "for-the-next-hook", "note"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
