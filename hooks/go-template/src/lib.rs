//! Built-in render hook `go-template`: renders pod-runner templates (Go
//! text/template syntax) unchanged, and makes sure no user value can change
//! the structure of the pod.
//!
//! Values from the config (name, image, uid, gid, resources) are validated
//! by podrun and inserted as written, exactly as pod-runner did. Values from
//! the caller (the command's arguments and runtime parameters) never reach
//! the YAML parser: the template sees an inert placeholder for each one, the
//! rendered YAML is parsed, and only then is every placeholder replaced by
//! its value inside the string it stands in. A `--command` full of quotes,
//! commas, brackets, colons or newlines therefore stays a list of argument
//! strings.

mod data;
mod values;
mod yaml;

use podrun_hook_sdk::serde_json::{self, Value};
use podrun_hook_sdk::{Context, Render, Template, export_render};

pub use values::{Placeholders, TOKEN_PREFIX};

/// The hook.
pub struct GoTemplate;

impl Render for GoTemplate {
    fn render(ctx: &Context, template: &Template) -> Result<String, String> {
        let _: serde_json::Map<String, Value> = ctx.settings()?;
        render(ctx, template).map(|v| v.to_string())
    }
}

export_render!(GoTemplate);

/// Renders `template` for `ctx` into a JSON value.
pub fn render(ctx: &Context, template: &Template) -> Result<Value, String> {
    let source = &template.source;
    if template.text.contains(TOKEN_PREFIX) {
        return Err(format!(
            "template {source}: `{TOKEN_PREFIX}` is reserved and must not appear in a template"
        ));
    }
    let mut placeholders = Placeholders::default();
    let data = data::template_data(&ctx.application, &mut placeholders);
    let data = gotmpl::to_value(&data).map_err(|e| format!("template {source}: {e}"))?;
    let text = gotmpl::Template::new(source)
        .missing_key(gotmpl::MissingKey::Error)
        .parse(&template.text)
        .map_err(|e| format!("template {source}: {e}"))?
        .execute_to_string(&data)
        .map_err(|e| format!("template {source}: {e}"))?;
    let mut value = yaml::parse(&text).map_err(|e| {
        let line = e
            .split("line ")
            .nth(1)
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| text.lines().nth(n.saturating_sub(1)))
            .map(|l| format!("\n  rendered line: {l}"))
            .unwrap_or_default();
        format!("template {source} does not render to valid YAML: {e}{line}")
    })?;
    placeholders.substitute(&mut value);
    values::drop_nulls(&mut value);
    values::quantities_as_strings(&mut value);
    match (&value.get("apiVersion"), &value.get("kind")) {
        (Some(Value::String(_)), Some(Value::String(_))) => Ok(value),
        _ => Err(format!(
            "template {source} must render a Kubernetes object with apiVersion and kind"
        )),
    }
}
