//! The glue between the WIT contract and the hook traits; used by the
//! `export_*!` macros, not by hook authors directly.

#![allow(missing_docs)]

use std::marker::PhantomData;

/// Bindings for a render hook.
pub mod render {
    wit_bindgen::generate!({
        world: "render-hook",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_render_world",
        default_bindings_module: "::podrun_hook_sdk::__private::render",
    });
}

/// Bindings for a mutate hook.
pub mod mutate {
    wit_bindgen::generate!({
        world: "mutate-hook",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_mutate_world",
        default_bindings_module: "::podrun_hook_sdk::__private::mutate",
    });
}

/// Bindings for a classify hook.
pub mod classify {
    wit_bindgen::generate!({
        world: "classify-hook",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_classify_world",
        default_bindings_module: "::podrun_hook_sdk::__private::classify",
    });
}

#[cfg(target_arch = "wasm32")]
pub(crate) use mutate::podrun::hook::log as log_import;

macro_rules! context_from_wit {
    ($module:ident) => {
        impl From<$module::podrun::hook::types::Context> for crate::Context {
            fn from(ctx: $module::podrun::hook::types::Context) -> Self {
                use $module::podrun::hook::types::Resources as R;
                let res = |r: R| crate::Resources {
                    cpu: r.cpu,
                    memory: r.memory,
                };
                let a = ctx.application;
                crate::Context {
                    application: crate::Application {
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

context_from_wit!(render);
context_from_wit!(mutate);
context_from_wit!(classify);

/// Connects a [`crate::Render`] to the component's export.
pub struct RenderAdapter<T>(PhantomData<T>);

impl<T: crate::Render> render::exports::podrun::hook::render::Guest for RenderAdapter<T> {
    fn render(
        ctx: render::podrun::hook::types::Context,
        template: render::exports::podrun::hook::render::Template,
    ) -> Result<String, String> {
        let template = crate::Template {
            source: template.source,
            text: template.text,
        };
        T::render(&ctx.into(), &template)
    }
}

/// Connects a [`crate::Mutate`] to the component's export.
pub struct MutateAdapter<T>(PhantomData<T>);

impl<T: crate::Mutate> mutate::exports::podrun::hook::mutate::Guest for MutateAdapter<T> {
    fn mutate(
        ctx: mutate::podrun::hook::types::Context,
        object: mutate::podrun::hook::types::Object,
    ) -> Result<
        mutate::exports::podrun::hook::mutate::Mutation,
        mutate::exports::podrun::hook::mutate::Refusal,
    > {
        use mutate::exports::podrun::hook::mutate::{Mutation as M, Refusal as R};
        let object = crate::Object {
            api_version: object.api_version,
            kind: object.kind,
            json: object.json,
        };
        match T::mutate(&ctx.into(), &object) {
            Ok(crate::Mutation::Unchanged) => Ok(M::Unchanged),
            Ok(crate::Mutation::MergePatch(p)) => Ok(M::MergePatch(p)),
            Ok(crate::Mutation::Replace(o)) => Ok(M::Replace(o)),
            Err(crate::Refusal::Denied(m)) => Err(R::Denied(m)),
            Err(crate::Refusal::Invalid(m)) => Err(R::Invalid(m)),
        }
    }
}

/// Connects a [`crate::Classify`] to the component's export.
pub struct ClassifyAdapter<T>(PhantomData<T>);

impl<T: crate::Classify> classify::exports::podrun::hook::classify::Guest for ClassifyAdapter<T> {
    fn classify(
        ctx: classify::podrun::hook::types::Context,
        observation: classify::exports::podrun::hook::classify::Observation,
    ) -> Result<Option<classify::exports::podrun::hook::classify::Verdict>, String> {
        use classify::exports::podrun::hook::classify::{Outcome as O, Verdict as V};
        let observation = crate::Observation {
            pod: observation.pod,
            events: observation.events,
            elapsed_ms: observation.elapsed_ms,
        };
        let verdict = T::classify(&ctx.into(), &observation)?;
        Ok(verdict.map(|v| V {
            outcome: match v.outcome {
                crate::Outcome::Running => O::Running,
                crate::Outcome::Succeeded => O::Succeeded,
                crate::Outcome::Failed => O::Failed,
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
