//! The event reader against yaml-rust2's own loader.

use super::{BAD_KEY, OWN_ALIAS, parse};
use podrun_hook_sdk::serde_json::{Map, Number, Value};
use proptest::prelude::*;
use yaml_rust2::{Yaml, YamlLoader};

/// The reading this module replaces: yaml-rust2's loader, then its tree
/// into JSON.
fn reference(text: &str) -> Result<Value, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    match docs.as_slice() {
        [] => Err("it is empty".into()),
        [doc] => json(doc),
        _ => Err("more than one document".into()),
    }
}

fn json(y: &Yaml) -> Result<Value, String> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::Real(s) => match s.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Value::Number(n),
            None => Value::String(s.clone()),
        },
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(json).collect::<Result<_, _>>()?),
        Yaml::Hash(h) => {
            let mut map = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    Yaml::Null => "null".into(),
                    _ => return Err("a map key must be a scalar".into()),
                };
                map.insert(key, json(v)?);
            }
            Value::Object(map)
        }
        Yaml::Alias(_) | Yaml::BadValue => return Err("bad value".into()),
    })
}

/// Reads `text` both ways. `skips`: a key of `text` is one the loader
/// skips (a key whose tag does not fit, or an alias inside its own anchor's
/// node), taking the next node as the key, where the event reader refuses
/// the document.
fn same(text: &str, skips: bool) {
    match (parse(text), reference(text)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{text:?}"),
        (Err(_), Err(_)) => {}
        (Err(e), Ok(_)) if skips && (e.starts_with(BAD_KEY) || e.starts_with(OWN_ALIAS)) => {}
        (a, b) => panic!("{text:?}: events {a:?}, loader {b:?}"),
    }
}

#[test]
fn reads_yaml_as_the_loader_does() {
    for text in [
        "",
        "---\n",
        "a: 1\n---\nb: 2\n",
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    args: [x, 'y', \"z\"]\n",
        "a: 0x1F\nb: 0o17\nc: +5\nd: 1.5\ne: .inf\nf: -.Inf\ng: .nan\nh: 1e3\ni: inf\nj: ~\nk: null\nl:\nm: True\nn: FALSE\no: '1'\n",
        "a: !!int 12\nb: !!int x\n",
        "a: !!float 1\nb: !!float 0x1\nc: !!float .inf\n",
        "a: !!bool True\nb: !!bool yes\nc: !!null ~\nd: !!null x\ne: !!str 5\nf: !custom 5\n",
        "1: a\n'1': b\n",
        "'1': a\n1: b\n'1': c\n",
        "01: a\n1: b\n",
        "a: 1\na: 2\n",
        "~: a\nnull: b\n",
        "true: a\n'true': b\n",
        "1.0: a\n1.00: b\n1.0: c\n",
        "? [a, b]\n: c\n",
        "? {a: b}\n: c\n",
        "base: &b {x: 1, y: [1, 2]}\ncopy: *b\n",
        "k: &k key\n*k : v\n",
        "k: &k [1]\n*k : v\n",
        "[!!int x, 1]\n",
        "a: &a !!int x\n",
        "a: |\n  line one\n  line two\nb: >\n  folded\n  text\n",
        "- &x a\n- *x\n- &x b\n- *x\n",
        "a: [1, {b: c}, [d]]\n",
        "just a string\n",
        "5\n",
        "{!!null x: 1, !!int 1.5: a}\n",
        "!!float 1: a\n1: b\n",
        "!!str 1: a\n'1': b\n",
        "0x1: a\n1: b\n",
        "-0: a\n0: b\n",
        "True: a\ntrue: b\n",
        "'a': 1\n\"a\": 2\n",
        "{: a, ~: b}\n",
        "a: &x\nb: *x\n",
        "9223372036854775808: a\nb: 1e400\n",
        "? |\n  k\n: v\n",
        "!!int '1': a\n",
        "a: 1\n...\n",
        "--- !!int x\n",
        "a: 1\n---\nb: !!int x\n",
        "%TAG !y! tag:yaml.org,2002:\n--- {a: !y!int 1, b: !y!int x}\n",
        "%TAG !y! tag:yaml.org,2002:\n--- {a: !y!int 1, b: !y!float 2}\n",
        "%TAG !! tag:example.com,2000:\n---\na: !!int 1\n",
        "a: !<tag:yaml.org,2002:int> 1\n",
        "&a {k: *a}\n",
        "&a [*a]\n",
    ] {
        same(text, false);
    }
    // Where the loader would take the next node as the key.
    for text in [
        "!!int x: [a]\n",
        "{!!int x: 1, b: 2}\n",
        "&a {*a : 1}\n",
        "&a {*a : x, k: v}\n",
        "&a [ {*a : 1} ]\n",
    ] {
        same(text, true);
    }
}

/// A generated YAML node, written out in flow style.
#[derive(Clone, Debug)]
enum Gen {
    Scalar(&'static str),
    Seq(Option<&'static str>, Vec<Gen>),
    Map(Option<&'static str>, Vec<(Gen, Gen)>),
}

/// Scalars that read alike as JSON and differ as YAML keys, tags that fit
/// and tags that do not, anchors and aliases.
const SCALARS: &[&str] = &[
    "a",
    "1",
    "01",
    "'1'",
    "1.0",
    "1.00",
    "0x1",
    "+1",
    "true",
    "'true'",
    "~",
    "null",
    "''",
    ".inf",
    ".nan",
    "1e3",
    "!!int 1",
    "!!int x",
    "!!str 1",
    "!!float 1",
    "!!float x",
    "!!bool yes",
    "!!null ~",
    "!x 1",
    "*x",
    "*y",
    "&x a",
    "&y 1",
    "&x 1.0",
];

/// Scalars whose tag does not fit their text.
const BAD_TAGS: [&str; 3] = ["!!int x", "!!float x", "!!bool yes"];

fn node() -> impl Strategy<Value = Gen> {
    let anchor = || prop::sample::select(vec![None, None, Some("x"), Some("y")]);
    prop::sample::select(SCALARS.to_vec())
        .prop_map(Gen::Scalar)
        .prop_recursive(4, 48, 4, move |inner| {
            prop_oneof![
                (anchor(), prop::collection::vec(inner.clone(), 0..4))
                    .prop_map(|(a, items)| Gen::Seq(a, items)),
                (
                    anchor(),
                    prop::collection::vec((inner.clone(), inner), 0..4)
                )
                    .prop_map(|(a, pairs)| Gen::Map(a, pairs)),
            ]
        })
}

/// The anchors defined so far: for each name, its latest node and whether
/// that node is still being written (an alias to it then finds nothing).
#[derive(Default)]
struct Anchors {
    latest: Vec<(&'static str, usize, bool)>,
    count: usize,
}

impl Anchors {
    fn define(&mut self, name: &'static str, open: bool) -> usize {
        self.count += 1;
        self.latest.retain(|(n, _, _)| *n != name);
        self.latest.push((name, self.count, open));
        self.count
    }

    fn close(&mut self, id: usize) {
        for entry in &mut self.latest {
            if entry.1 == id {
                entry.2 = false;
            }
        }
    }

    /// Whether the loader would skip `key`.
    fn skips(&self, key: &str) -> bool {
        BAD_TAGS.contains(&key)
            || key
                .strip_prefix('*')
                .is_some_and(|a| self.latest.iter().any(|(n, _, open)| *n == a && *open))
    }
}

/// Writes `node` out; says whether the loader would skip one of its keys.
fn write(node: &Gen, out: &mut String, anchors: &mut Anchors) -> bool {
    let (anchor, open, close) = match node {
        Gen::Scalar(s) => {
            if let Some(name) = s.strip_prefix('&') {
                anchors.define(if name.starts_with('x') { "x" } else { "y" }, false);
            }
            out.push_str(s);
            return false;
        }
        Gen::Seq(anchor, _) => (anchor, '[', ']'),
        Gen::Map(anchor, _) => (anchor, '{', '}'),
    };
    let id = anchor.map(|a| {
        out.push_str(&format!("&{a} "));
        anchors.define(a, true)
    });
    out.push(open);
    let mut skips = false;
    let mut first = true;
    let mut separate = |out: &mut String| {
        if !std::mem::take(&mut first) {
            out.push_str(", ");
        }
    };
    match node {
        Gen::Seq(_, items) => {
            for item in items {
                separate(out);
                skips |= write(item, out, anchors);
            }
        }
        Gen::Map(_, pairs) => {
            for (k, v) in pairs {
                separate(out);
                if let Gen::Scalar(s) = k {
                    skips |= anchors.skips(s);
                }
                skips |= write(k, out, anchors);
                // A space before the colon keeps an alias's name apart.
                out.push_str(" : ");
                skips |= write(v, out, anchors);
            }
        }
        Gen::Scalar(_) => {}
    }
    out.push(close);
    if let Some(id) = id {
        anchors.close(id);
    }
    skips
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn reads_any_document_as_the_loader_does(
        pairs in prop::collection::vec((prop::sample::select(SCALARS.to_vec()), node()), 0..6),
        root in node(),
    ) {
        let mut anchors = Anchors::default();
        let mut block = String::new();
        let mut skips = false;
        for (k, v) in &pairs {
            skips |= anchors.skips(k);
            skips |= write(&Gen::Scalar(k), &mut block, &mut anchors);
            block.push_str(" : ");
            skips |= write(v, &mut block, &mut anchors);
            block.push('\n');
        }
        same(&block, skips);
        let mut flow = String::new();
        let skips = write(&root, &mut flow, &mut Anchors::default());
        same(&flow, skips);
    }
}
