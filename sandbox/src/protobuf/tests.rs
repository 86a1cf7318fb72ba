//! Bodies built by hand with a tiny encoder, as Go's generated marshallers write them.

use super::*;
use serde_json::json;

fn key(number: u32, wire_type: u8) -> Vec<u8> {
    varint(u64::from(number) << 3 | u64::from(wire_type))
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn num(number: u32, v: u64) -> Vec<u8> {
    [key(number, 0), varint(v)].concat()
}

fn bytes(number: u32, b: &[u8]) -> Vec<u8> {
    [key(number, 2), varint(b.len() as u64), b.to_vec()].concat()
}

fn text(number: u32, s: &str) -> Vec<u8> {
    bytes(number, s.as_bytes())
}

fn entry(number: u32, k: &str, value: &[u8]) -> Vec<u8> {
    bytes(number, &[text(1, k), bytes(2, value)].concat())
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [text(1, api_version), text(2, kind)].concat();
    [MAGIC.to_vec(), bytes(1, &type_meta), bytes(2, raw)].concat()
}

fn meta(name: &str) -> Vec<u8> {
    // Go writes every non-pointer field: empty strings, generation 0, an empty Time.
    bytes(
        1,
        &[
            text(1, name),
            text(2, ""),
            text(3, ""),
            num(7, 0),
            bytes(8, &[]),
            entry(11, "app", b"web"),
        ]
        .concat(),
    )
}

fn convert(name: &'static str, body: &[u8]) -> Result<Option<Value>, ProtobufError> {
    let d = Decoder {
        schema: schema::schema().unwrap(),
    };
    d.message(name, body, 0)
}

const TIME: &str = "apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "apimachinery.pkg.apis.meta.v1.MicroTime";
const INT_OR_STRING: &str = "apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "apimachinery.pkg.api.resource.Quantity";
const RAW_EXTENSION: &str = "apimachinery.pkg.runtime.RawExtension";
const DURATION: &str = "apimachinery.pkg.apis.meta.v1.Duration";

#[test]
fn time_is_rfc3339_in_seconds_and_micro_time_in_microseconds() {
    let t = [num(1, 1_700_000_000), num(2, 123_456_789)].concat();
    assert_eq!(convert(TIME, &t), Ok(Some(json!("2023-11-14T22:13:20Z"))));
    assert_eq!(
        convert(MICRO_TIME, &t),
        Ok(Some(json!("2023-11-14T22:13:20.123456Z")))
    );
    // A zero Time is an empty message; Go's JSON has null, the field is left out.
    assert_eq!(convert(TIME, &[]), Ok(None));
    assert!(convert(TIME, &num(1, u64::MAX / 2)).is_err());
}

#[test]
fn int_or_string_is_a_number_or_a_string() {
    let int = [num(1, 0), num(2, 8080), text(3, "")].concat();
    assert_eq!(convert(INT_OR_STRING, &int), Ok(Some(json!(8080))));
    let string = [num(1, 1), num(2, 0), text(3, "25%")].concat();
    assert_eq!(convert(INT_OR_STRING, &string), Ok(Some(json!("25%"))));
    // Negative int32 travels sign-extended to ten bytes.
    let negative = [num(1, 0), num(2, (-3i64) as u64)].concat();
    assert_eq!(convert(INT_OR_STRING, &negative), Ok(Some(json!(-3))));
}

#[test]
fn quantity_is_its_string() {
    assert_eq!(convert(QUANTITY, &text(1, "500m")), Ok(Some(json!("500m"))));
    assert_eq!(convert(QUANTITY, &[]), Ok(Some(json!("0"))));
}

#[test]
fn raw_extension_embeds_json_or_a_nested_protobuf_object() {
    let raw = bytes(1, br#"{"apiVersion":"v1","kind":"Pod","spec":{}}"#);
    assert_eq!(
        convert(RAW_EXTENSION, &raw),
        Ok(Some(json!({"apiVersion": "v1", "kind": "Pod", "spec": {}})))
    );
    let nested = envelope("v1", "ConfigMap", &meta("c"));
    assert_eq!(
        convert(RAW_EXTENSION, &bytes(1, &nested)),
        Ok(Some(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "generation": 0, "labels": {"app": "web"}}})
        ))
    );
    assert!(matches!(
        convert(RAW_EXTENSION, &bytes(1, b"not json")),
        Err(ProtobufError::Malformed { .. })
    ));
}

#[test]
fn duration_is_go_duration_string() {
    assert_eq!(
        convert(DURATION, &num(1, 3_600_000_000_000)),
        Ok(Some(json!("1h0m0s")))
    );
    for (nanos, go) in [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (90_500_000_000, "1m30.5s"),
        (-2_000_000_000, "-2s"),
    ] {
        assert_eq!(go_duration(nanos), go);
    }
}

#[test]
fn secret_bytes_are_base64_and_maps_and_repeated_fields_convert() {
    let secret = [
        meta("s"),
        entry(2, "k", b"v"),
        entry(2, "bin", &[0, 255]),
        text(3, "Opaque"),
        entry(4, "plain", b"text"),
    ]
    .concat();
    let v = decode_body(&envelope("v1", "Secret", &secret)).unwrap();
    assert_eq!(
        v,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "generation": 0, "labels": {"app": "web"}},
            "data": {"k": "dg==", "bin": "AP8="},
            "type": "Opaque",
            "stringData": {"plain": "text"},
        })
    );
}

#[test]
fn deployment_with_nested_messages_repeated_fields_and_inlined_structs() {
    let volume = bytes(
        1,
        &[
            text(1, "cfg"),
            // volumeSource (inline) → configMap (field 19) → localObjectReference (inline) → name
            bytes(2, &bytes(19, &bytes(1, &text(1, "settings")))),
        ]
        .concat(),
    );
    let container = bytes(
        2,
        &[
            text(1, "web"),
            text(2, "nginx"),
            bytes(3, b"--port"),
            bytes(6, &[num(3, 80), text(4, "TCP")].concat()),
            bytes(8, &entry(2, "cpu", &text(1, "100m"))),
        ]
        .concat(),
    );
    let spec = [
        num(1, 2),
        bytes(2, &entry(1, "app", b"web")),
        bytes(
            3,
            &[meta(""), bytes(2, &[volume, container].concat())].concat(),
        ),
    ]
    .concat();
    let deploy = [meta("web"), bytes(2, &spec)].concat();
    let v = decode_body(&envelope("apps/v1", "Deployment", &deploy)).unwrap();
    assert_eq!(v["spec"]["replicas"], 2);
    assert_eq!(
        v["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    let pod = &v["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"],
        json!([{"name": "cfg", "configMap": {"name": "settings"}}])
    );
    assert_eq!(
        pod["containers"],
        json!([{
            "name": "web",
            "image": "nginx",
            "command": ["--port"],
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "resources": {"requests": {"cpu": "100m"}},
        }])
    );
}

#[test]
fn packed_repeated_numbers_and_named_slices() {
    // PodSecurityContext.supplementalGroups (field 4), packed.
    let groups = bytes(4, &[varint(1000), varint(2000)].concat());
    let v = convert("api.core.v1.PodSecurityContext", &groups).unwrap();
    assert_eq!(v, Some(json!({"supplementalGroups": [1000, 2000]})));
    let verbs = [text(1, "get"), text(1, "list")].concat();
    assert_eq!(
        convert("apimachinery.pkg.apis.meta.v1.Verbs", &verbs),
        Ok(Some(json!(["get", "list"])))
    );
}

#[test]
fn delete_options_decode_under_any_group_version() {
    let opts = [num(1, 0), text(4, "Background")].concat();
    let v = decode_body(&envelope("v1", "DeleteOptions", &opts)).unwrap();
    assert_eq!(v["propagationPolicy"], "Background");
    assert_eq!(v["gracePeriodSeconds"], 0);
}

#[test]
fn malformed_bodies_are_400_with_a_message() {
    let e = decode_body(b"{\"kind\":\"Pod\"}").unwrap_err();
    assert_eq!((e.code, e.reason.as_ref()), (400, "BadRequest"));
    assert!(e.message.contains("magic"), "{}", e.message);

    let body = envelope(
        "v1",
        "ConfigMap",
        &[meta("c"), entry(2, "a", b"b")].concat(),
    );
    // Every truncation fails cleanly (400 or, when a cut lands on a field boundary, a
    // shorter but valid object), never a panic.
    for cut in MAGIC.len()..body.len() {
        if let Err(e) = decode_body(&body[..cut]) {
            assert!(
                e.code == 400 || e.code == 415,
                "cut {cut}: {} {}",
                e.code,
                e.message
            );
        }
    }
    let e = decode_body(&[MAGIC.to_vec(), vec![0x0a, 0x20, 0x0a]].concat()).unwrap_err();
    assert_eq!(e.code, 400, "{}", e.message);
    assert!(e.message.contains("truncated"), "{}", e.message);
}

#[test]
fn unknown_kinds_and_fields_are_415_naming_them() {
    let e = decode_body(&envelope("example.com/v1", "Widget", &[])).unwrap_err();
    assert_eq!((e.code, e.reason.as_ref()), (415, "UnsupportedMediaType"));
    assert!(e.message.contains("\"Widget\""), "{}", e.message);

    let cm = [meta("c"), text(99, "new field")].concat();
    let e = decode_body(&envelope("v1", "ConfigMap", &cm)).unwrap_err();
    assert_eq!(e.code, 415);
    assert!(
        e.message.contains("v1 ConfigMap") && e.message.contains("field number 99"),
        "{}",
        e.message
    );

    let gzip = [envelope("v1", "ConfigMap", &[]), text(3, "gzip")].concat();
    assert_eq!(decode_body(&gzip).unwrap_err().code, 415);
}

#[test]
fn deeply_nested_input_is_refused() {
    // RawExtensions can carry envelopes carrying RawExtensions: 100 deep is refused, not a
    // stack overflow.
    let mut raw = envelope("v1", "ConfigMap", &meta("c"));
    for _ in 0..100 {
        raw = envelope("apps/v1", "ControllerRevision", &bytes(2, &bytes(1, &raw)));
    }
    let e = decode_body(&raw).unwrap_err();
    assert_eq!(e.code, 400);
    assert!(e.message.contains("nested too deeply"), "{}", e.message);
}
