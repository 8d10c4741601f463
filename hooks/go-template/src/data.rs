//! The data a template sees: pod-runner's field names, plus podrun's.

use std::collections::BTreeMap;

use podrun_hook_sdk::Application;
use podrun_hook_sdk::serde::Serialize;

use crate::values::Placeholders;

#[derive(Serialize)]
#[serde(crate = "podrun_hook_sdk::serde", rename_all = "PascalCase")]
struct Resources {
    memory: String,
    cpu: String,
    #[serde(rename = "CPU")]
    cpu_upper: String,
}

#[derive(Serialize)]
#[serde(crate = "podrun_hook_sdk::serde", rename_all = "PascalCase")]
struct Container {
    image: String,
    /// The arguments as the items of a YAML flow sequence.
    arguments: String,
    /// The arguments one by one, for `range`.
    argument_list: Vec<String>,
    #[serde(rename = "UID")]
    uid: String,
    #[serde(rename = "GID")]
    gid: String,
    resource_request: Resources,
    resource_limit: Resources,
}

#[derive(Serialize)]
#[serde(crate = "podrun_hook_sdk::serde", rename_all = "PascalCase")]
pub(crate) struct Data {
    name: String,
    unique_id: String,
    run_id: String,
    namespace: String,
    container: Container,
    // Short forms of the container's fields, as podrun's docs use them.
    image: String,
    #[serde(rename = "UID")]
    uid: String,
    #[serde(rename = "GID")]
    gid: String,
    resource_request: Resources,
    resource_limit: Resources,
    params: BTreeMap<String, String>,
}

fn resources(r: &podrun_hook_sdk::Resources, p: &mut Placeholders) -> Resources {
    let cpu = p.config_value(r.cpu.as_deref().unwrap_or(""));
    Resources {
        memory: p.config_value(r.memory.as_deref().unwrap_or("")),
        cpu_upper: cpu.clone(),
        cpu,
    }
}

/// Builds the template data. Config values are inserted as written when they
/// are plain words; anything else, and all user input, becomes a placeholder.
pub(crate) fn template_data(app: &Application, p: &mut Placeholders) -> Data {
    let argument_list: Vec<String> = app.arguments.iter().map(|a| p.user_value(a)).collect();
    let opt = |v: &Option<String>, p: &mut Placeholders| p.config_value(v.as_deref().unwrap_or(""));
    let container = Container {
        image: p.config_value(&app.image),
        arguments: argument_list.join(", "),
        argument_list,
        uid: opt(&app.uid, p),
        gid: opt(&app.gid, p),
        resource_request: resources(&app.requests, p),
        resource_limit: resources(&app.limits, p),
    };
    Data {
        name: p.config_value(&app.name),
        unique_id: p.config_value(&app.run_id),
        run_id: p.config_value(&app.run_id),
        namespace: opt(&app.namespace, p),
        image: container.image.clone(),
        uid: container.uid.clone(),
        gid: container.gid.clone(),
        resource_request: resources(&app.requests, p),
        resource_limit: resources(&app.limits, p),
        params: app
            .params
            .iter()
            .map(|(k, v)| (k.clone(), p.user_value(v)))
            .collect(),
        container,
    }
}
