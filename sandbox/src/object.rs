//! Helpers over generic objects (`serde_json::Value`): metadata accessors, timestamps, random
//! names and uids, and poison-tolerant lock guards.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::{Map, Value};

use crate::errors::ApiError;

// A panic while holding a lock must not take the whole server down with poisoned locks: the
// data is plain and every write replaces whole entries, so the inner value is still usable.
pub fn read_lock<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}
pub fn write_lock<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
pub fn lock<T>(l: &Mutex<T>) -> MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

/// RFC 3339 with second precision, UTC: the wire form of `metav1.Time`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| ApiError::internal(format!("randomness: {e}")))?;
    Ok(buf)
}

/// A version-4 UUID, the form the real server gives `metadata.uid`.
pub fn new_uid() -> Result<String, ApiError> {
    let mut b = random_bytes::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// The `generateName` suffix: 5 characters from the alphabet the real server uses (no vowels,
/// no confusable characters).
pub fn random_suffix() -> Result<String, ApiError> {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let b = random_bytes::<5>()?;
    Ok(b.iter()
        .map(|x| ALPHABET[usize::from(*x) % ALPHABET.len()] as char)
        .collect())
}

/// A bearer token for the kubeconfig: 32 random bytes, hex.
pub fn new_token() -> Result<String, ApiError> {
    Ok(random_bytes::<32>()?
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect())
}

pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.as_object()
}

/// `metadata` as a mutable map, created when absent. A body whose top level or `metadata` is not
/// a JSON object is a client error.
pub fn meta_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let Value::Object(o) = obj else {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    };
    match o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request("metadata must be an object")),
    }
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    meta(obj)
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}
pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace")
}
pub fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid")
}
pub fn resource_version(obj: &Value) -> &str {
    meta_str(obj, "resourceVersion")
}
pub fn generate_name(obj: &Value) -> &str {
    meta_str(obj, "generateName")
}
pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
    meta(obj)?.get("deletionTimestamp")?.as_str()
}

pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    meta(obj)?.get("labels")?.as_object()
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The uids in `metadata.ownerReferences`.
pub fn owner_uids(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Follow a dotted path (`spec.nodeName`) through nested objects.
pub fn lookup_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |v, key| v.get(key))
}

/// Parse a resourceVersion string; the empty string means "none given".
pub fn parse_rv(rv: &str) -> Result<Option<u64>, ApiError> {
    if rv.is_empty() {
        return Ok(None);
    }
    rv.parse::<u64>()
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_and_suffix_shapes() {
        let u = new_uid().expect("uid");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let s = random_suffix().expect("suffix");
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert!(now_rfc3339().ends_with('Z'));
    }
}
