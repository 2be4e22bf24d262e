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

impl SourceCode for SourceFile {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
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

/// Renders a diagnostic for a person: a `file:line:column` header line, then miette's snippet
/// with the offending token underlined and the help line. `color` adds ANSI colours.
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
    if diag.source.is_some() && diag.span.is_some() {
        let mut snippet = String::new();
        if handler.render_report(&mut snippet, diag).is_ok() {
            out.push_str(&snippet);
        }
    } else if let Some(help) = &diag.help {
        out.push_str(&format!("  help: {help}\n"));
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
    fn one_of_lists() {
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
