//! The built-in script interpreter: runs hooks written in
//! [Rhai](https://rhai.rs), so that a platform engineer can write a policy
//! without a Rust toolchain. It is an ordinary component, so a script has
//! exactly the sandbox of any hook: a CPU deadline, a memory cap, and no
//! files, network, environment or clock.
//!
//! podrun loads the script once per run (`load` compiles it), then calls the
//! script's function for the hook's kind as often as the run needs; the
//! script's top-level statements (constants) run before each call:
//!
//! | kind | function | returns |
//! |---|---|---|
//! | mutate | `fn mutate(object, ctx)` | the changed object, `patch(#{…})` (a merge patch), or `()` for no change; `deny("why")` refuses the run |
//! | classify | `fn classify(observation, ctx)` | `()` for no opinion, or a verdict map: `outcome` (`"running"`, `"succeeded"`, `"failed"`), `reason`, and optionally `message`, `exit_code`, `retryable`, `evidence`, `rule` |
//! | render | `fn render(template, ctx)` | the object as a map |
//!
//! `observation` is `#{pod, events, elapsed_ms}`; `template` is
//! `#{source, text}`; `ctx` has the run's `name`, `run_id`, `namespace`,
//! `image`, `arguments`, `uid`, `gid`, `requests`, `limits`, `params` (a
//! map), `restart_policy`, `timeout_seconds`, `pending_timeout_seconds`
//! and the hook's `settings`. `print` and `warn` send a message to the user.
//! `throw "message"` fails the hook; every error names the script's line and
//! column.

use std::cell::RefCell;

use podrun_hook_sdk::serde_json;
use podrun_hook_sdk::{
    Classify, Context, HookKind, Mutate, Mutation, Observation, Outcome, Refusal, Render, Script,
    Template, Verdict, export_script, log,
};
use rhai::{AST, Dynamic, Engine, EvalAltResult, Map, ParseError, Position, Scope};

/// The interpreter.
pub struct Rhai;

/// A compiled script and what it needs to run.
struct Loaded {
    engine: Engine,
    ast: AST,
    path: String,
}

thread_local! {
    /// The script of this instance: an instance serves one script of one run.
    static LOADED: RefCell<Option<Loaded>> = const { RefCell::new(None) };
}

/// What `deny(message)` throws: a refusal, not a failure.
#[derive(Debug, Clone)]
struct Denial(String);

/// What `patch(map)` returns: a merge patch instead of a whole object.
#[derive(Debug, Clone)]
struct Patch(Map);

/// Limits of one call, so that a runaway script ends as a script error
/// naming its line and column, well before the sandbox's deadline or
/// memory cap would stop it without one.
pub const MAX_OPERATIONS: u64 = 100_000;
/// The longest string, in bytes; and the most items of an array or a map.
pub const MAX_STRING: usize = 4 << 20;
pub const MAX_ITEMS: usize = 50_000;
/// How deep function calls may nest.
pub const MAX_CALL_LEVELS: usize = 64;

fn engine() -> Engine {
    let mut engine = Engine::new();
    // Debug builds of Rhai allow little nesting; a pod is deeply nested.
    engine.set_max_expr_depths(256, 256);
    engine.set_max_operations(MAX_OPERATIONS);
    engine.set_max_string_size(MAX_STRING);
    engine.set_max_array_size(MAX_ITEMS);
    engine.set_max_map_size(MAX_ITEMS);
    engine.set_max_call_levels(MAX_CALL_LEVELS);
    engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    engine.on_print(log::info);
    engine.on_debug(|s, _, pos| log::debug(&format!("{pos}: {s}")));
    engine.register_fn("warn", |s: &str| log::warn(s));
    engine.register_fn("deny", |message: &str| -> Result<(), Box<EvalAltResult>> {
        Err(
            EvalAltResult::ErrorRuntime(Dynamic::from(Denial(message.to_string())), Position::NONE)
                .into(),
        )
    });
    engine.register_fn("patch", |map: Map| Dynamic::from(Patch(map)));
    engine
}

/// `path:line:column: message`, or `path: message` where there is no position.
fn at(path: &str, pos: Position, message: impl std::fmt::Display) -> String {
    match (pos.line(), pos.position()) {
        (Some(line), Some(col)) => format!("{path}:{line}:{col}: {message}"),
        (Some(line), None) => format!("{path}:{line}: {message}"),
        _ => format!("{path}: {message}"),
    }
}

fn parse_error(path: &str, e: &ParseError) -> String {
    at(path, e.position(), &e.0)
}

/// Why a script call did not return a value.
enum Failure {
    Denied(String),
    Error(String),
}

/// The error where it happened, inside the function calls that led there.
fn innermost(e: EvalAltResult) -> EvalAltResult {
    match e {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => innermost(*inner),
        other => other,
    }
}

fn eval_error(path: &str, e: EvalAltResult) -> Failure {
    let mut inner = innermost(e);
    if let EvalAltResult::ErrorRuntime(value, _) = &inner
        && let Some(Denial(message)) = value.clone().try_cast::<Denial>()
    {
        return Failure::Denied(message);
    }
    let pos = inner.take_position();
    Failure::Error(at(path, pos, inner))
}

impl From<Failure> for String {
    fn from(f: Failure) -> String {
        match f {
            Failure::Denied(m) | Failure::Error(m) => m,
        }
    }
}

impl From<Failure> for Refusal {
    fn from(f: Failure) -> Refusal {
        match f {
            Failure::Denied(m) => Refusal::Denied(m),
            Failure::Error(m) => Refusal::Invalid(m),
        }
    }
}

fn function(kind: HookKind) -> (&'static str, &'static str) {
    match kind {
        HookKind::Render => ("render", "fn render(template, ctx)"),
        HookKind::Mutate => ("mutate", "fn mutate(object, ctx)"),
        HookKind::Classify => ("classify", "fn classify(observation, ctx)"),
    }
}

impl Script for Rhai {
    fn load(path: &str, text: &str, kind: HookKind) -> Result<(), String> {
        let engine = engine();
        let ast = engine.compile(text).map_err(|e| parse_error(path, &e))?;
        let (name, signature) = function(kind);
        if !ast
            .iter_functions()
            .any(|f| f.name == name && f.params.len() == 2)
        {
            return Err(format!("{path}: a {name} script must define `{signature}`"));
        }
        // Top-level statements run before every call (constants, helper
        // values); running them once here reports their errors early.
        engine
            .run_ast(&ast)
            .map_err(|e| String::from(eval_error(path, *e)))?;
        LOADED.with_borrow_mut(|l| {
            *l = Some(Loaded {
                engine,
                ast,
                path: path.to_string(),
            })
        });
        Ok(())
    }
}

/// Calls the script's `name` function with `args`.
fn call(name: &str, args: [Dynamic; 2]) -> Result<(Dynamic, String), Failure> {
    LOADED.with_borrow_mut(|l| {
        let Some(l) = l.as_mut() else {
            return Err(Failure::Error("no script is loaded".into()));
        };
        match l
            .engine
            .call_fn::<Dynamic>(&mut Scope::new(), &l.ast, name, args.clone())
        {
            Ok(v) => Ok((v, l.path.clone())),
            Err(mut e) => {
                if e.position().is_none() && e.is_system_exception() {
                    e.set_position(where_it_stops(&l.ast, name, args));
                }
                Err(eval_error(&l.path, *e))
            }
        }
    })
}

/// Where a call that hit a limit stopped. Rhai reports a limit at the call
/// site, which for the hook's own function is podrun; a script is
/// deterministic, so the call is run again, stepping with a debugger that
/// records the last position reached.
fn where_it_stops(ast: &AST, name: &str, args: [Dynamic; 2]) -> Position {
    thread_local! {
        static LAST: std::cell::Cell<Position> = const { std::cell::Cell::new(Position::NONE) };
    }
    LAST.set(Position::NONE);
    let mut engine = engine();
    // The user saw the first run's output already.
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    engine.register_fn("warn", |_: &str| {});
    #[allow(deprecated)]
    engine.register_debugger(
        |_, debugger| debugger,
        |_, event, _, _, pos| {
            if matches!(event, rhai::debugger::DebuggerEvent::Step) && !pos.is_none() {
                LAST.set(pos);
            }
            Ok(rhai::debugger::DebuggerCommand::StepInto)
        },
    );
    let _ = engine.call_fn::<Dynamic>(&mut Scope::new(), ast, name, args);
    LAST.get()
}

fn from_json(what: &str, json: &str) -> Result<Dynamic, Failure> {
    serde_json::from_str(json).map_err(|e| Failure::Error(format!("{what} is not JSON: {e}")))
}

fn to_json(
    path: &str,
    what: &str,
    value: &impl podrun_hook_sdk::serde::Serialize,
) -> Result<String, Failure> {
    serde_json::to_string(value)
        .map_err(|e| Failure::Error(format!("{path}: {what} cannot be written as JSON: {e}")))
}

/// The script's view of the context.
fn context(ctx: &Context) -> Result<Dynamic, Failure> {
    let a = &ctx.application;
    let opt = |v: &Option<String>| v.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT);
    let num = |v: Option<u64>| v.map(|n| Dynamic::from(n as i64)).unwrap_or(Dynamic::UNIT);
    let resources = |r: &podrun_hook_sdk::Resources| {
        let mut m = Map::new();
        m.insert("cpu".into(), opt(&r.cpu));
        m.insert("memory".into(), opt(&r.memory));
        Dynamic::from_map(m)
    };
    let params: Map = a
        .params
        .iter()
        .map(|(k, v)| (k.into(), Dynamic::from(v.clone())))
        .collect();
    let arguments: rhai::Array = a.arguments.iter().cloned().map(Dynamic::from).collect();
    let mut m = Map::new();
    m.insert("name".into(), a.name.clone().into());
    m.insert("run_id".into(), a.run_id.clone().into());
    m.insert("namespace".into(), opt(&a.namespace));
    m.insert("image".into(), a.image.clone().into());
    m.insert("arguments".into(), arguments.into());
    m.insert("uid".into(), opt(&a.uid));
    m.insert("gid".into(), opt(&a.gid));
    m.insert("requests".into(), resources(&a.requests));
    m.insert("limits".into(), resources(&a.limits));
    m.insert("params".into(), params.into());
    m.insert("restart_policy".into(), opt(&a.restart_policy));
    m.insert("timeout_seconds".into(), num(a.timeout_seconds));
    m.insert(
        "pending_timeout_seconds".into(),
        num(a.pending_timeout_seconds),
    );
    m.insert(
        "settings".into(),
        from_json("the settings", &ctx.settings_json)?,
    );
    Ok(Dynamic::from_map(m))
}

impl Mutate for Rhai {
    fn mutate(ctx: &Context, object: &podrun_hook_sdk::Object) -> Result<Mutation, Refusal> {
        let args = [from_json("the object", &object.json)?, context(ctx)?];
        let (value, path) = call("mutate", args)?;
        if value.is_unit() {
            return Ok(Mutation::Unchanged);
        }
        if let Some(Patch(map)) = value.clone().try_cast::<Patch>() {
            return Ok(Mutation::MergePatch(to_json(
                &path,
                "the patch",
                &Dynamic::from_map(map),
            )?));
        }
        if value.is_map() {
            return Ok(Mutation::Replace(to_json(&path, "the object", &value)?));
        }
        Err(Refusal::Invalid(format!(
            "{path}: mutate returned {}: return the object, patch(#{{…}}), or () for no change",
            value.type_name()
        )))
    }
}

impl Classify for Rhai {
    fn classify(ctx: &Context, observation: &Observation) -> Result<Option<Verdict>, String> {
        let mut o = Map::new();
        o.insert("pod".into(), from_json("the pod", &observation.pod)?);
        o.insert(
            "events".into(),
            from_json("the events", &observation.events)?,
        );
        o.insert(
            "elapsed_ms".into(),
            Dynamic::from(observation.elapsed_ms as i64),
        );
        let (value, path) = call("classify", [Dynamic::from_map(o), context(ctx)?])?;
        if value.is_unit() {
            return Ok(None);
        }
        verdict(value)
            .map(Some)
            .map_err(|m| format!("{path}: the verdict {m}"))
    }
}

/// Reads a verdict map, naming the field that is wrong.
fn verdict(value: Dynamic) -> Result<Verdict, String> {
    let type_name = value.type_name();
    let Some(mut map) = value.try_cast::<Map>() else {
        return Err(format!("is {type_name}: return a map or ()"));
    };
    let mut text = |field: &str, required: bool| -> Result<Option<String>, String> {
        match map.remove(field) {
            Some(v) if !v.is_unit() => v
                .into_string()
                .map(Some)
                .map_err(|t| format!("`{field}` is {t}, not a string")),
            _ if required => Err(format!("has no `{field}`")),
            _ => Ok(None),
        }
    };
    let outcome = match text("outcome", true)?.as_deref() {
        Some("running") => Outcome::Running,
        Some("succeeded") => Outcome::Succeeded,
        Some("failed") => Outcome::Failed,
        other => {
            return Err(format!(
                "`outcome` is {:?}: use \"running\", \"succeeded\" or \"failed\"",
                other.unwrap_or_default()
            ));
        }
    };
    let reason = text("reason", true)?.unwrap_or_default();
    let mut v = Verdict::new(outcome, reason, text("message", false)?.unwrap_or_default());
    v.rule = text("rule", false)?;
    if let Some(code) = map.remove("exit_code").filter(|c| !c.is_unit()) {
        let code = code
            .as_int()
            .map_err(|t| format!("`exit_code` is {t}, not a number"))?;
        v.exit_code =
            Some(i32::try_from(code).map_err(|_| format!("`exit_code` {code} is out of range"))?);
    }
    if let Some(r) = map.remove("retryable").filter(|r| !r.is_unit()) {
        v.retryable = r
            .as_bool()
            .map_err(|t| format!("`retryable` is {t}, not true or false"))?;
    }
    if let Some(e) = map.remove("evidence").filter(|e| !e.is_unit()) {
        let list = e
            .into_array()
            .map_err(|t| format!("`evidence` is {t}, not a list"))?;
        v.evidence = list.into_iter().map(|line| line.to_string()).collect();
    }
    if let Some(extra) = map.keys().next() {
        return Err(format!(
            "has an unknown field `{extra}` (fields: outcome, reason, message, exit_code, retryable, evidence, rule)"
        ));
    }
    Ok(v)
}

impl Render for Rhai {
    fn render(ctx: &Context, template: &Template) -> Result<String, String> {
        let mut t = Map::new();
        t.insert("source".into(), template.source.clone().into());
        t.insert("text".into(), template.text.clone().into());
        let (value, path) = call("render", [Dynamic::from_map(t), context(ctx)?])?;
        if !value.is_map() {
            return Err(format!(
                "{path}: render returned {}: return the object as a map",
                value.type_name()
            ));
        }
        Ok(to_json(&path, "the object", &value)?)
    }
}

/// The `script-hook` world's bindings, exported through the SDK's glue.
mod bindings {
    wit_bindgen::generate!({
        world: "script-hook",
        path: "../../wit",
    });
}

export_script!(Rhai, bindings);

#[cfg(test)]
mod tests;
