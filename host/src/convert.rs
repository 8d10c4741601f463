//! `podrun convert`: applies mutate hooks (by default `sequence`) to every
//! Pod, Job and CronJob of a multi-document YAML stream, and passes every
//! other document through untouched. The output is YAML that
//! `kubectl apply -f -` accepts.

use serde_json::Value;

use crate::context::RunContext;
use crate::hooks::{Hook, HookError};
use crate::pipeline;

/// Why the input could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The input is not YAML.
    #[error("{source_name}: {message}")]
    Parse {
        /// The file name, or `-`.
        source_name: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A hook failed or refused a document.
    #[error("document {index} ({kind} {name}): {error}")]
    Hook {
        /// The document's position, from 1.
        index: usize,
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// What the hook did.
        error: Box<HookError>,
    },
}

/// The kinds whose pods the hooks change.
const WORKLOADS: &[&str] = &["Pod", "Job", "CronJob"];

/// Converts the YAML documents in `text`.
pub async fn convert(
    text: &str,
    source_name: &str,
    hooks: &[Hook],
    context: &RunContext,
) -> Result<String, ConvertError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| ConvertError::Parse {
        source_name: source_name.to_string(),
        message: e.to_string().replace("<input>", source_name),
    })?;
    let mut out = String::new();
    for (i, mut doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if WORKLOADS.contains(&kind.as_str()) {
            for hook in hooks {
                if let Err(error) = pipeline::apply(hook, context, &mut doc).await {
                    return Err(ConvertError::Hook {
                        index: i + 1,
                        kind: kind.clone(),
                        name: doc["metadata"]["name"].as_str().unwrap_or("").to_string(),
                        error: Box::new(error),
                    });
                }
            }
        }
        out.push_str("---\n");
        out.push_str(
            &serde_saphyr::to_string(&doc).map_err(|e| ConvertError::Parse {
                source_name: source_name.to_string(),
                message: e.to_string(),
            })?,
        );
    }
    Ok(out)
}
