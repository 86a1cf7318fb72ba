//! `application/vnd.kubernetes.protobuf` request bodies, as kubectl sends them for `kubectl
//! create deployment|configmap|secret|...` and for pod deletions in drain: decoded into the
//! same JSON object a JSON client would have sent, so nothing past the server sees protobuf.
//!
//! A body is the magic `k8s\0` then a `runtime.Unknown` {typeMeta {apiVersion, kind}, raw,
//! contentEncoding, contentType}; `raw` is the object's own message. [`schema`] maps each
//! message's field numbers to JSON names and types for every kind at once; the types whose
//! JSON is not their message (Time, IntOrString, Quantity, RawExtension, ...) are converted
//! here. Anything the schema does not know (a kind, a field number) is refused with a Status
//! naming it rather than dropped.

pub mod schema;
#[cfg(test)]
mod tests;
pub mod wire;

use base64::Engine;
use serde_json::{Map, Number, Value};

use crate::errors::ApiError;
use schema::{Field, Label, Schema, Type};
use wire::{Reader, Wire};

/// The media type (without parameters).
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Every Kubernetes protobuf body starts with these four bytes.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Deeper than any Kubernetes object nests (a PodTemplate in a CronJob is about 12 levels);
/// bounds recursion on hostile input.
const MAX_DEPTH: usize = 64;

const ENVELOPE: &str = "apimachinery.pkg.runtime.Unknown";

/// Why a protobuf body was not decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtobufError {
    #[error("the body does not start with the Kubernetes protobuf magic bytes \"k8s\\x00\"")]
    Magic,
    #[error("malformed protobuf in {message}: {why}")]
    Malformed { message: &'static str, why: String },
    #[error(
        "the sandbox does not decode protobuf bodies of kind {kind:?} (apiVersion {api_version:?}); send it as JSON"
    )]
    Kind { api_version: String, kind: String },
    #[error(
        "field number {number} of protobuf message {message} is unknown to the sandbox's schema (k8s-pb 0.9.0); send the object as JSON"
    )]
    UnknownField { message: &'static str, number: u32 },
    #[error(
        "the sandbox does not decode protobuf message {0}, whose JSON form is not its message; send the object as JSON"
    )]
    Unsupported(&'static str),
    #[error("protobuf content encoding {0:?} is not supported; send the object uncompressed")]
    ContentEncoding(String),
    #[error("the sandbox's protobuf schema is unusable: {0}")]
    Schema(&'static str),
}

impl ProtobufError {
    fn malformed(message: &'static str, why: impl ToString) -> Self {
        Self::Malformed {
            message,
            why: why.to_string(),
        }
    }
}

/// The body as the JSON object a JSON client would have sent, `apiVersion` and `kind`
/// included. Malformed bytes → 400; kinds, fields or encodings the sandbox can't decode →
/// 415 naming them.
pub fn decode_body(body: &[u8]) -> Result<Value, ApiError> {
    let schema = schema::schema().map_err(|e| ApiError::internal(e.to_string()))?;
    decode(schema, body, 0).map_err(|(kind, e)| {
        let message = match kind {
            Some(kind) => format!("decoding the protobuf body of {kind}: {e}"),
            None => format!("decoding the protobuf body: {e}"),
        };
        match e {
            ProtobufError::Magic | ProtobufError::Malformed { .. } => {
                ApiError::bad_request(message)
            }
            ProtobufError::Schema(_) => ApiError::internal(message),
            _ => ApiError::new(415, "UnsupportedMediaType", message),
        }
    })
}

/// Decode an envelope; errors carry `apiVersion kind` once the envelope names them.
fn decode(
    schema: &Schema,
    body: &[u8],
    depth: usize,
) -> Result<Value, (Option<String>, ProtobufError)> {
    let malformed = |e: wire::WireError| (None, ProtobufError::malformed(ENVELOPE, e));
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or((None, ProtobufError::Magic))?;
    let (mut api_version, mut kind, mut raw, mut encoding) = ("", "", &[][..], "");
    let mut envelope = Reader::new(rest);
    while let Some((number, value)) = envelope.field().map_err(malformed)? {
        let Wire::Bytes(bytes) = value else {
            return Err((
                None,
                ProtobufError::malformed(
                    ENVELOPE,
                    format!("field {number} sent as {}", value.name()),
                ),
            ));
        };
        match number {
            1 => {
                let mut type_meta = Reader::new(bytes);
                while let Some((n, v)) = type_meta.field().map_err(malformed)? {
                    match (n, v) {
                        (1, Wire::Bytes(b)) => api_version = utf8(b)?,
                        (2, Wire::Bytes(b)) => kind = utf8(b)?,
                        _ => {
                            return Err((
                                None,
                                ProtobufError::malformed(
                                    ENVELOPE,
                                    format!("typeMeta field {n} ({})", v.name()),
                                ),
                            ));
                        }
                    }
                }
            }
            2 => raw = bytes,
            3 => encoding = utf8(bytes)?,
            // The media type of `raw`: protobuf, the only one Kubernetes writes here.
            4 => {}
            _ => {
                return Err((
                    None,
                    ProtobufError::UnknownField {
                        message: ENVELOPE,
                        number,
                    },
                ));
            }
        }
    }
    let context = Some(format!("{api_version} {kind}"));
    if !encoding.is_empty() {
        return Err((
            context,
            ProtobufError::ContentEncoding(encoding.to_string()),
        ));
    }
    let Some(message) = schema.message_of(api_version, kind) else {
        return Err((
            context,
            ProtobufError::Kind {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            },
        ));
    };
    let mut object = Map::new();
    object.insert("apiVersion".into(), Value::from(api_version));
    object.insert("kind".into(), Value::from(kind));
    Decoder { schema }
        .fields_into(message, raw, depth + 1, &mut object)
        .map_err(|e| (context, e))?;
    Ok(Value::Object(object))
}

fn utf8(bytes: &[u8]) -> Result<&str, (Option<String>, ProtobufError)> {
    std::str::from_utf8(bytes).map_err(|_| {
        (
            None,
            ProtobufError::malformed(ENVELOPE, "a string that is not UTF-8"),
        )
    })
}

struct Decoder<'s> {
    schema: &'s Schema,
}

impl Decoder<'_> {
    /// A message's fields as a JSON object.
    fn object(
        &self,
        name: &'static str,
        bytes: &[u8],
        depth: usize,
    ) -> Result<Map<String, Value>, ProtobufError> {
        let mut out = Map::new();
        self.fields_into(name, bytes, depth, &mut out)?;
        Ok(out)
    }

    /// A message's JSON value; `None` when Go's JSON would leave the field out (a zero Time).
    fn message(
        &self,
        name: &'static str,
        bytes: &[u8],
        depth: usize,
    ) -> Result<Option<Value>, ProtobufError> {
        if depth > MAX_DEPTH {
            return Err(ProtobufError::malformed(name, "nested too deeply"));
        }
        if let Some(special) = special(name) {
            return special.convert(self, name, bytes, depth);
        }
        let array = self.schema.messages.get(name).is_some_and(|m| m.array);
        let object = self.object(name, bytes, depth)?;
        if array {
            // The single repeated field (`items`), or an empty array.
            return Ok(Some(
                object
                    .into_iter()
                    .next()
                    .map_or(Value::Array(vec![]), |(_, v)| v),
            ));
        }
        Ok(Some(Value::Object(object)))
    }

    /// Decode `bytes` as message `name`, adding its fields to `out` (also used for inlined
    /// embedded structs, whose fields are their parent's).
    fn fields_into(
        &self,
        name: &'static str,
        bytes: &[u8],
        depth: usize,
        out: &mut Map<String, Value>,
    ) -> Result<(), ProtobufError> {
        if depth > MAX_DEPTH {
            return Err(ProtobufError::malformed(name, "nested too deeply"));
        }
        let Some(m) = self.schema.messages.get(name) else {
            return Err(ProtobufError::Schema("a message names an unknown message"));
        };
        let mut reader = Reader::new(bytes);
        while let Some((number, value)) = reader
            .field()
            .map_err(|e| ProtobufError::malformed(name, e))?
        {
            let Some(field) = m.fields.get(&number) else {
                return Err(ProtobufError::UnknownField {
                    message: name,
                    number,
                });
            };
            self.field(name, field, value, depth, out)?;
        }
        Ok(())
    }

    fn field(
        &self,
        name: &'static str,
        field: &Field,
        value: Wire<'_>,
        depth: usize,
        out: &mut Map<String, Value>,
    ) -> Result<(), ProtobufError> {
        let wrong =
            |why: String| ProtobufError::malformed(name, format!("field {}: {why}", field.json));
        match field.label {
            Label::Inline => {
                let Type::Message(sub) = field.ty else {
                    return Err(ProtobufError::Schema(
                        "an inlined field that is not a message",
                    ));
                };
                let Wire::Bytes(bytes) = value else {
                    return Err(wrong(format!("a message sent as {}", value.name())));
                };
                self.fields_into(sub, bytes, depth + 1, out)
            }
            Label::Optional => {
                match self
                    .single(field.ty, value, depth)
                    .map_err(|e| e.or_wrong(wrong))?
                {
                    // Go writes every non-pointer string, empty ones too; its JSON omits them.
                    Some(Value::String(s)) if s.is_empty() && field.ty == Type::String => {
                        out.remove(field.json);
                    }
                    // A repeated occurrence of a message merges into the first (protobuf's rule).
                    Some(Value::Object(new)) => match out.get_mut(field.json) {
                        Some(Value::Object(old)) => old.extend(new),
                        _ => {
                            out.insert(field.json.into(), Value::Object(new));
                        }
                    },
                    Some(v) => {
                        out.insert(field.json.into(), v);
                    }
                    None => {}
                }
                Ok(())
            }
            Label::Repeated => {
                let items = out
                    .entry(field.json)
                    .or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(items) = items else {
                    return Err(wrong("repeated and singular at once".into()));
                };
                match (field.ty, value) {
                    // Packed numbers: one length-delimited run of values.
                    (Type::Int32 | Type::Int64 | Type::Bool, Wire::Bytes(run)) => {
                        let mut r = Reader::new(run);
                        while !r.is_empty() {
                            let v = r.varint().map_err(|e| wrong(e.to_string()))?;
                            items.push(scalar(field.ty, Wire::Varint(v)).map_err(wrong)?);
                        }
                    }
                    (Type::Double, Wire::Bytes(run)) => {
                        for chunk in run.chunks(8) {
                            let bits = u64::from_le_bytes(
                                chunk.try_into().map_err(|_| wrong("truncated".into()))?,
                            );
                            items.push(scalar(field.ty, Wire::Fixed64(bits)).map_err(wrong)?);
                        }
                    }
                    _ => match self
                        .single(field.ty, value, depth)
                        .map_err(|e| e.or_wrong(wrong))?
                    {
                        Some(v) => items.push(v),
                        // Go's JSON has `null` for a zero Time in an array.
                        None => items.push(Value::Null),
                    },
                }
                Ok(())
            }
            Label::Map => {
                let Wire::Bytes(entry) = value else {
                    return Err(wrong(format!("a map entry sent as {}", value.name())));
                };
                let (mut key, mut val) = (String::new(), None);
                let mut r = Reader::new(entry);
                while let Some((n, v)) = r.field().map_err(|e| wrong(e.to_string()))? {
                    match (n, v) {
                        (1, Wire::Bytes(k)) => {
                            key = std::str::from_utf8(k)
                                .map_err(|_| wrong("a map key that is not UTF-8".into()))?
                                .to_string();
                        }
                        (2, v) => {
                            val = self
                                .single(field.ty, v, depth)
                                .map_err(|e| e.or_wrong(wrong))?
                        }
                        (n, v) => {
                            return Err(wrong(format!("map entry field {n} ({})", v.name())));
                        }
                    }
                }
                let val = match val {
                    Some(v) => v,
                    // An absent value is the type's zero value.
                    None => self.zero(field.ty, depth)?.unwrap_or(Value::Null),
                };
                if let Value::Object(map) = out
                    .entry(field.json)
                    .or_insert_with(|| Value::Object(Map::new()))
                {
                    map.insert(key, val);
                }
                Ok(())
            }
        }
    }

    /// One value of type `ty`; `None` for a message whose JSON leaves the field out.
    fn single(&self, ty: Type, value: Wire<'_>, depth: usize) -> Result<Option<Value>, FieldError> {
        match (ty, value) {
            (Type::Message(sub), Wire::Bytes(bytes)) => self
                .message(sub, bytes, depth + 1)
                .map_err(FieldError::Decode),
            (Type::Message(_), w) => {
                Err(FieldError::Wrong(format!("a message sent as {}", w.name())))
            }
            (ty, w) => scalar(ty, w).map(Some).map_err(FieldError::Wrong),
        }
    }

    fn zero(&self, ty: Type, depth: usize) -> Result<Option<Value>, ProtobufError> {
        Ok(Some(match ty {
            Type::String | Type::Bytes => Value::String(String::new()),
            Type::Int32 | Type::Int64 => Value::from(0),
            Type::Bool => Value::Bool(false),
            Type::Double => Value::from(0.0),
            Type::Message(sub) => return self.message(sub, &[], depth + 1),
        }))
    }
}

/// A field's error: its own wire mismatch (worded with the field's name by the caller), or a
/// nested message's error, passed on as is.
enum FieldError {
    Wrong(String),
    Decode(ProtobufError),
}

impl FieldError {
    fn or_wrong(self, wrong: impl FnOnce(String) -> ProtobufError) -> ProtobufError {
        match self {
            FieldError::Wrong(why) => wrong(why),
            FieldError::Decode(e) => e,
        }
    }
}

/// A scalar's JSON value: numbers as JSON numbers (int64 too, as Kubernetes writes them),
/// `bytes` as base64 (Secret data, ConfigMap binaryData).
fn scalar(ty: Type, value: Wire<'_>) -> Result<Value, String> {
    Ok(match (ty, value) {
        (Type::String, Wire::Bytes(b)) => Value::String(
            std::str::from_utf8(b)
                .map_err(|_| "a string that is not UTF-8".to_string())?
                .to_string(),
        ),
        (Type::Bytes, Wire::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        // int32 travels sign-extended to 64 bits; the low 32 bits are the value.
        (Type::Int32, Wire::Varint(v)) => Value::from(v as i32),
        (Type::Int64, Wire::Varint(v)) => Value::from(v as i64),
        (Type::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        (Type::Double, Wire::Fixed64(bits)) => Number::from_f64(f64::from_bits(bits))
            .map(Value::Number)
            .ok_or_else(|| "a double that is not a finite number".to_string())?,
        (ty, w) => return Err(format!("{ty:?} sent as {}", w.name())),
    })
}

/// Messages whose JSON form is not an object of their fields.
#[derive(Debug, Clone, Copy)]
enum Special {
    /// `{seconds, nanos}` → RFC 3339 in seconds (`Time`) or microseconds (`MicroTime`).
    Time { micros: bool },
    /// `{duration}` nanoseconds → Go's duration string (`1h0m0s`).
    Duration,
    /// `{type, intVal, strVal}` → a number or a string.
    IntOrString,
    /// `{string}` → the string.
    Quantity,
    /// `{raw}` → the JSON (or nested protobuf object) it carries.
    Embedded,
    /// Custom JSON the sandbox does not reproduce.
    Unsupported,
}

fn special(name: &str) -> Option<Special> {
    Some(match name {
        "apimachinery.pkg.apis.meta.v1.Time" => Special::Time { micros: false },
        "apimachinery.pkg.apis.meta.v1.MicroTime" => Special::Time { micros: true },
        "apimachinery.pkg.apis.meta.v1.Duration" => Special::Duration,
        "apimachinery.pkg.util.intstr.IntOrString" => Special::IntOrString,
        "apimachinery.pkg.api.resource.Quantity" => Special::Quantity,
        "apimachinery.pkg.runtime.RawExtension"
        | "apimachinery.pkg.apis.meta.v1.FieldsV1"
        | "apiextensions_apiserver.pkg.apis.apiextensions.v1.Json"
        | "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.Json" => Special::Embedded,
        n if n.starts_with("apiextensions_apiserver.pkg.apis.apiextensions.")
            && n.contains(".JsonSchemaPropsOr") =>
        {
            Special::Unsupported
        }
        _ => return None,
    })
}

impl Special {
    fn convert(
        self,
        d: &Decoder<'_>,
        name: &'static str,
        bytes: &[u8],
        depth: usize,
    ) -> Result<Option<Value>, ProtobufError> {
        let bad = |why: &str| ProtobufError::malformed(name, why);
        // Each of these has scalar fields 1..3 only; read them raw.
        let mut fields: [Option<Wire<'_>>; 3] = [None; 3];
        if !matches!(self, Special::Unsupported) {
            let mut r = Reader::new(bytes);
            while let Some((n, v)) = r.field().map_err(|e| ProtobufError::malformed(name, e))? {
                let slot = fields
                    .get_mut((n as usize).wrapping_sub(1))
                    .filter(|_| {
                        d.schema
                            .messages
                            .get(name)
                            .is_some_and(|m| m.fields.contains_key(&n))
                    })
                    .ok_or(ProtobufError::UnknownField {
                        message: name,
                        number: n,
                    })?;
                *slot = Some(v);
            }
        }
        let varint = |i: usize| match fields[i] {
            None => Ok(0),
            Some(Wire::Varint(v)) => Ok(v),
            Some(_) => Err(bad("a number sent as bytes")),
        };
        let text = |i: usize| match fields[i] {
            None => Ok(""),
            Some(Wire::Bytes(b)) => {
                std::str::from_utf8(b).map_err(|_| bad("a string that is not UTF-8"))
            }
            Some(_) => Err(bad("a string sent as a number")),
        };
        let raw = |i: usize| match fields[i] {
            None => Ok(&[][..]),
            Some(Wire::Bytes(b)) => Ok(b),
            Some(_) => Err(bad("bytes sent as a number")),
        };
        Ok(match self {
            Special::Time { micros } => {
                // Go writes a zero Time as an empty message; its JSON is null (left out here).
                if bytes.is_empty() {
                    return Ok(None);
                }
                let seconds = varint(0)? as i64;
                let nanos =
                    i32::try_from(varint(1)? as i64).map_err(|_| bad("nanos out of range"))?;
                Some(Value::String(
                    rfc3339(seconds, nanos, micros).ok_or_else(|| bad("a time out of range"))?,
                ))
            }
            Special::Duration => Some(Value::String(go_duration(varint(0)? as i64))),
            Special::IntOrString => Some(if varint(0)? == 1 {
                Value::String(text(2)?.to_string())
            } else {
                Value::from(varint(1)? as i32)
            }),
            // Go's zero Quantity prints as "0".
            Special::Quantity => Some(Value::String(match text(0)? {
                "" => "0".to_string(),
                q => q.to_string(),
            })),
            Special::Embedded => {
                let raw = raw(0)?;
                if raw.is_empty() {
                    return Ok(None);
                }
                if raw.starts_with(MAGIC) {
                    Some(decode(d.schema, raw, depth + 1).map_err(|(_, e)| e)?)
                } else {
                    Some(serde_json::from_slice(raw).map_err(|e| {
                        ProtobufError::malformed(name, format!("embedded object is not JSON: {e}"))
                    })?)
                }
            }
            Special::Unsupported => return Err(ProtobufError::Unsupported(name)),
        })
    }
}

/// Go's `metav1.Time` (RFC 3339, seconds) and `MicroTime` (six fractional digits), in UTC.
fn rfc3339(seconds: i64, nanos: i32, micros: bool) -> Option<String> {
    let ts = jiff::Timestamp::new(seconds, nanos).ok()?;
    let base = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Some(if micros {
        format!("{base}.{:06}Z", ts.subsec_nanosecond() / 1000)
    } else {
        format!("{base}Z")
    })
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
fn go_duration(nanos: i64) -> String {
    // The fraction of `v / 10^digits`, without trailing zeros, and the whole part.
    fn split(v: u64, digits: u32) -> (u64, String) {
        let unit = 10u64.pow(digits);
        let frac = v % unit;
        let frac = if frac == 0 {
            String::new()
        } else {
            let padded = format!("{frac:0width$}", width = digits as usize);
            format!(".{}", padded.trim_end_matches('0'))
        };
        (v / unit, frac)
    }
    let u = nanos.unsigned_abs();
    let body = match u {
        0 => return "0s".to_string(),
        1..1_000 => format!("{u}ns"),
        1_000..1_000_000 => {
            let (whole, frac) = split(u, 3);
            format!("{whole}{frac}µs")
        }
        1_000_000..1_000_000_000 => {
            let (whole, frac) = split(u, 6);
            format!("{whole}{frac}ms")
        }
        _ => {
            let (secs, frac) = split(u, 9);
            let (s, minutes) = (secs % 60, secs / 60);
            let (m, hours) = (minutes % 60, minutes / 60);
            match (hours, minutes) {
                (0, 0) => format!("{s}{frac}s"),
                (0, _) => format!("{m}m{s}{frac}s"),
                _ => format!("{hours}h{m}m{s}{frac}s"),
            }
        }
    };
    if nanos < 0 { format!("-{body}") } else { body }
}
