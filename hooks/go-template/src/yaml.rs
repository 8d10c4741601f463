//! The rendered YAML, parsed into JSON values.
//!
//! yaml-rust2's parser, with its events built straight into JSON: no YAML
//! tree to build, hash and copy again, as rendering happens on every run.
//! Scalars, tags, anchors, aliases and duplicate keys are read as
//! yaml-rust2's own loader reads them (`yaml/tests.rs` holds the two side by
//! side), except where the loader would shift every later key of a mapping
//! onto the next node: a key whose tag does not fit its text (`!!int x`), or
//! an alias inside the node its anchor names, is an error here.

use std::collections::{BTreeMap, BTreeSet};

use podrun_hook_sdk::serde_json::{Map, Number, Value};
use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

/// Parses one YAML document.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut builder = Builder::default();
    Parser::new_from_str(text)
        .load(&mut builder, true)
        .map_err(|e| e.to_string())?;
    if let Some(e) = builder.error {
        return Err(e);
    }
    match builder.docs.len() {
        0 => Err("it is empty".into()),
        1 => builder.docs.pop().expect("one document").into_json(),
        n => Err(format!(
            "it has {n} documents; a template renders one object"
        )),
    }
}

/// A finished node. Scalars stay YAML until their place is known: as a key,
/// a scalar's YAML kind tells duplicates apart (`1` and `"1"` differ).
#[derive(Clone)]
enum Node {
    Scalar(Yaml),
    Json(Value),
}

impl Node {
    fn into_json(self) -> Result<Value, String> {
        match self {
            Node::Json(v) => Ok(v),
            Node::Scalar(y) => scalar_json(y),
        }
    }
}

/// A sequence or mapping still being read, with its anchor id.
enum Open {
    Seq(Vec<Value>, usize),
    Map(Mapping, usize),
}

#[derive(Default)]
struct Mapping {
    map: Map<String, Value>,
    /// The key read, waiting for its value.
    key: Option<Key>,
    /// Every key with its kind, kept from the first key that is not a
    /// string: only the same kind and text twice is a duplicate.
    typed_keys: Option<BTreeSet<Key>>,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum KeyKind {
    String,
    Real,
    Integer,
    Boolean,
    Null,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    kind: KeyKind,
    text: String,
}

/// A key whose tag does not fit its text, such as `!!int x`.
const BAD_KEY: &str = "a map key does not match its tag";
/// An alias inside the node its anchor names.
const OWN_ALIAS: &str = "an alias inside the node its anchor names";

/// A ScanError's text (`… at byte B line L column C`), whose line the
/// hook shows.
fn at(mark: Marker, message: String) -> String {
    ScanError::new_string(mark, message).to_string()
}

impl Key {
    fn of(y: Yaml) -> Result<Key, &'static str> {
        let (kind, text) = match y {
            Yaml::String(s) => (KeyKind::String, s),
            Yaml::Real(s) => (KeyKind::Real, s),
            Yaml::Integer(i) => (KeyKind::Integer, i.to_string()),
            Yaml::Boolean(b) => (KeyKind::Boolean, b.to_string()),
            Yaml::Null => (KeyKind::Null, "null".into()),
            Yaml::BadValue => return Err(BAD_KEY),
            Yaml::Array(_) | Yaml::Hash(_) | Yaml::Alias(_) => return Err(NOT_SCALAR),
        };
        Ok(Key { kind, text })
    }
}

const NOT_SCALAR: &str = "a map key must be a scalar";

impl Mapping {
    /// Takes the next node: a key, or the value of the key before it.
    fn take(&mut self, node: Node, mark: Marker) -> Result<(), String> {
        let Some(key) = self.key.take() else {
            let key = match node {
                Node::Scalar(y) => Key::of(y),
                Node::Json(_) => Err(NOT_SCALAR),
            };
            self.key = Some(key.map_err(|e| at(mark, e.into()))?);
            return Ok(());
        };
        if key.kind != KeyKind::String && self.typed_keys.is_none() {
            let strings = self.map.keys().map(|k| Key {
                kind: KeyKind::String,
                text: k.clone(),
            });
            self.typed_keys = Some(strings.collect());
        }
        let duplicate = match &mut self.typed_keys {
            None => self.map.contains_key(&key.text),
            Some(keys) => !keys.insert(key.clone()),
        };
        if duplicate {
            return Err(at(
                mark,
                format!("{:?}: duplicated key in mapping", key.text),
            ));
        }
        self.map.insert(key.text, node.into_json()?);
        Ok(())
    }
}

#[derive(Default)]
struct Builder {
    open: Vec<Open>,
    anchors: BTreeMap<usize, Node>,
    /// The current document's root, once read.
    doc: Option<Node>,
    docs: Vec<Node>,
    error: Option<String>,
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_none()
            && let Err(e) = self.event(event, mark)
        {
            self.error = Some(e);
        }
    }
}

impl Builder {
    fn event(&mut self, event: Event, mark: Marker) -> Result<(), String> {
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart => {}
            Event::DocumentEnd => {
                // yaml-rust2's parser always gives a document a node; were
                // one missing, it is a bad value, as in the loader.
                let doc = self.doc.take().unwrap_or(Node::Scalar(Yaml::BadValue));
                self.docs.push(doc);
            }
            Event::SequenceStart(anchor, _) => self.open.push(Open::Seq(Vec::new(), anchor)),
            Event::MappingStart(anchor, _) => {
                self.open.push(Open::Map(Mapping::default(), anchor));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.open.pop() {
                    Some(Open::Seq(items, anchor)) => (Node::Json(Value::Array(items)), anchor),
                    Some(Open::Map(m, anchor)) => (Node::Json(Value::Object(m.map)), anchor),
                    None => return Err("unbalanced YAML events".into()),
                };
                self.insert(node, anchor, mark)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.insert(Node::Scalar(scalar(text, style, tag)), anchor, mark)?;
            }
            Event::Alias(id) => {
                // An anchor is named when its node starts and kept when the
                // node ends: an alias inside it finds nothing.
                let node = self
                    .anchors
                    .get(&id)
                    .ok_or_else(|| at(mark, OWN_ALIAS.into()))?;
                self.insert(node.clone(), 0, mark)?;
            }
        }
        Ok(())
    }

    fn insert(&mut self, node: Node, anchor: usize, mark: Marker) -> Result<(), String> {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.open.last_mut() {
            None => self.doc = Some(node),
            Some(Open::Seq(items, _)) => items.push(node.into_json()?),
            Some(Open::Map(m, _)) => m.take(node, mark)?,
        }
        Ok(())
    }
}

/// A scalar as yaml-rust2's loader reads it.
fn scalar(text: String, style: TScalarStyle, tag: Option<Tag>) -> Yaml {
    if style != TScalarStyle::Plain {
        return Yaml::String(text);
    }
    let Some(Tag { handle, suffix }) = tag else {
        return plain(text);
    };
    if handle != "tag:yaml.org,2002:" {
        return Yaml::String(text);
    }
    match suffix.as_str() {
        "bool" => match text.as_str() {
            "true" | "True" | "TRUE" => Yaml::Boolean(true),
            "false" | "False" | "FALSE" => Yaml::Boolean(false),
            _ => Yaml::BadValue,
        },
        "int" => text.parse::<i64>().map_or(Yaml::BadValue, Yaml::Integer),
        "float" => match parse_f64(&text) {
            Some(_) => Yaml::Real(text),
            None => Yaml::BadValue,
        },
        "null" => match text.as_str() {
            "~" | "null" => Yaml::Null,
            _ => Yaml::BadValue,
        },
        _ => Yaml::String(text),
    }
}

/// `Yaml::from_str`, keeping the text it is given rather than copying it.
fn plain(text: String) -> Yaml {
    let radix = |digits: &str, radix| i64::from_str_radix(digits, radix).ok();
    let prefixed = if let Some(digits) = text.strip_prefix("0x") {
        radix(digits, 16)
    } else if let Some(digits) = text.strip_prefix("0o") {
        radix(digits, 8)
    } else if let Some(digits) = text.strip_prefix('+') {
        digits.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(i) = prefixed {
        return Yaml::Integer(i);
    }
    match text.as_str() {
        "" | "~" | "null" => Yaml::Null,
        "true" | "True" | "TRUE" => Yaml::Boolean(true),
        "false" | "False" | "FALSE" => Yaml::Boolean(false),
        t => match t.parse::<i64>() {
            Ok(i) => Yaml::Integer(i),
            Err(_) if parse_f64(t).is_some() => Yaml::Real(text),
            Err(_) => Yaml::String(text),
        },
    }
}

/// yaml-rust2's float reading: YAML's infinities and NaN, and only text
/// with a digit (Rust would read `inf`).
fn parse_f64(v: &str) -> Option<f64> {
    match v {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ if v.bytes().any(|b| b.is_ascii_digit()) => v.parse::<f64>().ok(),
        _ => None,
    }
}

fn scalar_json(y: Yaml) -> Result<Value, String> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(s) => match s.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Value::Number(n),
            None => Value::String(s),
        },
        Yaml::String(s) => Value::String(s),
        Yaml::Array(_) | Yaml::Hash(_) | Yaml::Alias(_) | Yaml::BadValue => {
            return Err("it has an unresolved alias or a bad value".into());
        }
    })
}

#[cfg(test)]
mod tests;
