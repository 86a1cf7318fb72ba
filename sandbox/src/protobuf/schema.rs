//! The Kubernetes protobuf messages, as read from `schema.txt` (written by
//! `scripts/protobuf-schema.py` from the k8s-pb and k8s-openapi crates): per message, each
//! field's number, JSON name and type; per resource, its apiVersion + kind → message.
//!
//! A table rather than the k8s-pb crate itself: k8s-pb's prost structs have no serde and
//! snake_case names, so turning them into Kubernetes JSON would mean one conversion per type,
//! while one table drives a single generic converter for every kind.

use std::collections::HashMap;
use std::sync::OnceLock;

const SCHEMA: &str = include_str!("schema.txt");

/// A scalar or message type, as protobuf names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Bytes,
    Int32,
    Int64,
    Bool,
    Double,
    Message(&'static str),
}

/// How a field appears in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// One value.
    Optional,
    /// An array.
    Repeated,
    /// An object keyed by string (protobuf `map<string, T>`).
    Map,
    /// An embedded Go struct (`json:",inline"`): its fields are the parent's in JSON.
    Inline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub json: &'static str,
    pub label: Label,
    pub ty: Type,
}

#[derive(Debug, Default)]
pub struct Message {
    /// Go's named slice types (`type ExtraValue []string`): one repeated field on the wire,
    /// a bare array in JSON.
    pub array: bool,
    pub fields: HashMap<u32, Field>,
}

#[derive(Debug, Default)]
pub struct Schema {
    pub messages: HashMap<&'static str, Message>,
    kinds: HashMap<(&'static str, &'static str), &'static str>,
    /// apiVersion → the module its resources' messages live in (`apps/v1` → `api.apps.v1`),
    /// for kinds that are not resources of their own (`policy/v1 Eviction`).
    modules: HashMap<&'static str, &'static str>,
}

/// The embedded schema, parsed once. An error only if `schema.txt` is malformed (a test
/// parses it).
pub fn schema() -> Result<&'static Schema, &'static str> {
    static PARSED: OnceLock<Result<Schema, String>> = OnceLock::new();
    PARSED
        .get_or_init(|| Schema::parse(SCHEMA))
        .as_ref()
        .map_err(String::as_str)
}

impl Schema {
    fn parse(text: &'static str) -> Result<Self, String> {
        let mut schema = Schema::default();
        let mut current: Option<&'static str> = None;
        for (n, line) in text.lines().enumerate() {
            let bad = |why: &str| format!("schema.txt line {}: {why}: {line}", n + 1);
            let words: Vec<&'static str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                [first, ..] if first.starts_with('#') => {}
                ["message", name] => {
                    schema.messages.insert(name, Message::default());
                    current = Some(name);
                }
                ["array"] => {
                    let name = current.ok_or_else(|| bad("outside a message"))?;
                    if let Some(m) = schema.messages.get_mut(name) {
                        m.array = true;
                    }
                }
                ["kind", api_version, kind, message] => {
                    schema.kinds.insert((api_version, kind), message);
                    let module = message.rsplit_once('.').map_or("", |(m, _)| m);
                    schema.modules.insert(api_version, module);
                }
                [number, json, label, ty @ ..] => {
                    let name = current.ok_or_else(|| bad("field outside a message"))?;
                    let number: u32 = number.parse().map_err(|_| bad("field number"))?;
                    let label = match *label {
                        "optional" => Label::Optional,
                        "repeated" => Label::Repeated,
                        "map" => Label::Map,
                        "inline" => Label::Inline,
                        _ => return Err(bad("label")),
                    };
                    let ty = match ty {
                        ["string"] => Type::String,
                        ["bytes"] => Type::Bytes,
                        ["int32"] => Type::Int32,
                        ["int64"] => Type::Int64,
                        ["bool"] => Type::Bool,
                        ["double"] => Type::Double,
                        ["message", m] => Type::Message(m),
                        _ => return Err(bad("type")),
                    };
                    let field = Field { json, label, ty };
                    if let Some(m) = schema.messages.get_mut(name) {
                        m.fields.insert(number, field);
                    }
                }
                _ => return Err(bad("unreadable line")),
            }
        }
        Ok(schema)
    }

    /// The message of `kind` in `api_version`: a resource, a kind served under a resource
    /// (`policy/v1 Eviction`, `autoscaling/v1 Scale`), or a meta.k8s.io kind that every group
    /// version accepts (`DeleteOptions`).
    pub fn message_of(&self, api_version: &str, kind: &str) -> Option<&'static str> {
        if let Some(m) = self.kinds.get(&(api_version, kind)) {
            return Some(m);
        }
        let candidates = [
            self.modules.get(api_version).map(|m| format!("{m}.{kind}")),
            Some(format!("apimachinery.pkg.apis.meta.v1.{kind}")),
        ];
        candidates
            .into_iter()
            .flatten()
            .find_map(|name| self.messages.get_key_value(name.as_str()).map(|(k, _)| *k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schema_parses_and_resolves_every_message_it_names() {
        let s = schema().unwrap();
        assert!(s.messages.len() > 1000, "{} messages", s.messages.len());
        for (name, m) in &s.messages {
            for f in m.fields.values() {
                if let Type::Message(sub) = f.ty {
                    assert!(s.messages.contains_key(sub), "{name}.{} → {sub}", f.json);
                }
            }
        }
    }

    #[test]
    fn json_names_keep_kubernetes_spelling() {
        let s = schema().unwrap();
        let spec = &s.messages["api.core.v1.ServiceSpec"];
        assert_eq!(spec.fields[&3].json, "clusterIP");
        assert_eq!(spec.fields[&18].json, "clusterIPs");
        // VolumeSource has no struct in k8s-openapi (Volume inlines it): its names come from
        // the spelling every other type uses, not from snake_case (`scaleIo`, `downwardApi`).
        let source = &s.messages["api.core.v1.VolumeSource"];
        assert_eq!(source.fields[&25].json, "scaleIO");
        assert_eq!(source.fields[&16].json, "downwardAPI");
        let volume = &s.messages["api.core.v1.Volume"];
        assert_eq!(volume.fields[&2].label, Label::Inline);
        assert!(s.messages["apimachinery.pkg.apis.meta.v1.Verbs"].array);
    }

    #[test]
    fn kinds_resolve_to_messages() {
        let s = schema().unwrap();
        assert_eq!(
            s.message_of("apps/v1", "Deployment"),
            Some("api.apps.v1.Deployment")
        );
        assert_eq!(
            s.message_of("policy/v1", "Eviction"),
            Some("api.policy.v1.Eviction")
        );
        assert_eq!(
            s.message_of("v1", "DeleteOptions"),
            Some("apimachinery.pkg.apis.meta.v1.DeleteOptions")
        );
        assert_eq!(s.message_of("v1", "NoSuchKind"), None);
    }
}
