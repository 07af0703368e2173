//! A JSON tree that borrows its strings from the text it was parsed from, for the ndctl
//! importer. `serde_json::Value` gives the same answers but owns every key and string and
//! keeps objects in `BTreeMap`s: building and dropping those was about a quarter of a 1 GB
//! `ndctl list` import (perf, 2026-12-05). Objects here are a vector of members sorted by
//! key, the last of duplicate keys kept, so walking one visits the members in the order
//! `serde_json::Map` (a `BTreeMap` without `preserve_order`) would: the importer's output
//! does not change.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use std::borrow::Cow;
use std::fmt;

/// A JSON value; strings borrowed from the input unless they hold escapes.
#[derive(Clone, Debug, PartialEq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Object<'a>),
}

/// An object's members, sorted by key, keys unique (the last one in the text kept).
pub type Object<'a> = Vec<(Cow<'a, str>, Node<'a>)>;

impl<'a> Node<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Node::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Node<'a>]> {
        match self {
            Node::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The same tree, owning its strings.
    pub fn into_owned(self) -> Node<'static> {
        match self {
            Node::Null => Node::Null,
            Node::Bool(b) => Node::Bool(b),
            Node::Number(n) => Node::Number(n),
            Node::String(s) => Node::String(Cow::Owned(s.into_owned())),
            Node::Array(a) => Node::Array(a.into_iter().map(Node::into_owned).collect()),
            Node::Object(m) => Node::Object(
                m.into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
        }
    }
}

/// The tree as serde_json::Value would have it.
pub fn to_value(n: &Node) -> serde_json::Value {
    use serde_json::Value;
    match n {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Number(x) => Value::Number(x.clone()),
        Node::String(s) => Value::String(s.to_string()),
        Node::Array(a) => Value::Array(a.iter().map(to_value).collect()),
        Node::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.to_string(), to_value(v)))
                .collect(),
        ),
    }
}

/// Compact JSON, as `serde_json::Value` prints it (for messages).
impl fmt::Display for Node<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        to_value(self).fmt(f)
    }
}

/// The member `key` of an object.
pub fn get<'n, 'a>(m: &'n [(Cow<'a, str>, Node<'a>)], key: &str) -> Option<&'n Node<'a>> {
    m.binary_search_by(|(k, _)| k.as_ref().cmp(key))
        .ok()
        .map(|i| &m[i].1)
}

/// An object key or string, borrowed when it has no escapes (serde's own `Cow<str>`
/// always copies).
pub struct Str<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Node<'de>, E> {
                Ok(Node::Bool(b))
            }
            fn visit_i64<E>(self, i: i64) -> Result<Node<'de>, E> {
                Ok(Node::Number(i.into()))
            }
            fn visit_u64<E>(self, u: u64) -> Result<Node<'de>, E> {
                Ok(Node::Number(u.into()))
            }
            fn visit_f64<E>(self, f: f64) -> Result<Node<'de>, E> {
                // as serde_json::Value: a non-finite float is null
                Ok(Number::from_f64(f).map_or(Node::Null, Node::Number))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Node<'de>, E> {
                Ok(Node::String(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Node<'de>, E> {
                Ok(Node::String(Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<Node<'de>, E> {
                Ok(Node::String(Cow::Owned(s)))
            }
            fn visit_unit<E>(self) -> Result<Node<'de>, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node<'de>, E> {
                Ok(Node::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node<'de>, A::Error> {
                let mut v = Vec::with_capacity(a.size_hint().unwrap_or(0).min(64));
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Node::Array(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node<'de>, A::Error> {
                let mut m: Object<'de> = Vec::with_capacity(16);
                while let Some(Str(k)) = a.next_key()? {
                    m.push((k, a.next_value()?));
                }
                // stable: of equal keys the later one ends last, and is the one kept
                m.sort_by(|a, b| a.0.cmp(&b.0));
                m.dedup_by(|later, kept| {
                    let dup = later.0 == kept.0;
                    if dup {
                        std::mem::swap(later, kept);
                    }
                    dup
                });
                Ok(Node::Object(m))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_tree_as_serde_json_value() {
        let text = r#"{"z":1,"a":[true,null,-3,2.5e3,"x\"y"],"m":{"k":"v","k":"w","b":{}},
            "a":"again","\u0041":18446744073709551615,"e":"é"}"#;
        let node: Node = serde_json::from_str(text).unwrap();
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(to_value(&node), value);
        // keys in Map order, duplicate keys: the last one
        let Node::Object(m) = &node else { panic!() };
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["A", "a", "e", "m", "z"]);
        assert_eq!(get(m, "a").and_then(Node::as_str), Some("again"));
        assert!(get(m, "nope").is_none());
        // strings without escapes are borrowed
        assert!(matches!(
            get(m, "e"),
            Some(Node::String(Cow::Borrowed("é")))
        ));
        assert_eq!(to_value(&node.clone().into_owned()), value);
        assert_eq!(node.to_string(), value.to_string());
    }
}
