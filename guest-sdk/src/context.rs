//! What a hook is told about the run it is called for.

use serde::de::DeserializeOwned;

/// Resource quantities from the application's config, as written there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// `100m`, `2`… `None` when the config leaves it empty.
    pub cpu: Option<String>,
    /// `64Mi`, `1G`… `None` when the config leaves it empty.
    pub memory: Option<String>,
}

/// The application and run a hook is called for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Application {
    /// The application's name from `pod-runner.yaml`.
    pub name: String,
    /// The run's unique id (lowercase letters and digits).
    pub run_id: String,
    /// The namespace the pod will run in, when known.
    pub namespace: Option<String>,
    /// The container image from the config.
    pub image: String,
    /// The caller's command, split into arguments. User input: never splice
    /// it into YAML or JSON text.
    pub arguments: Vec<String>,
    /// The user id from the config, as written there.
    pub uid: Option<String>,
    /// The group id from the config, as written there.
    pub gid: Option<String>,
    /// Resource requests from the config.
    pub requests: Resources,
    /// Resource limits from the config.
    pub limits: Resources,
    /// Runtime parameters, in the order the application declares them.
    pub params: Vec<(String, String)>,
    /// The application's restart policy, when its config sets one.
    pub restart_policy: Option<String>,
    /// The run's deadline in seconds, when set.
    pub timeout_seconds: Option<u64>,
    /// How long the pod may stay Pending, in seconds, when set.
    pub pending_timeout_seconds: Option<u64>,
}

/// The context of one hook call: the application and the hook's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The application and run.
    pub application: Application,
    /// The hook's `with:` settings as a JSON object.
    pub settings_json: String,
}

/// A template as the config names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Where it came from (a path or URL), for messages.
    pub source: String,
    /// The template's text.
    pub text: String,
}

/// Settings that do not match what the hook expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub String);

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid settings: {}", self.0)
    }
}

impl From<SettingsError> for String {
    fn from(e: SettingsError) -> String {
        e.to_string()
    }
}

impl Context {
    /// Deserializes the hook's `with:` settings. Use
    /// `#[serde(deny_unknown_fields)]` so that a misspelt setting is an
    /// error rather than silently ignored.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, SettingsError> {
        serde_json::from_str(&self.settings_json).map_err(|e| SettingsError(e.to_string()))
    }

    /// The value of a runtime parameter, if the run has it.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.application
            .params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A context for unit tests of hook logic: application `name`, run id
    /// `test`, image `busybox`, no settings.
    pub fn for_test(name: &str) -> Self {
        Context {
            application: Application {
                name: name.to_string(),
                run_id: "test".to_string(),
                image: "busybox".to_string(),
                ..Application::default()
            },
            settings_json: "{}".to_string(),
        }
    }

    /// Adds a runtime parameter (for tests).
    pub fn with_param(mut self, name: &str, value: &str) -> Self {
        self.application
            .params
            .push((name.to_string(), value.to_string()));
        self
    }

    /// Replaces the settings (for tests).
    pub fn with_settings(mut self, settings: serde_json::Value) -> Self {
        self.settings_json = settings.to_string();
        self
    }
}
