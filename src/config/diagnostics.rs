//! Config problems as miette diagnostics.
//!
//! A config is reviewed by people in pull requests and fixed by people reading CI logs, so
//! every problem names what is wrong, points at the exact node, property or value that is
//! wrong (in the config file, or in the policy file it reads), and says what to write
//! instead when that can be known. All problems found in one run travel together in
//! `ConfigError::Invalid`, which miette renders as one report.

use std::fmt;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode, SourceSpan};

/// What kind of problem a `ConfigProblem` is; each kind has a stable diagnostic code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The text is not valid KDL.
    Syntax,
    /// A node name that is not valid where it is.
    UnknownNode,
    /// A property (`name=value`) that the node does not take.
    UnknownProperty,
    /// A required node is absent.
    MissingNode,
    /// A node lacks a required argument or property.
    MissingValue,
    /// A node that may appear only once appears again.
    DuplicateNode,
    /// A value of the wrong KDL type (a string where a number belongs, ...).
    WrongType,
    /// A value of the right type that is not allowed (out of range, unknown name, ...).
    InvalidValue,
    /// A secret written in the config instead of named by `env=` or `file=`.
    InlineSecret,
    /// Part of the contract that this version does not implement yet.
    Unsupported,
    /// A file the config refers to (a policy file) cannot be read.
    Unreadable,
    /// Blocks nested deeper than any config needs (and than the KDL parser can take).
    TooDeep,
    /// A line longer than any config needs (and than a report can point into).
    TooLong,
}

impl ProblemKind {
    /// The stable miette code, e.g. `roster::config::unknown_node`.
    pub fn code(self) -> &'static str {
        match self {
            ProblemKind::Syntax => "roster::config::syntax",
            ProblemKind::UnknownNode => "roster::config::unknown_node",
            ProblemKind::UnknownProperty => "roster::config::unknown_property",
            ProblemKind::MissingNode => "roster::config::missing_node",
            ProblemKind::MissingValue => "roster::config::missing_value",
            ProblemKind::DuplicateNode => "roster::config::duplicate_node",
            ProblemKind::WrongType => "roster::config::wrong_type",
            ProblemKind::InvalidValue => "roster::config::invalid_value",
            ProblemKind::InlineSecret => "roster::config::inline_secret",
            ProblemKind::Unsupported => "roster::config::unsupported",
            ProblemKind::Unreadable => "roster::config::unreadable",
            ProblemKind::TooDeep => "roster::config::too_deep",
            ProblemKind::TooLong => "roster::config::too_long",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One problem in the config (or in a policy file it reads), pointing at its span.
///
/// Parsing builds these; later stages can build them too with [`ConfigProblem::at`] when
/// they refuse something a config value asked for, so that the refusal points at the line
/// that set the value:
///
/// ```
/// use roster::config::{ConfigProblem, ProblemKind};
/// use miette::{NamedSource, SourceSpan};
///
/// let source = NamedSource::new("roster.kdl", "page-size 0\n".to_string());
/// let problem = ConfigProblem::at(
///     ProblemKind::InvalidValue,
///     &source,
///     SourceSpan::from((10, 1)),
///     "`page-size` is 0",
/// )
/// .with_label("must be at least 1")
/// .with_help("page-size is a whole number from 1 to 1000");
/// assert_eq!(problem.code(), "roster::config::invalid_value");
/// ```
#[derive(Debug, Clone)]
pub struct ConfigProblem {
    kind: ProblemKind,
    message: String,
    source_code: NamedSource<String>,
    span: SourceSpan,
    label: Option<String>,
    help: Option<String>,
}

impl ConfigProblem {
    /// A problem of `kind` at `span` in `source` (usually `Config::source_text`).
    /// `message` says what is wrong and where, without a trailing period. The span is
    /// labelled "here" unless [`with_label`](Self::with_label) says more.
    pub fn at(
        kind: ProblemKind,
        source: &NamedSource<String>,
        span: SourceSpan,
        message: impl Into<String>,
    ) -> Self {
        ConfigProblem {
            kind,
            message: message.into(),
            source_code: source.clone(),
            span: clamp(span, source.inner().len()),
            label: None,
            help: None,
        }
    }

    /// The short text shown at the span.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// What to do about it, shown under the snippet.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the help only if there is one.
    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    /// The stable diagnostic code, e.g. `roster::config::unknown_node`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn span(&self) -> SourceSpan {
        self.span
    }

    /// The name of the file the span points into.
    pub fn file_name(&self) -> &str {
        self.source_code.name()
    }

    pub fn help_text(&self) -> Option<&str> {
        self.help.as_deref()
    }
}

/// Spans at the very end of a file (kdl reports "unexpected end of input" there) must not
/// reach past it, or the snippet cannot be shown.
fn clamp(span: SourceSpan, len: usize) -> SourceSpan {
    let offset = span.offset().min(len);
    let length = span.len().min(len - offset);
    SourceSpan::from((offset, length))
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigProblem {}

impl Diagnostic for ConfigProblem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.kind.code()))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source_code)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let label = self.label.clone().unwrap_or_else(|| "here".to_string());
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(label),
            self.span,
        ))))
    }
}

/// Where a policy value that decided something was set: "max-removes is 10", with a label
/// on the line of the config or policy file that says so. Not a problem of the config: a
/// note that a refusal or a held action carries (as `#[related]`, or shown after it), built
/// with `Config::policy_value_at`.
#[derive(Debug, Clone)]
pub struct PolicyValueAt {
    message: String,
    source_code: NamedSource<String>,
    span: SourceSpan,
    label: String,
}

impl PolicyValueAt {
    pub fn new(
        source: &NamedSource<String>,
        span: SourceSpan,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        PolicyValueAt {
            message: message.into(),
            source_code: source.clone(),
            span: clamp(span, source.inner().len()),
            label: label.into(),
        }
    }

    pub fn span(&self) -> SourceSpan {
        self.span
    }

    /// The name of the file the span points into.
    pub fn file_name(&self) -> &str {
        self.source_code.name()
    }
}

impl fmt::Display for PolicyValueAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PolicyValueAt {}

impl Diagnostic for PolicyValueAt {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("roster::policy::set_here"))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(miette::Severity::Advice)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source_code)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(self.label.clone()),
            self.span,
        ))))
    }
}

/// Everything wrong with a config, reported at once.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    #[diagnostic(code(roster::config::read))]
    Read { path: String, message: String },
    #[error("{}", summary(problems))]
    #[diagnostic(code(roster::config::invalid))]
    Invalid {
        #[related]
        problems: Vec<ConfigProblem>,
    },
}

impl ConfigError {
    /// The problems found (none for `Read`).
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems } => problems,
        }
    }
}

fn summary(problems: &[ConfigProblem]) -> String {
    match problems.len() {
        1 => "1 problem in the config".to_string(),
        n => format!("{n} problems in the config"),
    }
}
