//! PATCH bodies by content type: JSON merge patch (RFC 7386), JSON Patch (RFC 6902), server-side
//! apply (approximated) and strategic merge patch (see [`crate::strategic`]).

use serde_json::Value;

use crate::errors::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Apply,
    Strategic,
}

impl PatchType {
    /// The patch type named by a request's Content-Type (parameters such as `charset` ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            _ => None,
        }
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid patch: {e}")))
}

/// Decode an apply body: YAML (its declared type) or JSON, which kube-rs sends.
pub fn parse_apply_body(body: &[u8]) -> Result<Value, ApiError> {
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(v) => v,
        Err(_) => crate::server::decode_yaml(body)?,
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "apply patch must be a YAML or JSON object",
        ));
    }
    Ok(value)
}

/// Apply a merge, JSON or strategic patch to `current`, returning the patched object.
/// (Apply patches go through [`apply_merge`], since they can also create.)
pub fn patch_object(kind: PatchType, current: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let mut doc = current.clone();
    match kind {
        PatchType::Merge => {
            let patch = parse_json(body)?;
            if !patch.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            json_patch::merge(&mut doc, &patch);
        }
        PatchType::Strategic => {
            crate::strategic::apply(&mut doc, &parse_json(body)?)?;
        }
        PatchType::Json => {
            let raw: Vec<Value> = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            // As the real server (evanphx/json-patch): `test` against null passes when the path
            // is absent; kube-runtime's finalizer helper relies on it for objects with no
            // finalizers yet.
            let raw: Vec<Value> = raw
                .into_iter()
                .filter(|op| {
                    let absent_null_test = op.get("op").and_then(Value::as_str) == Some("test")
                        && op.get("value").is_some_and(Value::is_null)
                        && op
                            .get("path")
                            .and_then(Value::as_str)
                            .is_some_and(|p| doc.pointer(p).is_none());
                    !absent_null_test
                })
                .collect();
            let ops: json_patch::Patch = serde_json::from_value(Value::Array(raw))
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
        }
        PatchType::Apply => {
            let applied = parse_apply_body(body)?;
            apply_merge(&mut doc, &applied);
        }
    }
    Ok(doc)
}

/// Server-side apply, approximated: the applied configuration is merged into the live object
/// (maps merged key by key, lists and scalars replaced). There is no field ownership, so a
/// field dropped from the applied configuration is not removed.
/// TODO(milestone: apply): managedFields and per-manager ownership, conflicts without `force`.
pub fn apply_merge(live: &mut Value, applied: &Value) {
    json_patch::merge(live, applied);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_json_and_strategic() {
        let cur =
            json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}, "data": {"k": "v"}});
        let merged = patch_object(
            PatchType::Merge,
            &cur,
            br#"{"metadata":{"labels":{"x":null,"z":"3"}}}"#,
        )
        .expect("merge");
        assert_eq!(merged["metadata"]["labels"], json!({"y": "2", "z": "3"}));

        let patched = patch_object(
            PatchType::Json,
            &cur,
            br#"[{"op":"replace","path":"/data/k","value":"w"}]"#,
        )
        .expect("json patch");
        assert_eq!(patched["data"]["k"], "w");
        let err = patch_object(
            PatchType::Json,
            &cur,
            br#"[{"op":"test","path":"/data/k","value":"nope"}]"#,
        )
        .expect_err("failed test op");
        assert_eq!(err.code, 422);
        // kube-runtime's finalizer helper: test null on an absent list, then add it.
        let added = patch_object(
            PatchType::Json,
            &cur,
            br#"[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["f"]}]"#,
        )
        .expect("test null on an absent path passes");
        assert_eq!(added["metadata"]["finalizers"], json!(["f"]));
        let present = json!({"metadata": {"finalizers": ["g"]}});
        assert_eq!(
            patch_object(
                PatchType::Json,
                &present,
                br#"[{"op":"test","path":"/metadata/finalizers","value":null}]"#,
            )
            .expect_err("a present value is not null")
            .code,
            422
        );
        assert_eq!(
            patch_object(PatchType::Json, &cur, b"{")
                .expect_err("bad")
                .code,
            400
        );

        let smp = patch_object(
            PatchType::Strategic,
            &json!({"spec": {"containers": [{"name": "a"}]}}),
            br#"{"$setElementOrder/containers":[{"name":"b"}],"spec":{"containers":[{"name":"b"},{"$patch":"delete","name":"a"}]}}"#,
        )
        .expect("smp");
        assert_eq!(smp, json!({"spec": {"containers": [{"name": "b"}]}}));
    }
}
