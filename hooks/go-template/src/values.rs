//! Placeholders for values that must not be parsed as YAML, and the clean-up
//! of the parsed result.

use podrun_hook_sdk::serde_json::{Map, Value};

/// Every placeholder starts with this; a template must not contain it.
pub const TOKEN_PREFIX: &str = "PODRUN_VALUE_";

/// The values hidden behind placeholders during rendering.
#[derive(Default)]
pub struct Placeholders {
    values: Vec<String>,
}

impl Placeholders {
    /// A placeholder for a user value: always a string, never YAML.
    pub fn user_value(&mut self, value: &str) -> String {
        self.values.push(value.to_string());
        format!("{TOKEN_PREFIX}{}_", self.values.len() - 1)
    }

    /// A config value: written as is when it is a plain word (as pod-runner
    /// did, so `uid: 1000` stays a number), otherwise a placeholder.
    pub fn config_value(&mut self, value: &str) -> String {
        if is_plain_word(value) {
            value.to_string()
        } else {
            self.user_value(value)
        }
    }

    /// Replaces every placeholder in the strings and keys of `value`.
    pub fn substitute(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Some(new) = self.replace(s) {
                    *s = new;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.substitute(v)),
            // Keys rarely hold a value: a map is rebuilt only when one does.
            Value::Object(map) if !map.keys().any(|k| k.contains(TOKEN_PREFIX)) => {
                map.values_mut().for_each(|v| self.substitute(v));
            }
            Value::Object(map) => {
                let old = std::mem::take(map);
                for (k, mut v) in old {
                    self.substitute(&mut v);
                    map.insert(self.replace(&k).unwrap_or(k), v);
                }
            }
            _ => {}
        }
    }

    fn replace(&self, s: &str) -> Option<String> {
        if !s.contains(TOKEN_PREFIX) {
            return None;
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(at) = rest.find(TOKEN_PREFIX) {
            out.push_str(&rest[..at]);
            let after = &rest[at + TOKEN_PREFIX.len()..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let index = after[..digits].parse::<usize>().ok();
            match (
                index.and_then(|i| self.values.get(i)),
                after[digits..].strip_prefix('_'),
            ) {
                (Some(v), Some(tail)) => {
                    out.push_str(v);
                    rest = tail;
                }
                _ => {
                    out.push_str(TOKEN_PREFIX);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Some(out)
    }
}

/// A word YAML reads as one plain scalar in any context.
fn is_plain_word(s: &str) -> bool {
    let safe = |c: char| c.is_ascii_alphanumeric() || "._/-:@+".contains(c);
    s.is_empty()
        || (s.chars().all(safe)
            && s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '/' || c == '.'))
            && !s.ends_with(':')
            && !s.contains(TOKEN_PREFIX)
}

/// Removes `null` map entries, as Kubernetes' decoder ignores them (an empty
/// `cpu:` in a template means no cpu).
pub fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// Quantities written as bare numbers (`cpu: 1`) become strings, which is
/// how the API reads them.
pub fn quantities_as_strings(value: &mut Value) {
    let Some(map) = value.as_object_mut() else {
        if let Value::Array(items) = value {
            items.iter_mut().for_each(quantities_as_strings);
        }
        return;
    };
    if let Some(Value::Object(res)) = map.get_mut("resources") {
        for key in ["requests", "limits", "claims"] {
            if let Some(Value::Object(q)) = res.get_mut(key) {
                stringify_numbers(q);
            }
        }
    }
    map.values_mut().for_each(quantities_as_strings);
}

fn stringify_numbers(map: &mut Map<String, Value>) {
    for v in map.values_mut() {
        if let Value::Number(n) = v {
            *v = Value::String(n.to_string());
        }
    }
}
