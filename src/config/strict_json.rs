//! JSON parsing that refuses a key written twice in one object.
//!
//! `serde_json::Value` keeps the last of two equal keys without a word, so an operator who adds
//! `"enabled": false` below an existing `"enabled": true` would keep copying a wallet they meant to
//! stop. This builds the same tree through a visitor that fails on the second occurrence, and the
//! error carries serde_json's line and column.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `text`, refusing duplicate keys at any depth.
///
/// # Errors
/// Syntax errors and duplicate keys, with their position.
pub fn parse(text: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// The seed that builds a [`Value`] while checking keys.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        // serde_json only hands finite numbers here; a non-finite one has no JSON form.
        serde_json::Number::from_f64(n).map(Value::Number).ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                // Named as written when short and plain; never a pasted key or a forged line.
                let shown = match super::problem::shown_key(&key) {
                    s if s == key => format!("{key:?}"),
                    s => s,
                };
                return Err(de::Error::custom(format!(
                    "the key {shown} appears twice in one object (only one may stay)"
                )));
            }
            let v = map.next_value_seed(Strict)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_and_the_rest_parses_like_serde_json() {
        let key = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
        let twice = format!(r#"{{"{key}": 1, "{key}": 2}}"#);
        let cases: [(&str, Option<&str>); 7] = [
            // A key pasted as a name, twice: said without it.
            (&twice, Some("(a key of 64 hex digits, not shown) appears twice")),
            (r#"{"a": 1, "b": [1, 2.5, "x", null, true]}"#, None),
            (r#"{"a": 1, "a": 2}"#, Some("\"a\" appears twice")),
            (r#"{"w": [{"enabled": true, "enabled": false}]}"#, Some("\"enabled\" appears twice")),
            (r#"{"a": {"b": 1}, "c": {"b": 2}}"#, None),
            (r#"{"a": 1} x"#, Some("trailing characters")),
            (r"[]", None),
        ];
        for (text, err) in cases {
            match (parse(text), err) {
                (Ok(v), None) => assert_eq!(v, serde_json::from_str::<Value>(text).unwrap(), "{text}"),
                (Err(e), Some(want)) => assert!(e.to_string().contains(want), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want error {want:?}"),
            }
        }
    }

    #[test]
    fn the_error_says_where() {
        let e = parse("{\n  \"a\": 1,\n  \"a\": 2\n}").unwrap_err();
        assert_eq!(e.line(), 3, "{e}");
    }
}
