//! A generic YAML tree with byte spans, read with serde-saphyr.
//!
//! Documents are first read into this [`Node`] tree and then interpreted by the schema readers
//! in [`super::reader`]. Reading in two steps lets `validate` report *every* schema problem of a
//! file (unknown keys, wrong types, bad values), where a derived serde deserializer would stop at
//! the first one. Every node keeps the byte span of its text, so later stages (such as the rule
//! compiler) can point inside a YAML scalar.

use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::diagnostics::{Diagnostic, SourceFile, Span, codes};

/// One YAML node and the bytes it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: NodeValue,
    /// Byte span of the node's text. For quoted and block scalars it includes the quotes or the
    /// block body; for collections it may be empty (pointing at the first entry).
    pub span: Span,
}

/// The value of a YAML node. Scalars keep serde-saphyr's resolution (YAML 1.1 style booleans
/// such as `yes` become [`NodeValue::Bool`]); readers that want text use [`Node::raw`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// `~`, `null` or an empty value.
    Null,
    /// A boolean scalar.
    Bool(bool),
    /// An integer scalar.
    Int(i64),
    /// A floating-point scalar.
    Float(f64),
    /// A string scalar (quoted, or plain text that is not a number or bool).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(Key, Node)>),
}

/// A mapping key and its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key text.
    pub name: String,
    /// Where the key is written.
    pub span: Span,
}

impl Node {
    /// A short description of the node's kind for messages: "a string", "a list", ...
    pub fn kind_name(&self) -> &'static str {
        match self.value {
            NodeValue::Null => "an empty value",
            NodeValue::Bool(_) => "a bool",
            NodeValue::Int(_) | NodeValue::Float(_) => "a number",
            NodeValue::Str(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }

    /// The node's source text (for scalars, exactly as written, including any quotes).
    pub fn raw<'a>(&self, file: &'a SourceFile) -> &'a str {
        file.text.get(self.span.start..self.span.end).unwrap_or("")
    }

    /// True when the scalar was written with quotes.
    pub fn is_quoted(&self, file: &SourceFile) -> bool {
        let raw = self.raw(file);
        raw.starts_with('"') || raw.starts_with('\'')
    }

    /// The text of a scalar as a string. Plain scalars give their source text, so `ON` or `yes`
    /// stay strings (not YAML 1.1 booleans) and `1.50` keeps its digits. `None` for collections
    /// and null.
    pub fn scalar_text(&self, file: &SourceFile) -> Option<String> {
        match &self.value {
            NodeValue::Str(s) => Some(s.clone()),
            NodeValue::Bool(_) | NodeValue::Int(_) | NodeValue::Float(_) => Some(self.raw(file).trim().to_string()),
            _ => None,
        }
    }
}

/// Parses a YAML file into a [`Node`] tree. An empty file gives a `Null` node.
///
/// # Errors
/// A YAML syntax error (or a duplicate key) becomes an `E1001` diagnostic at its location.
pub fn parse_yaml(file: &Arc<SourceFile>) -> Result<Node, Diagnostic> {
    if file.text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Ok(Node { value: NodeValue::Null, span: Span::new(0, 0) });
    }
    match serde_saphyr::from_str::<serde_saphyr::Spanned<Raw>>(&file.text) {
        Ok(root) => Ok(convert(root)),
        Err(err) => {
            let mut span = err.location().map(|l| loc_span(&l)).unwrap_or_default();
            let mut msg = yaml_message(&err);
            // Scanner errors name their real position in the text ("... at line 4, column 10")
            // while the location points at the enclosing node: prefer the former.
            if let Some((at, offset)) =
                position_in_message(&msg).and_then(|(at, line, col)| Some((at, byte_offset(file, line, col)?)))
            {
                span = Span::new(offset, offset + file.text[offset..].chars().next().map_or(0, char::len_utf8));
                msg.truncate(at);
            }
            Err(Diagnostic::error(codes::YAML_SYNTAX, format!("invalid YAML: {msg}")).at(file, span).label("here"))
        }
    }
}

/// The first line of serde-saphyr's message without its own location prefix and snippet.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // Drop a leading "line N column M: ".
    let stripped = match first.find(": ") {
        Some(i) if first.starts_with("line ") => &first[i + 2..],
        _ => first,
    };
    stripped.to_lowercase()
}

/// Finds "at line N, column M" in a message: (byte index of " at line", N, M).
fn position_in_message(msg: &str) -> Option<(usize, usize, usize)> {
    let at = msg.rfind(" at line ")?;
    let rest = &msg[at + " at line ".len()..];
    let (line, rest) = rest.split_once(", column ")?;
    let col: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((at, line.trim().parse().ok()?, col.parse().ok()?))
}

/// Byte offset of a 1-based line and character column.
fn byte_offset(file: &SourceFile, line: usize, col: usize) -> Option<usize> {
    let start: usize = file.text.split_inclusive('\n').take(line.checked_sub(1)?).map(str::len).sum();
    let text = file.text.get(start..)?;
    let within = text.char_indices().nth(col.checked_sub(1)?).map_or(text.len(), |(i, _)| i);
    Some((start + within).min(file.text.len()))
}

fn loc_span(loc: &serde_saphyr::Location) -> Span {
    let s = loc.span();
    match (s.byte_offset(), s.byte_len()) {
        (Some(o), Some(l)) => Span::new(o as usize, (o + l) as usize),
        _ => Span::default(),
    }
}

/// serde-facing raw node; converted to [`Node`] right after parsing.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<serde_saphyr::Spanned<Raw>>),
    Map(Vec<(serde_saphyr::Spanned<String>, serde_saphyr::Spanned<Raw>)>),
}

fn convert(sp: serde_saphyr::Spanned<Raw>) -> Node {
    let span = loc_span(&sp.referenced);
    let value = match sp.value {
        Raw::Null => NodeValue::Null,
        Raw::Bool(b) => NodeValue::Bool(b),
        Raw::Int(i) => NodeValue::Int(i),
        Raw::Float(f) => NodeValue::Float(f),
        Raw::Str(s) => NodeValue::Str(s),
        Raw::Seq(items) => NodeValue::Seq(items.into_iter().map(convert).collect()),
        Raw::Map(entries) => NodeValue::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Key { span: loc_span(&k.referenced), name: k.value }, convert(v)))
                .collect(),
        ),
    };
    Node { value, span }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(i64::try_from(v).map(Raw::Int).unwrap_or(Raw::Float(v as f64)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
        Ok(i64::try_from(v).map(Raw::Int).unwrap_or(Raw::Float(v as f64)))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Raw, E> {
        Ok(i64::try_from(v).map(Raw::Int).unwrap_or(Raw::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Raw::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_spans_and_raw_text() {
        let f = SourceFile::new("t.yaml", "a: 1\nb: [ON, 'x']\nc: |\n  x and\n  y\n");
        let n = parse_yaml(&f).unwrap();
        let NodeValue::Map(m) = &n.value else { panic!() };
        assert_eq!(m[0].0.name, "a");
        assert_eq!(m[0].1.value, NodeValue::Int(1));
        let NodeValue::Seq(items) = &m[1].1.value else { panic!() };
        assert_eq!(items[0].scalar_text(&f).as_deref(), Some("ON"));
        assert_eq!(items[1].scalar_text(&f).as_deref(), Some("x"));
        assert!(items[1].is_quoted(&f));
        assert_eq!(m[2].1.value, NodeValue::Str("x and\ny\n".into()));
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let f = SourceFile::new("t.yaml", "a: 1\nb: [1, 2\n");
        let d = parse_yaml(&f).unwrap_err();
        assert_eq!(d.code, codes::YAML_SYNTAX);
        assert!(d.location().is_some());
    }

    #[test]
    fn scanner_errors_point_at_the_offending_character() {
        let f = SourceFile::new("t.yaml", "kind: strategy\nname: s\nuniverse: [GOOG\ntimeframe: 1d\n");
        let d = parse_yaml(&f).unwrap_err();
        let (_, line, col) = d.location().unwrap();
        assert_eq!((line, col), (4, 10), "{}", d.message);
        assert!(!d.message.contains(" at line "), "{}", d.message);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let f = SourceFile::new("t.yaml", "a: 1\na: 2\n");
        let d = parse_yaml(&f).unwrap_err();
        assert!(d.message.contains("duplicate"), "{}", d.message);
        assert_eq!(d.location().unwrap().1, 2);
    }

    #[test]
    fn empty_file_is_null() {
        let f = SourceFile::new("t.yaml", "# only a comment\n\n");
        assert_eq!(parse_yaml(&f).unwrap().value, NodeValue::Null);
    }
}
