//! User-facing diagnostics: errors and warnings that point at a file, line and column.
//!
//! A [`Diagnostic`] carries a stable code (see [`codes`]), a lowercase message with user input in
//! backticks, an optional help line and an optional labelled span in a [`SourceFile`]. It
//! implements [`miette::Diagnostic`], so it renders as a source snippet with the offending token
//! underlined ([`render_human`]), and it serialises to a flat JSON object ([`to_json`]).

pub mod codes;
mod source;

use std::fmt;
use std::sync::Arc;

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

pub use source::{SourceFile, Span, Spanned};

/// How bad a diagnostic is. Errors make a document invalid; warnings do not (unless the user
/// asks for warnings to be denied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Something worth fixing that does not stop the document from being used.
    Warning,
    /// The document cannot be used.
    Error,
}

impl Severity {
    /// `"error"` or `"warning"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One problem found in the user's input.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code, e.g. `E3002`; see [`codes`].
    pub code: &'static str,
    /// Lowercase message; user input appears in backticks.
    pub message: String,
    /// Optional advice: "did you mean `sma`?", the expected type, the allowed values.
    pub help: Option<String>,
    /// The file the problem is in, when there is one.
    pub source: Option<Arc<SourceFile>>,
    /// The offending bytes in `source`.
    pub span: Option<Span>,
    /// Short text shown under the underlined span.
    pub label: Option<String>,
}

impl Diagnostic {
    /// A new error with a code and a message, not yet attached to a file.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            help: None,
            source: None,
            span: None,
            label: None,
        }
    }

    /// A new warning with a code and a message.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message) }
    }

    /// Attaches the file and byte span the diagnostic points at.
    pub fn at(mut self, source: &Arc<SourceFile>, span: Span) -> Self {
        self.source = Some(source.clone());
        self.span = Some(span);
        self
    }

    /// Sets the label printed under the underlined span.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the help line when `help` is `Some`.
    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `(file name, line, column)` of the start of the span, 1-based, when known.
    pub fn location(&self) -> Option<(String, usize, usize)> {
        let src = self.source.as_ref()?;
        let span = self.span?;
        let (line, col) = src.line_col(span.start);
        Some((src.name.clone(), line, col))
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    /// The code is printed in our own header line ([`render_human`]), so miette does not repeat
    /// it; it stays available as [`Diagnostic::code`] and in the JSON form.
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        None
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_deref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = self.span?;
        self.source.as_ref()?;
        let label = miette::LabeledSpan::new_with_span(
            Some(self.label.clone().unwrap_or_else(|| "here".to_string())),
            SourceSpan::new(span.start.into(), span.len()),
        );
        Some(Box::new(std::iter::once(label)))
    }
}

/// Lines longer than this (bytes) are shown as a window around the span, not whole.
const LONG_LINE: usize = 240;
/// Bytes of context either side of the span in a window of a long line.
const WINDOW: usize = 80;
/// Longest underline drawn in a window (bytes).
const MAX_UNDERLINE: usize = 80;

/// Byte range `[a, b)` of the line of `text` holding `offset`, without its line break.
fn line_bounds(text: &str, offset: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    let offset = offset.min(bytes.len());
    let a = bytes[..offset].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let b = bytes[offset..].iter().position(|&b| b == b'\n' || b == b'\r').map_or(bytes.len(), |p| offset + p);
    (a, b)
}

/// The largest char boundary of `text` at or before `i`.
fn floor_char(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest char boundary of `text` at or after `i`.
fn ceil_char(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

impl SourceCode for SourceFile {
    /// miette's snippet of `span`, or, when the span sits on a line longer than `LONG_LINE`
    /// (a minified or one-line document), a window of that line `WINDOW` bytes either side of
    /// the span: miette lays out whole lines, and a line of 100 kB is unreadable (and past
    /// column 65,535 it panics inside miette).
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let start = span.offset().min(self.text.len());
        let (la, lb) = line_bounds(&self.text, start);
        if lb - la > LONG_LINE {
            let end = (start + span.len().min(MAX_UNDERLINE)).min(lb);
            // Without context lines miette asks where the span starts (its header line).
            let before = if context_lines_before == 0 && context_lines_after == 0 { 0 } else { WINDOW };
            let a = floor_char(&self.text, start.saturating_sub(before).max(la));
            let b = ceil_char(&self.text, (end + WINDOW).min(lb));
            let (line, column) = self.line_col(a);
            return Ok(Box::new(MietteSpanContents::new_named(
                self.name.clone(),
                &self.text.as_bytes()[a..b],
                SourceSpan::new(a.into(), b - a),
                line - 1,
                column - 1,
                1,
            )));
        }
        let inner = self.text.read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// The span a diagnostic underlines: its own, cut to [`MAX_UNDERLINE`] bytes on a long line
/// (see [`SourceFile::read_span`]) and kept inside the text and on char boundaries.
fn shown_span(src: &SourceFile, span: Span) -> Span {
    let start = floor_char(&src.text, span.start);
    let (la, lb) = line_bounds(&src.text, start);
    let end = if lb - la > LONG_LINE { (start + span.len().min(MAX_UNDERLINE)).min(lb) } else { span.end };
    Span::new(start, ceil_char(&src.text, end))
}

/// Renders a diagnostic for a person: a `file:line:column` header line, then miette's snippet
/// with the offending token underlined and the help line. `color` adds ANSI colours.
///
/// Never panics: a span on a very long line is shown as a window of that line, and should the
/// snippet renderer still fail, the header and the help line are printed alone.
pub fn render_human(diag: &Diagnostic, color: bool) -> String {
    use miette::{GraphicalReportHandler, GraphicalTheme};
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
    let mut out = String::new();
    match diag.location() {
        Some((file, line, col)) => {
            out.push_str(&format!("{}[{}]: {file}:{line}:{col}: {}\n", diag.severity.as_str(), diag.code, diag.message))
        }
        None => out.push_str(&format!("{}[{}]: {}\n", diag.severity.as_str(), diag.code, diag.message)),
    }
    let help = |out: &mut String| {
        if let Some(help) = &diag.help {
            out.push_str(&format!("  help: {help}\n"));
        }
    };
    match (&diag.source, diag.span) {
        (Some(src), Some(span)) => {
            let shown = Diagnostic { span: Some(shown_span(src, span)), ..diag.clone() };
            let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut snippet = String::new();
                handler.render_report(&mut snippet, &shown).map(|()| snippet)
            }));
            match rendered {
                Ok(Ok(snippet)) => out.push_str(&snippet),
                _ => help(&mut out),
            }
        }
        _ => help(&mut out),
    }
    out
}

/// The JSON form of a diagnostic: `file`, `line`, `column`, `code`, `severity`, `message`, `help`
/// (`file`, `line`, `column` and `help` are `null` when unknown).
pub fn to_json(diag: &Diagnostic) -> serde_json::Value {
    let loc = diag.location();
    serde_json::json!({
        "file": loc.as_ref().map(|l| l.0.clone()),
        "line": loc.as_ref().map(|l| l.1),
        "column": loc.as_ref().map(|l| l.2),
        "code": diag.code,
        "severity": diag.severity.as_str(),
        "message": diag.message,
        "help": diag.help,
    })
}

/// Suggests the candidate closest to `input` (Jaro-Winkler similarity of at least 0.8, or
/// a Damerau-Levenshtein distance of at most 2 for short names), for "did you mean" hints.
pub fn did_you_mean<'a, I>(input: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = input.to_ascii_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for cand in candidates {
        if cand == input {
            continue;
        }
        let c = cand.to_ascii_lowercase();
        let jw = strsim::jaro_winkler(&lower, &c);
        let dl = strsim::damerau_levenshtein(&lower, &c);
        let close = jw >= 0.8 || (dl <= 2 && dl < c.len().max(1)) || c == lower;
        if close {
            let score = jw - dl as f64 * 0.01;
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, cand));
            }
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// Formats a list of names as `` `a`, `b` or `c` `` for messages.
pub fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        assert_eq!(did_you_mean("entyr", ["entry", "exit", "name"]).as_deref(), Some("entry"));
        assert_eq!(did_you_mean("smaa", ["sma", "ema", "rsi"]).as_deref(), Some("sma"));
        assert_eq!(did_you_mean("zzzz", ["sma", "ema"]), None);
    }

    #[test]
    fn human_rendering_has_location_and_help() {
        let src = SourceFile::new("s.yaml", "entry: smaa(close, 10)\n");
        let d = Diagnostic::error(codes::UNKNOWN_FUNCTION, "unknown function `smaa`")
            .at(&src, Span::new(7, 11))
            .label("not a function")
            .help("did you mean `sma`?");
        let text = render_human(&d, false);
        assert!(text.starts_with("error[E3002]: s.yaml:1:8: unknown function `smaa`"), "{text}");
        assert!(text.contains("did you mean `sma`?"), "{text}");
        let j = to_json(&d);
        assert_eq!(j["line"], 1);
        assert_eq!(j["column"], 8);
        assert_eq!(j["code"], "E3002");
    }

    #[test]
    fn a_span_far_along_a_huge_line_is_shown_as_a_window() {
        // A minified one-line document: miette lays out whole lines (and panics past column
        // 65,535), so the snippet is a window of the line around the span.
        let mut text = String::from("{\"kind\": \"strategy\", ");
        while text.len() < 200_000 {
            text.push_str("\"p\": 1, \"é\": 2, ");
        }
        let at = text.len();
        text.push_str("\"entry\": \"smaa(close, 10)\"}");
        let src = SourceFile::new("one.yaml", text.clone());
        for (start, len) in [(at + 10, 4), (at, 100_000), (0, text.len()), (text.len(), 0), (at - 1, 3), (at + 1, 0)] {
            let d = Diagnostic::error(codes::UNKNOWN_FUNCTION, "unknown function `smaa`")
                .at(&src, Span::new(start.min(text.len()), (start + len).min(text.len())))
                .help("did you mean `sma`?");
            let out = render_human(&d, false);
            let (_, line, col) = d.location().unwrap();
            assert!(out.starts_with(&format!("error[E3002]: one.yaml:{line}:{col}: ")), "{out}");
            assert!(out.contains("did you mean `sma`?"), "{out}");
            assert!(out.len() < 2_000, "a window, not the whole line: {} bytes", out.len());
        }
        let d =
            Diagnostic::error(codes::UNKNOWN_FUNCTION, "unknown function `smaa`").at(&src, Span::new(at + 10, at + 14));
        assert!(render_human(&d, false).contains("smaa(close"), "the window shows the span's text");
    }

    #[test]
    fn one_of_lists() {
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
