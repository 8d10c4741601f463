//! The glue between the WIT contract and the hook traits; used by the
//! `export_*!` macros, not by hook authors directly.
//!
//! Each world has its own bindings module (wit-bindgen exports a whole
//! world), so the conversions are written once as macros and stamped out
//! for each module that has the interface. The macros are exported so that
//! a script interpreter, which generates the `script-hook` bindings in its
//! own crate (wit-bindgen's export macros of one crate cannot export the
//! same interface twice), gets the same glue through [`export_script!`].

#![allow(missing_docs)]

use std::marker::PhantomData;

macro_rules! bindings {
    ($module:ident, $world:literal, $macro:literal, $path:literal) => {
        pub mod $module {
            wit_bindgen::generate!({
                world: $world,
                path: "wit",
                pub_export_macro: true,
                export_macro_name: $macro,
                default_bindings_module: $path,
            });
        }
    };
}

bindings!(
    render,
    "render-hook",
    "__export_render_world",
    "::podrun_hook_sdk::__private::render"
);
bindings!(
    mutate,
    "mutate-hook",
    "__export_mutate_world",
    "::podrun_hook_sdk::__private::mutate"
);
bindings!(
    classify,
    "classify-hook",
    "__export_classify_world",
    "::podrun_hook_sdk::__private::classify"
);

#[cfg(target_arch = "wasm32")]
pub(crate) use mutate::podrun::hook::log as log_import;

#[doc(hidden)]
#[macro_export]
macro_rules! __context_from_wit {
    ($module:ident) => {
        impl From<$module::podrun::hook::types::Context> for $crate::Context {
            fn from(ctx: $module::podrun::hook::types::Context) -> Self {
                use $module::podrun::hook::types::Resources as R;
                let res = |r: R| $crate::Resources {
                    cpu: r.cpu,
                    memory: r.memory,
                };
                let a = ctx.application;
                $crate::Context {
                    application: $crate::Application {
                        name: a.name,
                        run_id: a.run_id,
                        namespace: a.namespace,
                        image: a.image,
                        arguments: a.arguments,
                        uid: a.uid,
                        gid: a.gid,
                        requests: res(a.requests),
                        limits: res(a.limits),
                        params: a.params.into_iter().map(|p| (p.name, p.value)).collect(),
                        restart_policy: a.restart_policy,
                        timeout_seconds: a.timeout_seconds,
                        pending_timeout_seconds: a.pending_timeout_seconds,
                    },
                    settings_json: ctx.settings,
                }
            }
        }
    };
}

/// Implements the render export of `$module` for `$adapter<T: Render>`.
#[doc(hidden)]
#[macro_export]
macro_rules! __render_guest {
    ($module:ident, $adapter:ident) => {
        impl<T: $crate::Render> $module::exports::podrun::hook::render::Guest for $adapter<T> {
            fn render(
                ctx: $module::podrun::hook::types::Context,
                template: $module::exports::podrun::hook::render::Template,
            ) -> Result<String, String> {
                let template = $crate::Template {
                    source: template.source,
                    text: template.text,
                };
                T::render(&ctx.into(), &template)
            }
        }
    };
}

/// Implements the mutate export of `$module` for `$adapter<T: Mutate>`.
#[doc(hidden)]
#[macro_export]
macro_rules! __mutate_guest {
    ($module:ident, $adapter:ident) => {
        impl<T: $crate::Mutate> $module::exports::podrun::hook::mutate::Guest for $adapter<T> {
            fn mutate(
                ctx: $module::podrun::hook::types::Context,
                object: $module::podrun::hook::types::Object,
            ) -> Result<
                $module::exports::podrun::hook::mutate::Mutation,
                $module::exports::podrun::hook::mutate::Refusal,
            > {
                use $module::exports::podrun::hook::mutate::{Mutation as M, Refusal as R};
                let object = $crate::Object {
                    api_version: object.api_version,
                    kind: object.kind,
                    json: object.json,
                };
                match T::mutate(&ctx.into(), &object) {
                    Ok($crate::Mutation::Unchanged) => Ok(M::Unchanged),
                    Ok($crate::Mutation::MergePatch(p)) => Ok(M::MergePatch(p)),
                    Ok($crate::Mutation::Replace(o)) => Ok(M::Replace(o)),
                    Err($crate::Refusal::Denied(m)) => Err(R::Denied(m)),
                    Err($crate::Refusal::Invalid(m)) => Err(R::Invalid(m)),
                }
            }
        }
    };
}

/// Implements the classify export of `$module` for `$adapter<T: Classify>`.
#[doc(hidden)]
#[macro_export]
macro_rules! __classify_guest {
    ($module:ident, $adapter:ident) => {
        impl<T: $crate::Classify> $module::exports::podrun::hook::classify::Guest for $adapter<T> {
            fn classify(
                ctx: $module::podrun::hook::types::Context,
                observation: $module::exports::podrun::hook::classify::Observation,
            ) -> Result<Option<$module::exports::podrun::hook::classify::Verdict>, String> {
                use $module::exports::podrun::hook::classify::{Outcome as O, Verdict as V};
                let observation = $crate::Observation {
                    pod: observation.pod,
                    events: observation.events,
                    elapsed_ms: observation.elapsed_ms,
                };
                let verdict = T::classify(&ctx.into(), &observation)?;
                Ok(verdict.map(|v| V {
                    outcome: match v.outcome {
                        $crate::Outcome::Running => O::Running,
                        $crate::Outcome::Succeeded => O::Succeeded,
                        $crate::Outcome::Failed => O::Failed,
                    },
                    retryable: v.retryable,
                    reason: v.reason,
                    message: v.message,
                    exit_code: v.exit_code,
                    evidence: v.evidence,
                    rule: v.rule,
                }))
            }
        }
    };
}

crate::__context_from_wit!(render);
crate::__context_from_wit!(mutate);
crate::__context_from_wit!(classify);

/// Connects a [`crate::Render`] to the component's export.
pub struct RenderAdapter<T>(PhantomData<T>);
/// Connects a [`crate::Mutate`] to the component's export.
pub struct MutateAdapter<T>(PhantomData<T>);
/// Connects a [`crate::Classify`] to the component's export.
pub struct ClassifyAdapter<T>(PhantomData<T>);
/// Connects a [`crate::Script`] interpreter to the component's exports.
pub struct ScriptAdapter<T>(PhantomData<T>);

crate::__render_guest!(render, RenderAdapter);
crate::__mutate_guest!(mutate, MutateAdapter);
crate::__classify_guest!(classify, ClassifyAdapter);

/// Makes a type implementing [`Render`](crate::Render) this component's
/// render hook.
#[macro_export]
macro_rules! export_render {
    ($hook:ty) => {
        const _: fn() = || {
            fn is_render<T: $crate::Render>() {}
            is_render::<$hook>();
        };
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __PodrunRender = $crate::__private::RenderAdapter<$hook>;
            $crate::__private::render::__export_render_world!(__PodrunRender with_types_in $crate::__private::render);
        };
    };
}

/// Makes a type implementing [`Mutate`](crate::Mutate) this component's
/// mutate hook.
#[macro_export]
macro_rules! export_mutate {
    ($hook:ty) => {
        const _: fn() = || {
            fn is_mutate<T: $crate::Mutate>() {}
            is_mutate::<$hook>();
        };
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __PodrunMutate = $crate::__private::MutateAdapter<$hook>;
            $crate::__private::mutate::__export_mutate_world!(__PodrunMutate with_types_in $crate::__private::mutate);
        };
    };
}

/// Makes a type implementing [`Classify`](crate::Classify) this component's
/// classify hook.
#[macro_export]
macro_rules! export_classify {
    ($hook:ty) => {
        const _: fn() = || {
            fn is_classify<T: $crate::Classify>() {}
            is_classify::<$hook>();
        };
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __PodrunClassify = $crate::__private::ClassifyAdapter<$hook>;
            $crate::__private::classify::__export_classify_world!(__PodrunClassify with_types_in $crate::__private::classify);
        };
    };
}

/// Makes a type implementing [`Script`](crate::Script) this component's
/// script interpreter, serving as a render, mutate and classify hook for
/// the script podrun loads into it.
///
/// `$bindings` is a module of the calling crate holding wit-bindgen's
/// bindings for podrun's `script-hook` world:
///
/// ```ignore
/// mod bindings {
///     wit_bindgen::generate!({ world: "script-hook", path: "wit" });
/// }
/// podrun_hook_sdk::export_script!(MyInterpreter, bindings);
/// ```
#[macro_export]
macro_rules! export_script {
    ($interpreter:ty, $bindings:ident) => {
        const _: fn() = || {
            fn is_script<T: $crate::Script>() {}
            is_script::<$interpreter>();
        };
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__private::ScriptAdapter;
            $crate::__context_from_wit!($bindings);
            $crate::__render_guest!($bindings, ScriptAdapter);
            $crate::__mutate_guest!($bindings, ScriptAdapter);
            $crate::__classify_guest!($bindings, ScriptAdapter);
            impl<T: $crate::Script> $bindings::exports::podrun::hook::script::Guest
                for ScriptAdapter<T>
            {
                fn load(
                    path: String,
                    text: String,
                    kind: $bindings::exports::podrun::hook::script::HookKind,
                ) -> Result<(), String> {
                    use $bindings::exports::podrun::hook::script::HookKind as K;
                    let kind = match kind {
                        K::Render => $crate::HookKind::Render,
                        K::Mutate => $crate::HookKind::Mutate,
                        K::Classify => $crate::HookKind::Classify,
                    };
                    <T as $crate::Script>::load(&path, &text, kind)
                }
            }
            type __PodrunScript = ScriptAdapter<$interpreter>;
    $bindings::export!(__PodrunScript with_types_in $bindings);
        };
    };
}
