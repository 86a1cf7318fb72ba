//! Reading an untyped manifest field by field, so that every field is either used, reported as
//! unknown, or rejected with its path. Parts whose shape v1 kept are decoded straight into our
//! v1 types, with unknown fields inside them reported the same way.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::ConvertError;

/// The notes gathered while converting one object, and what the input was (for "not known in").
pub(crate) struct Ctx {
    source: &'static str,
    pub(crate) notes: Vec<String>,
    pub(crate) unknown_fields: Vec<String>,
}

impl Ctx {
    pub(crate) fn new(source: &'static str) -> Self {
        Ctx {
            source,
            notes: Vec::new(),
            unknown_fields: Vec::new(),
        }
    }

    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub(crate) fn unknown(&mut self, path: &str) {
        let note = format!("{path}: not known in {}; dropped", self.source);
        self.notes.push(note);
        self.unknown_fields.push(path.to_string());
    }
}

/// `base.key`, or `base["key"]` when the key has dots or slashes (label keys, tag keys).
pub(crate) fn join(base: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (base.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{base}.{key}"),
        (_, false) => format!("{base}[{key:?}]"),
    }
}

pub(crate) fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

/// How a value is described in "expected X, got Y".
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a map".into(),
    }
}

pub(crate) fn wrong_type(path: &str, expected: &'static str, found: &Value) -> ConvertError {
    ConvertError::WrongType {
        path: path.to_string(),
        expected,
        found: describe(found),
    }
}

/// One map of the input, consumed key by key.
pub(crate) struct Fields {
    path: String,
    map: Map<String, Value>,
}

impl Fields {
    pub(crate) fn new(value: Value, path: &str) -> Result<Self, ConvertError> {
        match value {
            Value::Object(map) => Ok(Fields {
                path: path.to_string(),
                map,
            }),
            other => Err(wrong_type(path, "a map", &other)),
        }
    }

    pub(crate) fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key`, removed from what is left to report; `null` counts as absent.
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    pub(crate) fn string(&mut self, key: &str) -> Result<Option<String>, ConvertError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(&self.at(key), "a string", &other)),
        }
    }

    pub(crate) fn boolean(&mut self, key: &str) -> Result<Option<bool>, ConvertError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(wrong_type(&self.at(key), "true or false", &other)),
        }
    }

    pub(crate) fn integer(&mut self, key: &str) -> Result<Option<i64>, ConvertError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
            Some(other) => Err(wrong_type(&self.at(key), "an integer", &other)),
        }
    }

    pub(crate) fn fields(&mut self, key: &str) -> Result<Option<Fields>, ConvertError> {
        let path = self.at(key);
        self.take(key).map(|v| Fields::new(v, &path)).transpose()
    }

    /// A string map (selectors, labels), values must be strings.
    pub(crate) fn string_map(
        &mut self,
        key: &str,
    ) -> Result<Option<Vec<(String, String)>>, ConvertError> {
        let Some(fields) = self.fields(key)? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for (k, v) in fields.map {
            match v {
                Value::String(s) => out.push((k, s)),
                other => return Err(wrong_type(&join(&fields.path, &k), "a string", &other)),
            }
        }
        Ok(Some(out))
    }

    /// A part whose shape is the same in v1: decoded into the v1 type.
    pub(crate) fn decode<T: DeserializeOwned>(
        &mut self,
        key: &str,
        ctx: &mut Ctx,
    ) -> Result<Option<T>, ConvertError> {
        let path = self.at(key);
        self.take(key).map(|v| decode(v, &path, ctx)).transpose()
    }

    /// Reports every key nobody took.
    pub(crate) fn finish(self, ctx: &mut Ctx) {
        for key in self.map.keys() {
            ctx.unknown(&join(&self.path, key));
        }
    }
}

/// Strict decoding into a v1 type: wrong types are errors at their full path, fields the type
/// does not have are notes (they would otherwise vanish when the object is written back).
pub(crate) fn decode<T: DeserializeOwned>(
    value: Value,
    path: &str,
    ctx: &mut Ctx,
) -> Result<T, ConvertError> {
    let mut unknown: Vec<String> = Vec::new();
    let mut on_unknown = |p: serde_ignored::Path| unknown.push(ignored_path(path, &p));
    let de = serde_ignored::Deserializer::new(value, &mut on_unknown);
    let decoded: Result<T, _> = serde_path_to_error::deserialize(de);
    match decoded {
        Ok(t) => {
            for p in unknown {
                ctx.unknown(&p);
            }
            Ok(t)
        }
        Err(e) => {
            let mut full = path.to_string();
            for seg in e.path().iter() {
                full = match seg {
                    serde_path_to_error::Segment::Seq { index: i } => index(&full, *i),
                    serde_path_to_error::Segment::Map { key } => join(&full, key),
                    serde_path_to_error::Segment::Enum { variant } => join(&full, variant),
                    serde_path_to_error::Segment::Unknown => full,
                };
            }
            Err(ConvertError::Invalid {
                path: full,
                message: e.into_inner().to_string(),
            })
        }
    }
}

fn ignored_path(base: &str, p: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match p {
        Path::Root => base.to_string(),
        Path::Seq { parent, index: i } => index(&ignored_path(base, parent), *i),
        Path::Map { parent, key } => join(&ignored_path(base, parent), key),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(base, parent),
    }
}

/// Old resource lists allowed bare numbers (`cpu: 2`); v1's kubelet maps want strings.
pub(crate) fn numbers_to_strings(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| match v {
                    Value::Number(n) => (k, Value::String(n.to_string())),
                    other => (k, other),
                })
                .collect(),
        ),
        other => other,
    }
}
