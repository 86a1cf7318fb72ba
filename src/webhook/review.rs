//! AdmissionReview v1 in and out. Decoding is our own small, lenient struct rather than kube-core's
//! typed one, so that any object shape reaches the validators (which report field paths) instead
//! of failing as a whole; the response carries the JSON Patch as the base64 string the API server
//! documents (kube-core's `AdmissionResponse` would serialise it as an array of numbers).

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::Verdict;

/// Requests larger than this are refused (the API server's own object limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
const API_VERSIONS: &[&str] = &["admission.k8s.io/v1", "admission.k8s.io/v1beta1"];

/// The fields of an AdmissionRequest the webhooks use.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    #[serde(default)]
    pub kind: Option<Value>,
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
    /// Our handlers have no side effects, so a dry run is answered exactly like a real request.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    request: Option<AdmissionRequest>,
}

/// A decoded review: the request plus the apiVersion to answer with.
#[derive(Debug, Clone)]
pub struct Review {
    pub api_version: String,
    pub request: AdmissionRequest,
}

/// Why a body is not a review we can answer. Both are the caller's mistake: HTTP 4xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("request body is {0} bytes; the limit is {MAX_BODY_BYTES}")]
    TooLarge(usize),
    #[error("malformed AdmissionReview: {0}")]
    Malformed(String),
}

impl ReviewError {
    pub fn status(&self) -> u16 {
        match self {
            ReviewError::TooLarge(_) => 413,
            ReviewError::Malformed(_) => 400,
        }
    }
}

pub fn decode_review(body: &[u8]) -> Result<Review, ReviewError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ReviewError::TooLarge(body.len()));
    }
    let review: ReviewIn =
        serde_json::from_slice(body).map_err(|e| ReviewError::Malformed(e.to_string()))?;
    let api_version = review.api_version.unwrap_or_default();
    if !API_VERSIONS.contains(&api_version.as_str()) {
        return Err(ReviewError::Malformed(format!(
            "apiVersion {api_version:?} is not admission.k8s.io/v1"
        )));
    }
    if review.kind.as_deref() != Some("AdmissionReview") {
        return Err(ReviewError::Malformed(format!(
            "kind {:?} is not AdmissionReview",
            review.kind.unwrap_or_default()
        )));
    }
    let request = review
        .request
        .ok_or_else(|| ReviewError::Malformed("no request".into()))?;
    if request.uid.is_empty() {
        return Err(ReviewError::Malformed("request.uid is empty".into()));
    }
    Ok(Review {
        api_version,
        request,
    })
}

/// A webhook's answer to one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub message: Option<String>,
    pub patch: json_patch::Patch,
    pub warnings: Vec<String>,
}

impl Decision {
    pub fn allow() -> Self {
        Decision {
            allowed: true,
            ..Default::default()
        }
    }

    pub fn deny(message: impl Into<String>) -> Self {
        Decision {
            allowed: false,
            message: Some(message.into()),
            ..Default::default()
        }
    }

    pub fn from_verdict(v: Verdict) -> Self {
        let mut d = if v.is_allowed() {
            Decision::allow()
        } else {
            Decision::deny(v.message())
        };
        d.warnings = v.warnings;
        d
    }

    /// Adds the patch turning `original` into `mutated` (nothing when they are equal).
    pub fn with_mutation(mut self, original: &Value, mutated: &Value) -> Self {
        self.patch = json_patch::diff(original, mutated);
        self
    }
}

/// The response review for `decision`, as JSON.
pub fn encode_response(api_version: &str, uid: &str, decision: &Decision) -> Value {
    let mut response = json!({"uid": uid, "allowed": decision.allowed});
    if !decision.allowed {
        response["status"] = json!({
            "code": 403,
            "reason": "Forbidden",
            "message": decision.message.clone().unwrap_or_else(|| "denied".into()),
        });
    }
    if !decision.patch.0.is_empty() {
        // Serialising a Patch cannot fail (it is plain strings and JSON values).
        if let Ok(bytes) = serde_json::to_vec(&decision.patch) {
            response["patchType"] = json!("JSONPatch");
            response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
    }
    if !decision.warnings.is_empty() {
        response["warnings"] = json!(decision.warnings);
    }
    json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response})
}

/// Decodes `body`, runs `decide`, and encodes the answer: (HTTP status, body, content type).
pub fn handle(
    body: &[u8],
    decide: impl FnOnce(&AdmissionRequest) -> Decision,
) -> (u16, Vec<u8>, &'static str) {
    match decode_review(body) {
        Ok(review) => {
            let decision = decide(&review.request);
            let out = encode_response(&review.api_version, &review.request.uid, &decision);
            (200, out.to_string().into_bytes(), "application/json")
        }
        Err(e) => (
            e.status(),
            format!("{e}\n").into_bytes(),
            "text/plain; charset=utf-8",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn review(request: Value) -> Vec<u8> {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn echoes_uid_and_encodes_patch_as_base64() {
        let body = review(
            json!({"uid": "abc-123", "operation": "CREATE", "object": {"a": 1}, "dryRun": true}),
        );
        let (status, out, _) = handle(&body, |req| {
            assert_eq!(req.dry_run, Some(true));
            let obj = req.object.clone().unwrap_or_default();
            let mut m = obj.clone();
            m["b"] = json!(2);
            let mut d = Decision::allow().with_mutation(&obj, &m);
            d.warnings.push("careful".into());
            d
        });
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(v["response"]["uid"], "abc-123");
        assert_eq!(v["response"]["allowed"], true);
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        assert_eq!(v["response"]["warnings"], json!(["careful"]));
        let patch = base64::engine::general_purpose::STANDARD
            .decode(v["response"]["patch"].as_str().unwrap())
            .unwrap();
        let patch: Value = serde_json::from_slice(&patch).unwrap();
        assert_eq!(patch, json!([{"op": "add", "path": "/b", "value": 2}]));
    }

    #[test]
    fn denial_carries_status() {
        let body = review(json!({"uid": "u"}));
        let (status, out, _) = handle(&body, |_| Decision::deny("spec.weight: bad"));
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["response"]["allowed"], false);
        assert_eq!(v["response"]["status"]["code"], 403);
        assert_eq!(v["response"]["status"]["message"], "spec.weight: bad");
        assert!(v["response"].get("patch").is_none());
    }

    #[test]
    fn malformed_and_oversized_bodies_are_4xx() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (b"".to_vec(), 400),
            (b"not json".to_vec(), 400),
            (b"[]".to_vec(), 400),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), 400),
            (br#"{"apiVersion":"v1","kind":"AdmissionReview","request":{"uid":"u"}}"#.to_vec(), 400),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{"uid":"u"}}"#.to_vec(), 400),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}"#.to_vec(), 400),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}"#.to_vec(), 400),
            (vec![b' '; MAX_BODY_BYTES + 1], 413),
        ];
        for (body, want) in cases {
            let (status, out, ctype) = handle(&body, |_| Decision::allow());
            assert_eq!(
                status,
                want,
                "{}",
                String::from_utf8_lossy(&body[..body.len().min(80)])
            );
            assert!(ctype.starts_with("text/plain"));
            assert!(!out.is_empty());
        }
    }

    pub(crate) fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            "[a-zA-Z0-9%@*/ .:-]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let (status, out, _) = handle(&body, |_| Decision::allow());
            prop_assert!(status == 200 || status == 400);
            prop_assert!(!out.is_empty());
        }

        #[test]
        fn arbitrary_json_gets_a_well_formed_answer(v in arb_json(), uid in "[a-z0-9-]{1,20}") {
            for body in [v.to_string().into_bytes(), review(json!({"uid": uid, "object": v})) ] {
                let (status, out, _) = handle(&body, |_| Decision::allow());
                if status == 200 {
                    let r: Value = serde_json::from_slice(&out).unwrap();
                    prop_assert_eq!(&r["kind"], "AdmissionReview");
                    prop_assert!(r["response"]["uid"].is_string());
                    prop_assert!(r["response"]["allowed"].is_boolean());
                } else {
                    prop_assert_eq!(status, 400);
                }
            }
        }
    }
}
