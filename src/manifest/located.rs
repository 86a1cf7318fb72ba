//! A YAML tree that remembers the line of every node, so that an error found later (during typed
//! decoding or validation) can point at the line a person has to fix.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// `a.b[0].c`, the form kubectl and the API server use in messages.
pub fn path_string(path: &[PathSeg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Reads `a.b[0].c` back into segments (the inverse of [`path_string`]).
pub fn parse_path(s: &str) -> Vec<PathSeg> {
    let mut out = Vec::new();
    for part in s.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            if open > 0 {
                out.push(PathSeg::Key(rest[..open].to_string()));
            }
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                match rest[1..close].parse() {
                    Ok(i) => out.push(PathSeg::Index(i)),
                    Err(_) => out.push(PathSeg::Key(rest[1..close].to_string())),
                }
                rest = &rest[close + 1..];
            }
        } else {
            out.push(PathSeg::Key(rest.to_string()));
        }
    }
    out
}

pub fn from_ignored(p: &serde_ignored::Path<'_>) -> Vec<PathSeg> {
    use serde_ignored::Path;
    let mut out = match p {
        Path::Root => return Vec::new(),
        Path::Seq { parent, .. }
        | Path::Map { parent, .. }
        | Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => from_ignored(parent),
    };
    match p {
        Path::Seq { index, .. } => out.push(PathSeg::Index(*index)),
        Path::Map { key, .. } => out.push(PathSeg::Key(key.clone())),
        _ => {}
    }
    out
}

pub fn from_path_to_error(p: &serde_path_to_error::Path) -> Vec<PathSeg> {
    use serde_path_to_error::Segment;
    p.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(PathSeg::Index(*index)),
            Segment::Map { key } => Some(PathSeg::Key(key.clone())),
            Segment::Enum { variant } => Some(PathSeg::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

/// A YAML node with its 1-based line (0 when unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub line: u64,
    pub node: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Seq(Vec<Located>),
    /// Entries keep the line of their key, which is where a person looks for a field.
    Map(Vec<(String, u64, Located)>),
}

impl Located {
    pub fn is_null(&self) -> bool {
        matches!(self.node, Node::Null)
    }

    pub fn to_json(&self) -> Value {
        match &self.node {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.clone()),
            Node::Seq(items) => Value::Array(items.iter().map(Located::to_json).collect()),
            Node::Map(entries) => {
                let mut m = Map::new();
                for (k, _, v) in entries {
                    m.insert(k.clone(), v.to_json());
                }
                Value::Object(m)
            }
        }
    }

    /// The line of the node at `path`, or of the deepest ancestor that exists.
    pub fn line_of(&self, path: &[PathSeg]) -> Option<u64> {
        let mut here = self;
        let mut line = self.line;
        for seg in path {
            let next = match (&here.node, seg) {
                (Node::Map(entries), PathSeg::Key(k)) => entries
                    .iter()
                    .find(|(key, _, _)| key == k)
                    .map(|(_, kl, v)| (*kl, v)),
                (Node::Seq(items), PathSeg::Index(i)) => items.get(*i).map(|v| (v.line, v)),
                _ => None,
            };
            match next {
                Some((l, v)) => {
                    line = l;
                    here = v;
                }
                None => break,
            }
        }
        (line > 0).then_some(line)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

impl<'de> Deserialize<'de> for Located {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Node>::deserialize(d)?;
        Ok(Located {
            line: s.referenced.line(),
            node: s.value,
        })
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Number::from_f64(v)
            .map(Node::Number)
            .ok_or_else(|| E::custom(format!("number {v} is not finite")))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Located>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(String, u64, Located)> = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyString>>()? {
            let value = map.next_value::<Located>()?;
            let k = key.value.0;
            if entries.iter().any(|(e, _, _)| *e == k) {
                return Err(de::Error::custom(format!(
                    "duplicate key \"{k}\" at line {}",
                    key.referenced.line()
                )));
            }
            entries.push((k, key.referenced.line(), value));
        }
        Ok(Node::Map(entries))
    }
}

/// A mapping key as a string (YAML allows `1: x` or `true: x`; Kubernetes keys are strings).
struct KeyString(String);

impl<'de> Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Node::deserialize(d)? {
            Node::String(s) => Ok(KeyString(s)),
            Node::Bool(b) => Ok(KeyString(b.to_string())),
            Node::Number(n) => Ok(KeyString(n.to_string())),
            Node::Null => Ok(KeyString("null".into())),
            _ => Err(de::Error::custom("a mapping key must be a scalar")),
        }
    }
}

/// Parses every document of a YAML (or JSON) stream. On error: (line, message).
pub fn parse_multi(text: &str) -> Result<Vec<Located>, (Option<u64>, String)> {
    serde_saphyr::from_multiple::<Located>(text).map_err(|e| {
        let line = e.location().map(|l| l.line()).filter(|l| *l > 0);
        (line, first_line(&e.to_string()))
    })
}

/// serde-saphyr renders a source snippet after the message; the first line is the message.
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}
