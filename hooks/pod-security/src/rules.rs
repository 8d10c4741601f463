//! The rules, one function per control of the standards, each adding a
//! line per field that breaks it.

use podrun_hook_sdk::serde_json::Value;

use crate::{Level, Requirement};

/// Capabilities baseline lets a container add.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Sysctls baseline allows (namespaced, and safe).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// SELinux types baseline allows.
const SELINUX_TYPES: &[&str] = &[
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Volume types restricted allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

const APPARMOR_ANNOTATION: &str = "container.apparmor.security.beta.kubernetes.io/";

/// Every broken rule, one line each, naming the field.
pub fn check(object: &Value, path: &[&str], level: Level, require: &[Requirement]) -> Vec<String> {
    let mut broken = Vec::new();
    let spec = path.iter().try_fold(object, |v, key| v.get(key));
    let spec = spec.unwrap_or(&Value::Null);
    let at = path.join(".");
    // A pod template's own metadata sits beside its spec.
    let metadata_path = &path[..path.len() - 1];
    let metadata = metadata_path
        .iter()
        .try_fold(object, |v, key| v.get(key))
        .and_then(|v| v.get("metadata"))
        .unwrap_or(&Value::Null);
    let meta_at = if metadata_path.is_empty() {
        "metadata".to_string()
    } else {
        format!("{}.metadata", metadata_path.join("."))
    };
    let mut c = Checker {
        broken: &mut broken,
        restricted: level == Level::Restricted,
    };
    c.pod(spec, &at);
    c.apparmor_annotations(metadata, &meta_at);
    for (list, containers) in containers(spec) {
        for (i, container) in containers.iter().enumerate() {
            c.container(spec, container, &format!("{at}.{list}[{i}]"));
        }
    }
    for r in require {
        match r {
            Requirement::Deadline => {
                if spec
                    .get("activeDeadlineSeconds")
                    .and_then(Value::as_u64)
                    .is_none_or(|s| s == 0)
                {
                    broken.push(format!("{at}.activeDeadlineSeconds: required, and not set"));
                }
            }
            Requirement::NoToken => {
                if spec.get("automountServiceAccountToken") != Some(&Value::Bool(false)) {
                    broken.push(format!(
                        "{at}.automountServiceAccountToken: must be false (no API token)"
                    ));
                }
                // A token can be asked for by volume too.
                for (i, volume) in items(spec, "/volumes") {
                    for (j, source) in items(volume, "/projected/sources") {
                        if source
                            .get("serviceAccountToken")
                            .is_some_and(|t| !t.is_null())
                        {
                            broken.push(format!(
                                "{at}.volumes[{i}].projected.sources[{j}].serviceAccountToken: no API token"
                            ));
                        }
                    }
                }
            }
            Requirement::NoFinalizers => {
                let finalizers = object.pointer("/metadata/finalizers");
                if finalizers
                    .and_then(Value::as_array)
                    .is_some_and(|f| !f.is_empty())
                {
                    broken.push("metadata.finalizers: must be empty".to_string());
                }
            }
        }
    }
    broken
}

/// The pod's container lists, by field name.
fn containers(spec: &Value) -> Vec<(&'static str, &Vec<Value>)> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .filter_map(|list| spec.get(list).and_then(Value::as_array).map(|c| (list, c)))
        .collect()
}

/// The items of the list at `pointer` with their indexes; none where there
/// is no list.
fn items<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

fn is_true(v: Option<&Value>) -> bool {
    v == Some(&Value::Bool(true))
}

fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

struct Checker<'a> {
    broken: &'a mut Vec<String>,
    restricted: bool,
}

impl Checker<'_> {
    fn push(&mut self, line: String) {
        self.broken.push(line);
    }

    fn pod(&mut self, spec: &Value, at: &str) {
        for field in ["hostNetwork", "hostPID", "hostIPC"] {
            if is_true(spec.get(field)) {
                self.push(format!("{at}.{field}: host namespaces are not allowed"));
            }
        }
        let security = spec.get("securityContext").unwrap_or(&Value::Null);
        let sat = format!("{at}.securityContext");
        self.security_context(security, &sat);
        for (i, sysctl) in items(security, "/sysctls") {
            let name = text(sysctl.get("name")).unwrap_or("");
            if !SAFE_SYSCTLS.contains(&name) {
                self.push(format!(
                    "{sat}.sysctls[{i}].name: {name:?} is not a safe sysctl"
                ));
            }
        }
        for (i, volume) in items(spec, "/volumes") {
            let Some(fields) = volume.as_object() else {
                continue;
            };
            if fields.get("hostPath").is_some_and(|v| !v.is_null()) {
                self.push(format!(
                    "{at}.volumes[{i}].hostPath: hostPath volumes are not allowed"
                ));
            } else if self.restricted {
                for (kind, value) in fields {
                    if kind != "name"
                        && !value.is_null()
                        && !RESTRICTED_VOLUMES.contains(&kind.as_str())
                    {
                        self.push(format!(
                            "{at}.volumes[{i}].{kind}: this volume type is not allowed"
                        ));
                    }
                }
            }
        }
    }

    /// The rules a pod's and a container's security contexts share.
    fn security_context(&mut self, security: &Value, at: &str) {
        if is_true(security.pointer("/windowsOptions/hostProcess")) {
            self.push(format!(
                "{at}.windowsOptions.hostProcess: host processes are not allowed"
            ));
        }
        if let Some(selinux) = security.get("seLinuxOptions").filter(|v| !v.is_null()) {
            if let Some(t) = text(selinux.get("type")).filter(|t| !t.is_empty())
                && !SELINUX_TYPES.contains(&t)
            {
                self.push(format!("{at}.seLinuxOptions.type: {t:?} is not allowed"));
            }
            for field in ["user", "role"] {
                if text(selinux.get(field)).is_some_and(|v| !v.is_empty()) {
                    self.push(format!("{at}.seLinuxOptions.{field}: must not be set"));
                }
            }
        }
        if text(security.pointer("/seccompProfile/type")) == Some("Unconfined") {
            self.push(format!(
                "{at}.seccompProfile.type: Unconfined is not allowed"
            ));
        }
        if let Some(t) = text(security.pointer("/appArmorProfile/type"))
            && t != "RuntimeDefault"
            && t != "Localhost"
        {
            self.push(format!("{at}.appArmorProfile.type: {t:?} is not allowed"));
        }
        if self.restricted && security.get("runAsUser").and_then(Value::as_i64) == Some(0) {
            self.push(format!("{at}.runAsUser: must not be 0 (root)"));
        }
    }

    fn container(&mut self, spec: &Value, container: &Value, at: &str) {
        let security = container.get("securityContext").unwrap_or(&Value::Null);
        let sat = format!("{at}.securityContext");
        if is_true(security.get("privileged")) {
            self.push(format!(
                "{sat}.privileged: privileged containers are not allowed"
            ));
        }
        self.security_context(security, &sat);
        if text(security.get("procMount")).is_some_and(|m| m != "Default") {
            self.push(format!("{sat}.procMount: must be Default"));
        }
        for (i, port) in items(container, "/ports") {
            if port
                .get("hostPort")
                .and_then(Value::as_i64)
                .is_some_and(|p| p != 0)
            {
                self.push(format!(
                    "{at}.ports[{i}].hostPort: host ports are not allowed"
                ));
            }
        }
        // Baseline since Kubernetes 1.34: probes and lifecycle handlers
        // may not send the kubelet to another host.
        for handler in [
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "lifecycle/postStart",
            "lifecycle/preStop",
        ] {
            for action in ["httpGet", "tcpSocket"] {
                let host = container.pointer(&format!("/{handler}/{action}/host"));
                if text(host).is_some_and(|h| !h.is_empty()) {
                    self.push(format!(
                        "{at}.{}.{action}.host: probes and lifecycle handlers may not name a host",
                        handler.replace('/', ".")
                    ));
                }
            }
        }
        for (i, cap) in items(security, "/capabilities/add") {
            let name = cap.as_str().unwrap_or("");
            let allowed = if self.restricted {
                name == "NET_BIND_SERVICE"
            } else {
                BASELINE_CAPABILITIES.contains(&name)
            };
            if !allowed {
                self.push(format!(
                    "{sat}.capabilities.add[{i}]: adding {name:?} is not allowed"
                ));
            }
        }
        if !self.restricted {
            return;
        }
        if security.get("allowPrivilegeEscalation") != Some(&Value::Bool(false)) {
            self.push(format!("{sat}.allowPrivilegeEscalation: must be false"));
        }
        let drops_all = security
            .pointer("/capabilities/drop")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|c| c.as_str() == Some("ALL")));
        if !drops_all {
            self.push(format!("{sat}.capabilities.drop: must include ALL"));
        }
        let pod_security = spec.get("securityContext").unwrap_or(&Value::Null);
        let non_root = match security.get("runAsNonRoot").and_then(Value::as_bool) {
            Some(own) => own,
            None => is_true(pod_security.get("runAsNonRoot")),
        };
        if !non_root {
            self.push(format!(
                "{sat}.runAsNonRoot: must be true (here or in the pod's securityContext)"
            ));
        }
        let seccomp = text(security.pointer("/seccompProfile/type"))
            .or_else(|| text(pod_security.pointer("/seccompProfile/type")));
        if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
            self.push(format!(
                "{sat}.seccompProfile.type: must be RuntimeDefault or Localhost (here or in the pod's securityContext)"
            ));
        }
    }

    fn apparmor_annotations(&mut self, metadata: &Value, at: &str) {
        let Some(annotations) = metadata.get("annotations").and_then(Value::as_object) else {
            return;
        };
        for (key, value) in annotations {
            if !key.starts_with(APPARMOR_ANNOTATION) {
                continue;
            }
            let value = value.as_str().unwrap_or("");
            if value != "runtime/default" && !value.starts_with("localhost/") {
                self.push(format!(
                    "{at}.annotations[{key:?}]: AppArmor profile {value:?} is not allowed"
                ));
            }
        }
    }
}
