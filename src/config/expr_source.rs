//! Rule expressions read from YAML scalars, with a map back to file positions.
//!
//! A rule such as `entry: crosses_above(sma(close, fast), sma(close, slow))` is a YAML scalar.
//! The compiler works on the scalar's *value*; diagnostics must point at the *file*. For plain
//! scalars the two coincide, but quoted scalars (escapes, quotes) and block scalars (`|`, `>`,
//! indentation) shift characters. [`ExprSource`] aligns the value with the raw text once, so any
//! byte offset inside the expression maps to its byte offset in the file.

use std::sync::Arc;

use crate::diagnostics::{SourceFile, Span};

/// The text of one rule expression and where each of its bytes sits in its file.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprSource {
    /// The file the expression was read from.
    pub file: Arc<SourceFile>,
    /// The expression text (the YAML scalar's value).
    pub text: String,
    /// Span of the whole scalar in the file.
    pub span: Span,
    /// `offsets[i]` is the file byte offset of expression byte `i`; one extra entry for the end.
    offsets: Vec<usize>,
}

impl ExprSource {
    /// Aligns `text` (a scalar's value) with the raw scalar at `span` in `file`.
    pub fn new(file: &Arc<SourceFile>, text: impl Into<String>, span: Span) -> Self {
        let text = text.into();
        let raw = file.text.get(span.start..span.end).unwrap_or("");
        let offsets = align(&text, raw, span.start);
        ExprSource { file: file.clone(), text, span, offsets }
    }

    /// An expression that is not inside a file (e.g. given on the command line): the "file" is
    /// the expression itself, named `name`.
    pub fn standalone(name: &str, text: &str) -> Self {
        let file = SourceFile::new(name, text);
        ExprSource::new(&file, text, Span::new(0, text.len()))
    }

    /// Maps a span inside the expression text to a span in the file.
    pub fn to_file_span(&self, span: Span) -> Span {
        let last = self.offsets.len() - 1;
        let start = self.offsets[span.start.min(last)];
        let end = if span.end > span.start {
            // End of the last byte covered, so a token split by an escape still ends right.
            self.offsets[(span.end - 1).min(last)] + 1
        } else {
            start
        };
        Span::new(start, end.max(start))
    }
}

/// Greedy alignment of a scalar's value with its raw text: each value byte is matched with the
/// next raw byte equal to it (any whitespace matches any whitespace, for folded lines); raw bytes
/// that match nothing (quotes, backslashes, indentation) are skipped.
fn align(value: &str, raw: &str, base: usize) -> Vec<usize> {
    let v = value.as_bytes();
    let r = raw.as_bytes();
    let mut out = Vec::with_capacity(v.len() + 1);
    let mut j = 0;
    for &b in v {
        let mut k = j;
        while k < r.len() && !(r[k] == b || (b.is_ascii_whitespace() && r[k].is_ascii_whitespace())) {
            k += 1;
        }
        if k < r.len() {
            out.push(base + k);
            j = k + 1;
        } else {
            out.push(base + j.min(r.len()));
        }
    }
    out.push(base + j.min(r.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, value: &str, needle: &str) {
        let f = SourceFile::new("t", src);
        let start = src.find(['"', '|', 'x']).unwrap();
        let e = ExprSource::new(&f, value, Span::new(start, src.len()));
        let at = value.find(needle).unwrap();
        let s = e.to_file_span(Span::new(at, at + needle.len()));
        assert_eq!(&src[s.start..s.end], needle, "in {src:?}");
    }

    #[test]
    fn maps_plain_quoted_and_block_scalars() {
        check("x and smaa(y)", "x and smaa(y)", "smaa");
        check("\"x \\\" smaa(y)\"", "x \" smaa(y)", "smaa");
        check("|\n  x and\n  smaa(y)\n", "x and\nsmaa(y)\n", "smaa");
        check("x and\n  smaa(y)", "x and smaa(y)", "smaa");
    }
}
