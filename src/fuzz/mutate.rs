//! Mutations of an input, blind to the code under test: byte-level edits, splices with another
//! input, numbers swapped for extremes, syntax tokens swapped, deep nesting, very long strings,
//! invalid UTF-8, and, when the input parses as JSON or YAML, edits of one node of its tree.

use serde_json::{Value, json};

use super::rng::Rng;

/// Numbers at the edges of every integer and float type a parser might hold them in.
const EXTREME_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "99999999999999999999999999999999999999999",
    "1e308",
    "-1e308",
    "1e309",
    "1e-400",
    "4.9e-324",
    "NaN",
    ".nan",
    "inf",
    "-.inf",
    ".5",
    "1.",
    "0x10",
    "0o17",
    "1_000",
    "00000000000000000000000000001",
    "1e9999999999",
];

/// JSON and YAML syntax: swapped for each other, or inserted anywhere.
const SYNTAX_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "'",
    "\\",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "false",
    "~",
    "- ",
    "---\n",
    "...\n",
    "\n",
    "  ",
    "#",
    "&a ",
    "*a",
    "!!binary ",
    "!!str ",
    "!!int ",
    "!!float ",
    "!!map ",
    "<<: ",
    "? ",
    "|\n",
    ">-\n",
    "%YAML 1.2\n",
    "%TAG ! tag:x:\n",
    "@",
    "`",
    "\t",
    "\r\n",
    "\u{feff}",
    "\u{2028}",
    "%",
    "*",
    "/",
    "-",
    ".",
    "e",
    "E",
];

/// Byte sequences that are not UTF-8: a lone continuation, an overlong NUL, a surrogate, beyond
/// U+10FFFF, a truncated sequence.
const INVALID_UTF8: &[&[u8]] = &[
    &[0xff],
    &[0x80],
    &[0xc0, 0x80],
    &[0xed, 0xa0, 0x80],
    &[0xf4, 0x90, 0x80, 0x80],
    &[0xe2, 0x82],
];

/// Openers for deep nesting (closed again or not, at random).
const NESTING: &[(&str, &str)] = &[
    ("[", "]"),
    ("{\"a\":", "}"),
    ("{a: ", "}"),
    ("- ", ""),
    ("a:\n ", ""),
    ("!!seq [", "]"),
];

/// One mutated copy of `input`; `other` is another input to splice with, `dictionary` the
/// target's own words (field names, enum values, units).
pub fn mutate(
    rng: &mut Rng,
    input: &[u8],
    other: &[u8],
    dictionary: &[&str],
    max_len: usize,
) -> Vec<u8> {
    let mut out = input.to_vec();
    // Mostly one or two edits: several stacked rarely keep the input readable enough to go deep.
    let edits = 1 + [0, 0, 0, 1, 1, 2, 3][rng.below(7)];
    for _ in 0..edits {
        out = mutate_once(rng, out, other, dictionary);
    }
    out.truncate(max_len);
    out
}

fn mutate_once(rng: &mut Rng, mut b: Vec<u8>, other: &[u8], dictionary: &[&str]) -> Vec<u8> {
    match rng.below(16) {
        0 => {
            if !b.is_empty() {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            if !b.is_empty() {
                let i = rng.below(b.len());
                b[i] = rng.next_u64() as u8;
            }
        }
        2 => {
            let at = rng.below(b.len() + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            b.splice(at..at, bytes);
        }
        3 => {
            let r = rng.range(b.len(), 64);
            b.drain(r);
        }
        4 => {
            let r = rng.range(b.len(), 256);
            let copy = b[r].to_vec();
            let at = rng.below(b.len() + 1);
            b.splice(at..at, copy);
        }
        5 => {
            // Splice: a prefix of this input, a suffix of the other.
            let cut = rng.below(b.len() + 1);
            let from = rng.below(other.len() + 1);
            b.truncate(cut);
            b.extend_from_slice(&other[from..]);
        }
        6 | 7 => replace_number(rng, &mut b),
        8 | 9 => swap_token(rng, &mut b, dictionary),
        10 => nest(rng, &mut b),
        11 => long_string(rng, &mut b),
        12 => {
            let at = rng.below(b.len() + 1);
            b.splice(at..at, rng.pick(INVALID_UTF8).iter().copied());
        }
        _ => {
            if let Some(v) = structured(rng, &b, dictionary) {
                b = v;
            } else {
                swap_token(rng, &mut b, dictionary);
            }
        }
    }
    b
}

/// Replaces one run of digits (with its sign, fraction and exponent) by an extreme number.
fn replace_number(rng: &mut Rng, b: &mut Vec<u8>) {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = if i > 0 && b[i - 1] == b'-' { i - 1 } else { i };
            while i < b.len() && (b[i].is_ascii_digit() || matches!(b[i], b'.' | b'e' | b'E')) {
                i += 1;
            }
            runs.push(start..i);
        } else {
            i += 1;
        }
    }
    let replacement = rng.pick(EXTREME_NUMBERS).as_bytes();
    if runs.is_empty() {
        let at = rng.below(b.len() + 1);
        b.splice(at..at, replacement.iter().copied());
    } else {
        let r = rng.pick_ref(&runs).clone();
        b.splice(r, replacement.iter().copied());
    }
}

/// Replaces one occurrence of a token (syntax or the target's words) by another, or inserts one.
fn swap_token(rng: &mut Rng, b: &mut Vec<u8>, dictionary: &[&str]) {
    let word = |rng: &mut Rng| -> &str {
        if !dictionary.is_empty() && rng.one_in(2) {
            rng.pick(dictionary)
        } else {
            rng.pick(SYNTAX_TOKENS)
        }
    };
    let from = word(rng).as_bytes();
    let to = word(rng).as_bytes().to_vec();
    let hits: Vec<usize> = b
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i)
        .take(256)
        .collect();
    if hits.is_empty() || rng.one_in(4) {
        let at = rng.below(b.len() + 1);
        b.splice(at..at, to);
    } else {
        let at = rng.pick(&hits);
        b.splice(at..at + from.len(), to);
    }
}

/// Wraps a point of the input in many levels of nesting: recursion limits and stack depth.
fn nest(rng: &mut Rng, b: &mut Vec<u8>) {
    let (open, close) = rng.pick(NESTING);
    let depth = rng.pick(&[64, 129, 257, 1000, 10_000, 100_000]);
    let at = rng.below(b.len() + 1);
    let mut inner = open.repeat(depth).into_bytes();
    if rng.one_in(2) {
        inner.extend_from_slice(b"1");
        inner.extend(close.repeat(depth).into_bytes());
    }
    b.splice(at..at, inner);
}

/// A very long run of one character, or of a slice of the input.
fn long_string(rng: &mut Rng, b: &mut Vec<u8>) {
    let len = rng.pick(&[300, 4097, 65_537, 300_000]);
    let unit: Vec<u8> = if rng.one_in(2) && !b.is_empty() {
        let r = rng.range(b.len(), 16);
        if r.is_empty() {
            b"a".to_vec()
        } else {
            b[r].to_vec()
        }
    } else {
        rng.pick(&["a", "9", " ", "\\", "é", "\u{1F600}", "\n", "-", "0"])
            .as_bytes()
            .to_vec()
    };
    let at = rng.below(b.len() + 1);
    let run: Vec<u8> = unit.iter().copied().cycle().take(len).collect();
    b.splice(at..at, run);
}

/// Edits one node of the input's tree when it reads as JSON or as multi-document YAML, and
/// writes the tree back as JSON (which YAML also reads): deep fields get wrong types and
/// extreme values while the rest of the document stays well-formed.
fn structured(rng: &mut Rng, b: &[u8], dictionary: &[&str]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(b).ok()?;
    if let Ok(mut v) = serde_json::from_str::<Value>(text) {
        edit_tree(rng, &mut v, dictionary);
        return Some(v.to_string().into_bytes());
    }
    let mut docs: Vec<Value> = text
        .split("\n---")
        .map(|d| serde_saphyr::from_str::<Value>(d).ok())
        .collect::<Option<Vec<_>>>()?;
    let i = rng.below(docs.len());
    edit_tree(rng, docs.get_mut(i)?, dictionary);
    let out: Vec<String> = docs.iter().map(Value::to_string).collect();
    Some(out.join("\n---\n").into_bytes())
}

fn edit_tree(rng: &mut Rng, root: &mut Value, dictionary: &[&str]) {
    let mut pointers = Vec::new();
    collect_pointers(root, String::new(), &mut pointers);
    let pointer = rng.pick_ref(&pointers).clone();
    let donor = root
        .pointer(rng.pick_ref(&pointers).as_str())
        .cloned()
        .unwrap_or(Value::Null);
    let replacement = match rng.below(8) {
        0 => donor,
        1 => Value::String(word(rng, dictionary).to_string()),
        2 => serde_json::from_str(rng.pick(EXTREME_NUMBERS)).unwrap_or(Value::Null),
        3 => Value::String(rng.pick(EXTREME_NUMBERS).to_string()),
        4 => rng
            .pick_ref(&[
                Value::Null,
                json!(true),
                json!(""),
                json!([]),
                json!({}),
                json!([null]),
                json!({"": null}),
                json!("a".repeat(70_000)),
            ])
            .clone(),
        5 => {
            // Remove the node from its parent (a missing required field).
            remove(root, &pointer);
            return;
        }
        6 => {
            // Duplicate it: arrays get longer, maps get a twin key.
            if let Some((parent, _)) = pointer.rsplit_once('/')
                && let Some(p) = root.pointer_mut(parent)
            {
                match p {
                    Value::Array(items) if !items.is_empty() => {
                        let item = items[rng.below(items.len())].clone();
                        // At most about 1 MiB more: a big item copied 5000 times ran out of memory.
                        let room = (1 << 20) / item.to_string().len().max(1);
                        let n = rng.pick(&[1, 100, 5000]).min(room.max(1));
                        items.extend(std::iter::repeat_n(item, n));
                    }
                    Value::Object(map) => {
                        let key = word(rng, dictionary).to_string();
                        map.insert(key, donor);
                    }
                    _ => {}
                }
            }
            return;
        }
        _ => {
            let mut v = Value::Null;
            for _ in 0..rng.pick(&[10, 100, 127, 128, 129]) {
                v = json!([v]);
            }
            v
        }
    };
    if let Some(slot) = root.pointer_mut(&pointer) {
        *slot = replacement;
    }
}

fn word<'a>(rng: &mut Rng, dictionary: &[&'a str]) -> &'a str {
    if dictionary.is_empty() {
        "a"
    } else {
        rng.pick(dictionary)
    }
}

fn collect_pointers(v: &Value, at: String, out: &mut Vec<String>) {
    if out.len() >= 10_000 {
        return;
    }
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_pointers(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let k = k.replace('~', "~0").replace('/', "~1");
                collect_pointers(item, format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn remove(root: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    match root.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(&key);
        }
        Some(Value::Array(items)) => {
            if let Ok(i) = key.parse::<usize>()
                && i < items.len()
            {
                items.remove(i);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_deterministic_and_bounded() {
        let seed = br#"{"a": [1, 2, {"b": "c"}], "n": 30}"#;
        let run = |s| {
            let mut rng = Rng::new(s);
            (0..500)
                .map(|_| mutate(&mut rng, seed, b"x: 1\n", &["In", "Gi"], 1 << 16))
                .collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42));
        assert!(a.iter().all(|m| m.len() <= 1 << 16));
        // Not all the same, and not all unchanged.
        assert!(a.iter().filter(|m| m.as_slice() != seed).count() > 400);
    }

    #[test]
    fn structured_edits_keep_json_readable() {
        let mut rng = Rng::new(3);
        let seed = br#"{"spec": {"replicas": 3, "items": ["a", "b"]}}"#;
        for _ in 0..200 {
            let out = structured(&mut rng, seed, &["x"]).expect("JSON in, JSON out");
            // Readable, unless nested past serde_json's limit of 128 on purpose (127 to 129 levels,
            // plus where the edit sits).
            let too_deep = out.windows(100).any(|w| w.iter().all(|b| *b == b'['));
            assert!(serde_json::from_slice::<Value>(&out).is_ok() || too_deep);
        }
    }

    #[test]
    fn numbers_are_replaced_in_place() {
        let mut rng = Rng::new(1);
        let mut b = b"replicas: 3\n".to_vec();
        replace_number(&mut rng, &mut b);
        let s = String::from_utf8_lossy(&b);
        assert!(s.starts_with("replicas: ") && !s.contains(" 3\n"), "{s}");
    }
}
