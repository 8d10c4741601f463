//! What a caller may ask for: the tenant's applications and namespaces, and
//! the runtime parameters the application (narrowed by the tenant) allows.
//! Checked before any hook runs, so a refused request costs nothing.

use serde_json::Value;

use super::{PipelineError, Request};
use crate::config::{Allowed, Application, Config, Tenant};

/// The label every pod of a tenant's run carries, set by podrun itself
/// after the tenant's hooks: the tenant's name, nothing more.
pub const TENANT_LABEL: &str = "podrun.dev/tenant";

fn refused(parameter: &'static str, message: String) -> PipelineError {
    PipelineError::NotAllowed { parameter, message }
}

/// The request's tenant, if it names one.
pub(super) fn tenant<'c>(
    config: &'c Config,
    request: &Request,
) -> Result<Option<&'c Tenant>, PipelineError> {
    match &request.tenant {
        Some(name) => tenant_named(config, name).map(Some),
        None => Ok(None),
    }
}

/// The tenant called `name`.
pub(super) fn tenant_named<'c>(
    config: &'c Config,
    name: &str,
) -> Result<&'c Tenant, PipelineError> {
    config
        .tenant(name)
        .ok_or_else(|| PipelineError::Request(format!("no tenant named {name:?} in the config")))
}

/// What a checked request gets.
pub(super) struct Granted {
    /// What its caller may set.
    pub(super) allowed: Allowed,
    /// The namespace the run goes to.
    pub(super) namespace: Option<String>,
    /// The run's deadline: the caller's or the application's, never over
    /// the maximum when there is one.
    pub(super) timeout: Option<u64>,
}

/// Checks the request against what its caller may set.
pub(super) fn check(
    app: &Application,
    tenant: Option<&Tenant>,
    request: &Request,
) -> Result<Granted, PipelineError> {
    let name = &app.name.value.0;
    let allowed = Allowed::of(
        app.runtime_parameters.as_ref(),
        tenant.and_then(|t| t.runtime_parameters.as_ref()),
    );
    let whose = match tenant {
        Some(t) => format!("tenant {}", t.name.value),
        None => format!("application {name}"),
    };
    if let Some(t) = tenant
        && !t.may_run(name)
    {
        return Err(refused(
            "application",
            format!("application: tenant {} may not run {name}", t.name.value),
        ));
    }
    let not = |parameter: &'static str, what: &str| {
        refused(
            parameter,
            format!("{parameter}: {whose} does not allow callers to set {what}"),
        )
    };
    if !request.arguments.is_empty() && !allowed.command {
        return Err(not("command", "the command"));
    }
    if request.image.is_some() && !allowed.image {
        return Err(not("image", "the image"));
    }
    if let Some(image) = &request.image {
        crate::config::Image::parse(image)
            .map_err(|e| PipelineError::Request(format!("image: {e}")))?;
    }
    if request.pod_override.is_some() && allowed.pod_override.is_empty() {
        return Err(not("pod-override", "a pod override"));
    }
    if let Some(timeout) = request.timeout {
        if timeout == 0 {
            return Err(PipelineError::Request(
                "timeout: at least one second".into(),
            ));
        }
        if !allowed.timeout {
            return Err(not("timeout", "the timeout"));
        }
        if let Some(max) = allowed.max_timeout
            && timeout > max
        {
            return Err(refused(
                "timeout",
                format!("timeout: {timeout} s is over the {max} s {whose} allows"),
            ));
        }
    }
    if request.namespace.is_some() && !allowed.namespace {
        return Err(not("namespace", "the namespace"));
    }
    if let Some(asked) = &request.resources {
        check_resources(asked, &allowed, &whose)?;
    }
    let timeout = request.timeout.or(app.timeout.map(|s| s.0));
    Ok(Granted {
        namespace: namespace(app, tenant, request)?,
        // With a maximum, every run has a deadline within it.
        timeout: match allowed.max_timeout {
            Some(max) => Some(timeout.map_or(max, |t| t.min(max))),
            None => timeout,
        },
        allowed,
    })
}

/// Each quantity asked for must be one the grant names, within its bound.
fn check_resources(
    asked: &super::ResourceRequest,
    allowed: &Allowed,
    whose: &str,
) -> Result<(), PipelineError> {
    let each = [
        ("requests", "cpu", &asked.requests.cpu),
        ("requests", "memory", &asked.requests.memory),
        ("limits", "cpu", &asked.limits.cpu),
        ("limits", "memory", &asked.limits.memory),
    ];
    for (kind, resource, value) in each {
        let Some(value) = value else { continue };
        let field = format!("resources.{kind}.{resource}");
        let number = crate::config::quantity_value(value)
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| {
                PipelineError::Request(format!(
                    "{field}: {value:?} is not a positive Kubernetes quantity (like 500m or 1Gi)"
                ))
            })?;
        let bounds = allowed.resources.ok_or_else(|| {
            refused(
                "resources",
                format!("resources: {whose} does not allow callers to set resources"),
            )
        })?;
        let (max, asked, unit) = match resource {
            "cpu" => (bounds.cpu_millis, (number * 1000.0).ceil(), "millicores"),
            _ => (bounds.memory_bytes, number.ceil(), "bytes"),
        };
        let Some(max) = max else {
            return Err(refused(
                "resources",
                format!("{field}: {whose} does not allow callers to set {resource}"),
            ));
        };
        if asked > max as f64 {
            return Err(refused(
                "resources",
                format!("{field}: {value} is over the {max} {unit} {whose} allows"),
            ));
        }
    }
    Ok(())
}

/// Refuses a tenant's run on the local runtime, which runs a pod's
/// commands as processes on this host, unless the operator allows it.
pub fn check_runtime(
    config: &Config,
    tenant: Option<&str>,
    runtime: &str,
) -> Result<(), PipelineError> {
    let Some(name) = tenant else {
        return Ok(());
    };
    let tenant = tenant_named(config, name)?;
    if runtime == "local" && !tenant.local_runtime {
        return Err(refused(
            "runtime",
            format!(
                "runtime: the local runtime runs pods as processes on this host, which tenant {} \
                 may not do (the operator enables it with `local-runtime: true`)",
                tenant.name.value
            ),
        ));
    }
    Ok(())
}

/// The run's namespace: the caller's, the application's, or the tenant's
/// first; a tenant's run only in the tenant's namespaces (without a list,
/// only in the application's).
fn namespace(
    app: &Application,
    tenant: Option<&Tenant>,
    request: &Request,
) -> Result<Option<String>, PipelineError> {
    let own = app.namespace.as_ref().map(|n| n.0.clone());
    let Some(tenant) = tenant else {
        return Ok(request.namespace.clone().or(own));
    };
    let listed: Vec<&str> = match &tenant.namespaces {
        Some(list) => list.iter().map(|n| n.0.as_str()).collect(),
        None => own.as_deref().into_iter().collect(),
    };
    let chosen = request
        .namespace
        .clone()
        .or_else(|| own.clone().filter(|n| listed.contains(&n.as_str())))
        .or_else(|| listed.first().map(|n| n.to_string()));
    match &chosen {
        Some(ns) if listed.contains(&ns.as_str()) => Ok(chosen),
        // The runtime's default namespace, for a tenant given none.
        None if tenant.namespaces.is_none() => Ok(None),
        _ => Err(refused(
            "namespace",
            format!(
                "namespace: tenant {} may not run in {} (it may use: {})",
                tenant.name.value,
                chosen.as_deref().unwrap_or("the default namespace"),
                if listed.is_empty() {
                    "none".to_string()
                } else {
                    listed.join(", ")
                }
            ),
        )),
    }
}

/// Applies the caller's pod override (a JSON merge patch) to the rendered
/// pod. The mutate hooks and the policy run after it. It may change only
/// the fields the grant lists, and never what other grants govern: the
/// containers' images and commands (unless those are granted too), the
/// pod's identity, namespace, service account, node, deadline or grace
/// period.
pub(super) fn override_pod(
    object: &mut Value,
    patch: &Value,
    allowed: &Allowed,
) -> Result<(), PipelineError> {
    if !patch.is_object() {
        return Err(PipelineError::Request(
            "pod-override: must be a JSON object (a merge patch over the pod)".into(),
        ));
    }
    let denied = |what: String| {
        refused(
            "pod-override",
            format!("pod-override: may not change {what}"),
        )
    };
    let mut leaves = Vec::new();
    if patch.as_object().is_some_and(|fields| !fields.is_empty()) {
        leaf_paths(patch, &mut Vec::new(), &mut leaves);
    }
    if let Some(path) = leaves.iter().find(|p| !allowed.may_override(p)) {
        let open: Vec<String> = allowed
            .pod_override
            .iter()
            .map(|list| {
                list.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        return Err(refused(
            "pod-override",
            format!(
                "pod-override: may not change {} (open to overrides: {})",
                super::shown(&path.join("."), super::MESSAGE_LIMIT),
                open.join("; and of those ")
            ),
        ));
    }
    let before = object.clone();
    json_patch::merge(object, patch);
    for pointer in [
        "/apiVersion",
        "/kind",
        "/metadata/name",
        "/metadata/generateName",
        "/metadata/namespace",
        "/metadata/ownerReferences",
        "/metadata/finalizers",
        "/spec/serviceAccountName",
        "/spec/serviceAccount",
        "/spec/automountServiceAccountToken",
        "/spec/nodeName",
        "/spec/activeDeadlineSeconds",
        "/spec/terminationGracePeriodSeconds",
        "/spec/resources",
        "/spec/resourceClaims",
        "/spec/overhead",
    ] {
        if before.pointer(pointer) != object.pointer(pointer) {
            return Err(denied(pointer[1..].replace('/', ".")));
        }
    }
    if object.get("metadata").is_none_or(|m| !m.is_object()) {
        return Err(denied("metadata".into()));
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let containers = |pod: &Value| -> Vec<Value> {
            pod.pointer(&format!("/spec/{list}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let old = containers(&before);
        for (i, c) in containers(object).iter().enumerate() {
            let same = old.iter().find(|o| o.get("name") == c.get("name"));
            let field = |f: &str| (c.get(f), same.and_then(|o| o.get(f)));
            let changed = |f: &str| {
                let (now, was) = field(f);
                same.is_none() || now != was
            };
            if changed("image") && !allowed.image {
                return Err(denied(format!(
                    "spec.{list}[{i}].image without the image grant"
                )));
            }
            // Each of these runs or steers a command in the container.
            for f in [
                "command",
                "args",
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
                "env",
                "envFrom",
                "workingDir",
            ] {
                if changed(f) && !allowed.command {
                    return Err(denied(format!(
                        "spec.{list}[{i}].{f} without the command grant"
                    )));
                }
            }
            let (resources, was) = field("resources");
            if resources != was && resources.is_some_and(|r| !r.is_null()) {
                return Err(denied(format!(
                    "spec.{list}[{i}].resources (the resources parameter sets them, within its bounds)"
                )));
            }
        }
    }
    // A volume can bring another image's files.
    let images = |pod: &Value| -> Vec<Value> {
        pod.pointer("/spec/volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("image").cloned())
            .collect()
    };
    if images(object) != images(&before) && !allowed.image {
        return Err(denied("an image volume without the image grant".into()));
    }
    super::validate(object)
        .map_err(|m| PipelineError::Request(format!("pod-override: the Pod is not valid: {m}")))
}

/// The paths of what a merge patch sets: down to each value that is not
/// a non-empty object (a list is replaced whole).
fn leaf_paths<'a>(value: &'a Value, path: &mut Vec<&'a str>, out: &mut Vec<Vec<&'a str>>) {
    match value.as_object() {
        Some(fields) if !fields.is_empty() => {
            for (key, inner) in fields {
                path.push(key);
                leaf_paths(inner, path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

/// What no hook may leave otherwise, checked on the final pod: a tenant's
/// label and namespace, and a deadline within the maximum.
pub(super) fn check_final(
    object: &mut Value,
    tenant: Option<&Tenant>,
    granted: &Granted,
) -> Result<(), PipelineError> {
    label_tenant(object, tenant);
    if let Some(max) = granted.allowed.max_timeout {
        let deadline = object
            .pointer("/spec/activeDeadlineSeconds")
            .and_then(Value::as_u64);
        if deadline.is_none_or(|d| d == 0 || d > max) {
            return Err(refused(
                "timeout",
                format!(
                    "timeout: the pod's activeDeadlineSeconds ({}) is not within the {max} s allowed",
                    deadline.map_or("none".to_string(), |d| d.to_string())
                ),
            ));
        }
    }
    if let Some(t) = tenant
        && let Some(ns) = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
        && Some(ns) != granted.namespace.as_deref()
    {
        return Err(refused(
            "namespace",
            format!(
                "namespace: a hook moved tenant {}'s pod to {ns}, which is not its run's namespace",
                t.name.value
            ),
        ));
    }
    Ok(())
}

/// Sets the tenant's label on a tenant's pod (over any a hook forged).
/// Other pods are left as they are.
pub(super) fn label_tenant(object: &mut Value, tenant: Option<&Tenant>) {
    let Some(tenant) = tenant else {
        return;
    };
    let Some(object) = object.as_object_mut() else {
        return;
    };
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    if !metadata.is_object() {
        *metadata = Value::Object(Default::default());
    }
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    if !labels.is_object() {
        *labels = Value::Object(Default::default());
    }
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(
            TENANT_LABEL.into(),
            Value::String(tenant.name.value.0.clone()),
        );
    }
}
