//! Expressions in the mapping: `name "{givenName} {sn}"`, `"{mail | lower | trim}"`,
//! `"{coalesce(mail, userPrincipalName)}"`, a role's `when="{title == 'CEO'}"`.
//!
//! A leaf module (it knows no config, no record): the config checks expressions with it at
//! `validate`, so that a template that does not compile, an unknown filter or function, or a
//! wrong argument count is a config error with a span; the mapping renders them per record.
//!
//! The engine is minijinja, sandboxed (no I/O, no loader, no globals but ours), bounded by
//! fuel, and strict: a missing variable is an error, never an empty string. Users write
//! single braces; `translate` is the one place that turns that into the engine's syntax:
//! - text outside braces is literal; `{{` and `}}` are a literal `{` and `}`;
//! - `{EXPR}` is an expression of the engine (filters with `|`, function calls, `==`, `in`,
//!   `and`/`or`/`not`, `~` to join, `A if COND else B`);
//! - a value without any brace is not a template at all: `name "cn"` names the attribute.
//!
//! Variables are source attributes, each standing for its one value as a string (an
//! attribute with several different values rejects the record before the expression runs,
//! like a single-valued field; a blank value counts as missing). The filters and functions
//! are a small, closed set (`FILTERS`, `FUNCTIONS`, `TESTS`); see README "Expressions".

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use minijinja::value::Rest;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};

/// The filters an expression may use (`value | name(args)`), with their argument counts
/// besides the value.
pub const FILTERS: &[&str] = &[
    "lower", "upper", "trim", "truncate", "replace", "split", "first", "default", "date",
];
/// The functions an expression may call.
pub const FUNCTIONS: &[&str] = &["coalesce"];
/// The tests an expression may use (`value is name`).
pub const TESTS: &[&str] = &["defined", "undefined"];

/// How many instructions one evaluation may run: far more than any mapping needs, and a
/// bound on time whatever is written.
const FUEL: u64 = 20_000;

/// Whether a mapping value is an expression rather than an attribute name.
pub fn is_template(text: &str) -> bool {
    text.contains(['{', '}'])
}

/// Why an expression is refused at `validate`, and which bytes of the value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub at: usize,
    pub len: usize,
    pub why: String,
}

/// Why an expression gave no value for a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// Attributes it needed that the record lacks (as written in the expression).
    Missing(Vec<String>),
    /// Anything else: a filter refused its input, fuel ran out.
    Failed(String),
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::Missing(names) if names.len() == 1 => {
                write!(f, "attribute `{}` is missing", names[0])
            }
            RenderError::Missing(names) => {
                let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                write!(f, "attributes {} are missing", names.join(", "))
            }
            RenderError::Failed(why) => f.write_str(why),
        }
    }
}

/// A compiled expression: a template (`"{givenName} {sn}"`) or a condition (`when=`).
#[derive(Clone)]
pub struct Template {
    /// As the user wrote it.
    text: String,
    env: Arc<Environment<'static>>,
    /// The attributes it reads, as written, each once, in order of first use.
    variables: Vec<String>,
    condition: bool,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("text", &self.text)
            .field("condition", &self.condition)
            .finish()
    }
}

const NAME: &str = "t";

impl Template {
    /// A template: literal text and `{EXPR}` parts.
    pub fn compile(text: &str) -> Result<Template, CompileError> {
        let translated = translate(text)?;
        Template::build(text, translated, false)
    }

    /// A condition: the whole value is one `{EXPR}` whose result is taken as true or false.
    pub fn compile_condition(text: &str) -> Result<Template, CompileError> {
        let mut translated = translate(text)?;
        if !translated.single_expression {
            return Err(CompileError {
                at: 0,
                len: text.len(),
                why: "a condition is one expression in braces, such as \"{title == 'CEO'}\""
                    .to_string(),
            });
        }
        // `if` on a missing value is an error in strict mode, as printing one is.
        let head = "{% if (";
        translated.source = format!(
            "{head}{}) %}}1{{% else %}}0{{% endif %}}",
            translated.expressions[0]
        );
        let inner = head.len()..head.len() + translated.expressions[0].len();
        translated.parts = vec![(inner, 1..text.len().saturating_sub(1))];
        Template::build(text, translated, true)
    }

    fn build(
        text: &str,
        translated: Translated,
        condition: bool,
    ) -> Result<Template, CompileError> {
        let mut env = environment();
        env.add_template_owned(NAME, translated.source.clone())
            .map_err(|e| translated.error(text, &e))?;
        let variables = {
            let template = env
                .get_template(NAME)
                .map_err(|e| translated.error(text, &e))?;
            ordered(text, template.undeclared_variables(false))
        };
        let t = Template {
            text: text.to_string(),
            env: Arc::new(env),
            variables,
            condition,
        };
        t.check(&translated)?;
        Ok(t)
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The attributes it reads, as written.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// The text for `values` (the attributes the record has, by the names of `variables`).
    pub fn render(&self, values: &[(&str, String)]) -> Result<String, RenderError> {
        self.run(values).map_err(|e| self.explain(&e, values))
    }

    /// A condition's truth for `values`.
    pub fn test(&self, values: &[(&str, String)]) -> Result<bool, RenderError> {
        self.render(values).map(|out| out == "1")
    }

    fn run(&self, values: &[(&str, String)]) -> Result<String, Error> {
        self.env.get_template(NAME)?.render(context(values))
    }

    fn explain(&self, error: &Error, values: &[(&str, String)]) -> RenderError {
        if error.kind() == ErrorKind::UndefinedError {
            let missing: Vec<String> = self
                .variables
                .iter()
                .filter(|v| !values.iter().any(|(n, _)| n == &v.as_str()))
                .cloned()
                .collect();
            // The attributes of the part that failed, when the engine says which part.
            let within: Vec<String> = error
                .template_source()
                .zip(error.range())
                .and_then(|(src, range)| src.get(range))
                .map(|part| {
                    missing
                        .iter()
                        .filter(|m| identifiers(part).any(|id| id == m.as_str()))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if !within.is_empty() {
                return RenderError::Missing(within);
            }
            if !missing.is_empty() {
                return RenderError::Missing(missing);
            }
        }
        let why = match error.detail() {
            Some(detail) => format!("{}: {detail}", kind_words(error.kind())),
            None => kind_words(error.kind()).to_string(),
        };
        RenderError::Failed(format!("expression {:?} failed: {why}", self.text))
    }

    /// The checks `validate` can make without a record: names of filters, functions and
    /// tests in every branch, then one evaluation with every attribute set to a sample value
    /// for argument counts.
    fn check(&self, translated: &Translated) -> Result<(), CompileError> {
        for (expr, at) in translated.expressions.iter().zip(&translated.offsets) {
            for (kind, name, range) in calls(expr) {
                let (known, what): (&[&str], &str) = match kind {
                    Call::Filter => (FILTERS, "filter"),
                    Call::Function => (FUNCTIONS, "function"),
                    Call::Test => (TESTS, "test"),
                };
                if !known.contains(&name) {
                    return Err(CompileError {
                        at: at + range.start,
                        len: range.len(),
                        why: format!(
                            "unknown {what} `{name}` (the {what}s are {})",
                            known.join(", ")
                        ),
                    });
                }
            }
        }
        let sample: Vec<(&str, String)> = self
            .variables
            .iter()
            .map(|v| (v.as_str(), "x".to_string()))
            .collect();
        match self.run(&sample) {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::TooManyArguments
                        | ErrorKind::MissingArgument
                        | ErrorKind::UnknownFilter
                        | ErrorKind::UnknownFunction
                        | ErrorKind::UnknownTest
                        | ErrorKind::UnknownMethod
                        | ErrorKind::SyntaxError
                ) || e
                    .detail()
                    .is_some_and(|d| d.starts_with("invalid regular expression")) =>
            {
                Err(translated.error(&self.text, &e))
            }
            _ => Ok(()),
        }
    }
}

fn kind_words(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::UndefinedError => "a value is missing",
        ErrorKind::OutOfFuel => "it ran too long",
        ErrorKind::InvalidOperation => "invalid operation",
        ErrorKind::TooManyArguments => "too many arguments",
        ErrorKind::MissingArgument => "missing argument",
        _ => "error",
    }
}

/// The variables in the order the user wrote them.
fn ordered(text: &str, names: std::collections::HashSet<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in identifiers(text) {
        if names.contains(id) && !FUNCTIONS.contains(&id) && !out.iter().any(|o| o == id) {
            out.push(id.to_string());
        }
    }
    let mut rest: Vec<String> = names
        .into_iter()
        .filter(|n| !out.contains(n) && !FUNCTIONS.contains(&n.as_str()))
        .collect();
    rest.sort();
    out.extend(rest);
    out
}

/// The identifiers of a piece of expression text (string literals included: used only to
/// find names the engine already reported).
fn identifiers(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|s| !s.is_empty())
}

fn context(values: &[(&str, String)]) -> Value {
    let map: std::collections::BTreeMap<String, Value> = values
        .iter()
        .map(|(name, value)| (name.to_string(), Value::from(value.as_str())))
        .collect();
    Value::from_object(map)
}

/// The sandbox: strict, fueled, our filters only, no auto-escaping, no loader.
fn environment() -> Environment<'static> {
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    // Errors carry the part of the expression that failed (used to name what is missing).
    env.set_debug(true);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.add_filter("lower", |v: Value| text(&v).map(|s| s.to_lowercase()));
    env.add_filter("upper", |v: Value| text(&v).map(|s| s.to_uppercase()));
    env.add_filter("trim", |v: Value| text(&v).map(|s| s.trim().to_string()));
    env.add_filter("truncate", |v: Value, n: usize| {
        text(&v).map(|s| s.chars().take(n).collect::<String>())
    });
    let cache: Arc<Mutex<HashMap<String, Arc<regex::Regex>>>> = Arc::default();
    env.add_filter(
        "replace",
        move |v: Value, pattern: &str, with: &str| -> Result<String, Error> {
            let s = text(&v)?;
            let re = regex_of(&cache, pattern)?;
            Ok(re.replace_all(&s, with).into_owned())
        },
    );
    env.add_filter("split", |v: Value, sep: Option<&str>| {
        text(&v).map(|s| {
            let parts: Vec<Value> = match sep {
                Some(sep) if !sep.is_empty() => s.split(sep).map(Value::from).collect(),
                _ => s.split_whitespace().map(Value::from).collect(),
            };
            Value::from(parts)
        })
    });
    env.add_filter("first", |v: Value| -> Result<Value, Error> {
        if let Some(s) = v.as_str() {
            return Ok(s
                .chars()
                .next()
                .map(Value::from)
                .unwrap_or_else(|| Value::from("")));
        }
        if v.is_undefined() {
            return Err(undefined());
        }
        let mut items = v.try_iter()?;
        Ok(items.next().unwrap_or_else(|| Value::from("")))
    });
    env.add_filter(
        "default",
        |v: Value, fallback: Value| {
            if blank(&v) { fallback } else { v }
        },
    );
    env.add_filter("date", |v: Value, format: Option<&str>| {
        let s = text(&v)?;
        ad_date(&s, format.unwrap_or("%Y-%m-%d"))
    });
    env.add_function("coalesce", |values: Rest<Value>| -> Result<Value, Error> {
        values
            .0
            .into_iter()
            .find(|v| !blank(v))
            .ok_or_else(undefined)
    });
    env.add_test("defined", |v: Value| !v.is_undefined());
    env.add_test("undefined", |v: Value| v.is_undefined());
    env
}

fn undefined() -> Error {
    Error::new(ErrorKind::UndefinedError, "a value is missing")
}

fn blank(v: &Value) -> bool {
    v.is_undefined() || v.is_none() || v.as_str().is_some_and(|s| s.trim().is_empty())
}

/// A value as text: strings and numbers; a missing value is an error.
fn text(v: &Value) -> Result<String, Error> {
    if v.is_undefined() {
        return Err(undefined());
    }
    if let Some(s) = v.as_str() {
        return Ok(s.to_string());
    }
    match v.kind() {
        minijinja::value::ValueKind::Number | minijinja::value::ValueKind::Bool => {
            Ok(v.to_string())
        }
        kind => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("expected text, got {kind}"),
        )),
    }
}

fn regex_of(
    cache: &Mutex<HashMap<String, Arc<regex::Regex>>>,
    pattern: &str,
) -> Result<Arc<regex::Regex>, Error> {
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(re) = cache.get(pattern) {
        return Ok(re.clone());
    }
    let re = regex::Regex::new(pattern).map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("invalid regular expression {pattern:?}: {e}"),
        )
    })?;
    let re = Arc::new(re);
    if cache.len() < 64 {
        cache.insert(pattern.to_string(), re.clone());
    }
    Ok(re)
}

/// An Active Directory timestamp as a date: a FILETIME (`accountExpires`, `pwdLastSet`:
/// 100-nanosecond intervals since 1601, all digits; 0 and 9223372036854775807 mean never,
/// which gives an empty value) or a generalized time (`whenCreated`: `20240101120000.0Z`,
/// an offset such as `+0100` instead of `Z`).
pub fn ad_date(value: &str, format: &str) -> Result<String, Error> {
    let value = value.trim();
    let bad = || {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("{value:?} is neither a FILETIME nor a generalized time"),
        )
    };
    let when =
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) && value.len() != 14 {
            let ticks: i64 = value.parse().map_err(|_| bad())?;
            if ticks == 0 || ticks == i64::MAX {
                return Ok(String::new());
            }
            // 1601-01-01 to 1970-01-01 is 11644473600 seconds.
            let secs = ticks / 10_000_000 - 11_644_473_600;
            let nanos = u32::try_from((ticks % 10_000_000) * 100).map_err(|_| bad())?;
            chrono::DateTime::from_timestamp(secs, nanos).ok_or_else(bad)?
        } else {
            generalized_time(value).ok_or_else(bad)?
        };
    let mut out = String::new();
    use std::fmt::Write as _;
    write!(out, "{}", when.format(format)).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("{format:?} is not a date format"),
        )
    })?;
    Ok(out)
}

/// `YYYYMMDDHHMMSS[.fraction](Z|±HHMM)` (or without seconds' fraction and zone: UTC).
fn generalized_time(value: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let digits = value.get(..14)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let naive = chrono::NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S").ok()?;
    let mut rest = &value[14..];
    if let Some(fraction) = rest.strip_prefix(['.', ',']) {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        rest = &fraction[end..];
    }
    let offset_secs = match rest {
        "" | "Z" => 0,
        zone => {
            let sign = match zone.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hhmm = zone.get(1..5)?;
            if zone.len() != 5 || !hhmm.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let h: i32 = hhmm[..2].parse().ok()?;
            let m: i32 = hhmm[2..].parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    let utc = naive - chrono::Duration::seconds(i64::from(offset_secs));
    Some(utc.and_utc())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Filter,
    Function,
    Test,
}

/// The filter, function and test names an expression uses, with their byte ranges in it
/// (string literals skipped; a name after `.` is an attribute, not a call).
fn calls(expr: &str) -> Vec<(Call, &str, Range<usize>)> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // The previous significant token: `|`, `.`, `is`, `not` (after `is`), or other.
    let mut after_pipe = false;
    let mut after_dot = false;
    let mut after_is = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\'' || c == b'"' {
            i = skip_string(bytes, i);
            after_pipe = false;
            after_dot = false;
            after_is = false;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let name = &expr[start..i];
            let mut j = i;
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            let called = bytes.get(j) == Some(&b'(');
            if after_pipe {
                out.push((Call::Filter, name, start..i));
            } else if after_is && name != "not" {
                out.push((Call::Test, name, start..i));
            } else if called && !after_dot && !KEYWORDS.contains(&name) {
                out.push((Call::Function, name, start..i));
            }
            after_is = name == "is" || (after_is && name == "not");
            after_pipe = false;
            after_dot = false;
            continue;
        }
        if !c.is_ascii_whitespace() {
            after_pipe = c == b'|';
            after_dot = c == b'.';
            after_is = false;
        }
        i += 1;
    }
    out
}

/// Words of the expression language that may stand before `(`.
const KEYWORDS: &[&str] = &[
    "and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None",
];

/// The index after the string literal that starts at `start`.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// A user's template in the engine's syntax, with where each part came from.
#[derive(Debug)]
struct Translated {
    source: String,
    /// Each `{EXPR}`'s inner text, and its byte offset in the user's text.
    expressions: Vec<String>,
    offsets: Vec<usize>,
    /// Engine source ranges → the user's ranges, one per part.
    parts: Vec<(Range<usize>, Range<usize>)>,
    /// The whole value is one `{EXPR}`.
    single_expression: bool,
}

impl Translated {
    /// An engine error as a `CompileError` on the user's text: the part it is in (or the
    /// whole value).
    fn error(&self, user: &str, e: &Error) -> CompileError {
        let why = match e.detail() {
            Some(d) => format!("{}: {d}", kind_words_compile(e.kind())),
            None => kind_words_compile(e.kind()).to_string(),
        };
        let at = e.range().and_then(|r| {
            self.parts
                .iter()
                .find(|(engine, _)| {
                    engine.start <= r.start && r.start < engine.end.max(engine.start + 1)
                })
                .map(|(_, original)| original.clone())
        });
        let (at, len) = match at {
            Some(r) => (r.start, r.len()),
            None => (0, user.len()),
        };
        CompileError { at, len, why }
    }
}

fn kind_words_compile(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::SyntaxError => "syntax error",
        ErrorKind::TooManyArguments => "too many arguments",
        ErrorKind::MissingArgument => "missing argument",
        ErrorKind::UnknownFilter => "unknown filter",
        ErrorKind::UnknownFunction => "unknown function",
        ErrorKind::UnknownTest => "unknown test",
        ErrorKind::UnknownMethod => "unknown method (methods are not supported; use filters)",
        ErrorKind::InvalidOperation => "invalid",
        _ => "error",
    }
}

/// Single braces → the engine's (see the module doc).
fn translate(user: &str) -> Result<Translated, CompileError> {
    let bytes = user.as_bytes();
    let mut t = Translated {
        source: String::with_capacity(user.len() * 2),
        expressions: Vec::new(),
        offsets: Vec::new(),
        parts: Vec::new(),
        single_expression: false,
    };
    let mut literal = String::new();
    let mut literal_start = 0;
    let flush = |t: &mut Translated, literal: &mut String, from: usize, to: usize| {
        if literal.is_empty() {
            return;
        }
        let start = t.source.len();
        if literal.contains(['{', '}', '#', '%']) {
            t.source.push_str("{{ '");
            for c in literal.chars() {
                match c {
                    '\\' => t.source.push_str("\\\\"),
                    '\'' => t.source.push_str("\\'"),
                    c => t.source.push(c),
                }
            }
            t.source.push_str("' }}");
        } else {
            t.source.push_str(literal);
        }
        t.parts.push((start..t.source.len(), from..to));
        literal.clear();
    };
    let mut i = 0;
    let mut expression_parts = 0;
    let mut literal_parts = false;
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => {
                literal.push('{');
                i += 2;
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                literal.push('}');
                i += 2;
            }
            b'}' => {
                return Err(CompileError {
                    at: i,
                    len: 1,
                    why: "`}` without `{` (write `}}` for a literal brace)".to_string(),
                });
            }
            b'{' => {
                if !literal.is_empty() {
                    literal_parts = true;
                }
                flush(&mut t, &mut literal, literal_start, i);
                let open = i;
                let mut depth = 0usize;
                let mut j = i + 1;
                let close = loop {
                    match bytes.get(j) {
                        None => {
                            return Err(CompileError {
                                at: open,
                                len: 1,
                                why: "`{` is not closed (write `{{` for a literal brace)"
                                    .to_string(),
                            });
                        }
                        Some(b'\'' | b'"') => j = skip_string(bytes, j),
                        Some(b'{') => {
                            depth += 1;
                            j += 1;
                        }
                        Some(b'}') if depth == 0 => break j,
                        Some(b'}') => {
                            depth -= 1;
                            j += 1;
                        }
                        Some(_) => j += 1,
                    }
                };
                let inner = &user[open + 1..close];
                if inner.trim().is_empty() {
                    return Err(CompileError {
                        at: open,
                        len: close + 1 - open,
                        why: "`{}` holds no expression".to_string(),
                    });
                }
                let start = t.source.len();
                t.source.push_str("{{ ");
                t.source.push_str(inner);
                t.source.push_str(" }}");
                t.parts.push((start..t.source.len(), open..close + 1));
                t.expressions.push(inner.to_string());
                t.offsets.push(open + 1);
                expression_parts += 1;
                i = close + 1;
                literal_start = i;
            }
            _ => {
                let c = user[i..].chars().next().unwrap_or('\u{fffd}');
                literal.push(c);
                i += c.len_utf8();
            }
        }
    }
    if !literal.is_empty() {
        literal_parts = true;
    }
    flush(&mut t, &mut literal, literal_start, user.len());
    t.single_expression = expression_parts == 1 && !literal_parts;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attribute values of a test case.
    type Pairs<'a> = &'a [(&'a str, &'a str)];

    fn render(template: &str, values: &[(&str, &str)]) -> Result<String, RenderError> {
        let t = Template::compile(template).unwrap_or_else(|e| panic!("{template}: {e:?}"));
        let values: Vec<(&str, String)> = values.iter().map(|(n, v)| (*n, v.to_string())).collect();
        t.render(&values)
    }

    #[test]
    fn templates_render_and_name_what_is_missing() {
        let cases: &[(&str, Pairs, &str)] = &[
            (
                "{givenName} {sn}",
                &[("givenName", "Ada"), ("sn", "Lovelace")],
                "Ada Lovelace",
            ),
            ("{mail | lower | trim}", &[("mail", " A@X.COM ")], "a@x.com"),
            (
                "{coalesce(mail, userPrincipalName)}",
                &[("userPrincipalName", "u@x")],
                "u@x",
            ),
            (
                "{coalesce(mail, userPrincipalName)}",
                &[("mail", "m@x"), ("userPrincipalName", "u@x")],
                "m@x",
            ),
            ("{sn | truncate(3)}", &[("sn", "Lovelace")], "Lov"),
            ("{sn | upper}", &[("sn", "Äb")], "ÄB"),
            (
                "{mail | split('@') | first}",
                &[("mail", "ada@x.org")],
                "ada",
            ),
            (
                "{givenName | first}{sn}",
                &[("givenName", "Ada"), ("sn", "L")],
                "AL",
            ),
            (
                "{phone | replace('[^0-9+]', '')}",
                &[("phone", "+1 (555) 01-02")],
                "+15550102",
            ),
            ("{title | default('Staff')}", &[], "Staff"),
            ("{title | default('Staff')}", &[("title", "Lead")], "Lead"),
            (
                "{'Contractor' if employeeType == 'C' else 'Staff'}",
                &[("employeeType", "C")],
                "Contractor",
            ),
            (
                "{'Contractor' if employeeType == 'C' else 'Staff'}",
                &[("employeeType", "E")],
                "Staff",
            ),
            (
                "{accountExpires | date}",
                &[("accountExpires", "133485408000000000")],
                "2024-01-01",
            ),
            (
                "{accountExpires | date}",
                &[("accountExpires", "9223372036854775807")],
                "",
            ),
            (
                "{whenCreated | date('%d.%m.%Y %H:%M')}",
                &[("whenCreated", "20240101120000.0Z")],
                "01.01.2024 12:00",
            ),
            (
                "{whenCreated | date('%H:%M')}",
                &[("whenCreated", "20240101120000+0100")],
                "11:00",
            ),
            (
                "literal {{braces}} {sn}",
                &[("sn", "x")],
                "literal {braces} x",
            ),
            ("it's {sn}\n", &[("sn", "x")], "it's x\n"),
            (
                "100% {{# not a comment #}}",
                &[],
                "100% {# not a comment #}",
            ),
            (
                "{givenName ~ '.' ~ sn | lower}",
                &[("givenName", "Ada"), ("sn", "LOVE")],
                "Ada.love",
            ),
        ];
        for (template, values, want) in cases {
            assert_eq!(render(template, values).as_deref(), Ok(*want), "{template}");
        }
        let missing: &[(&str, Pairs, &[&str])] = &[
            ("{givenName} {sn}", &[("sn", "Case")], &["givenName"]),
            ("{givenName} {sn}", &[], &["givenName"]),
            ("{title | default('x')} {sn}", &[], &["sn"]),
            ("{mail | lower}", &[], &["mail"]),
            (
                "{coalesce(mail, userPrincipalName)}",
                &[],
                &["mail", "userPrincipalName"],
            ),
            ("{sn | truncate(2)}", &[], &["sn"]),
            ("{'a' if x == 'y' else 'b'}", &[], &["x"]),
        ];
        for (template, values, want) in missing {
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                render(template, values),
                Err(RenderError::Missing(want)),
                "{template}"
            );
        }
        assert_eq!(
            RenderError::Missing(vec!["givenName".into()]).to_string(),
            "attribute `givenName` is missing"
        );
        let failed = render("{accountExpires | date}", &[("accountExpires", "soon")]).unwrap_err();
        assert!(
            failed
                .to_string()
                .contains("\"soon\" is neither a FILETIME nor a generalized time"),
            "{failed}"
        );
    }

    #[test]
    fn variables_are_the_attributes_read_in_order() {
        let t = Template::compile("{coalesce(mail, upn) | lower} {sn | default(cn)}").expect("ok");
        assert_eq!(t.variables(), ["mail", "upn", "sn", "cn"]);
        let c = Template::compile_condition("{title is defined and 'CEO' in title}").expect("ok");
        assert_eq!(c.variables(), ["title"]);
    }

    #[test]
    fn conditions_are_true_or_false() {
        let c =
            Template::compile_condition("{title == 'CEO' or dept in ['IT', 'Ops']}").expect("ok");
        let v = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
            pairs.iter().map(|(n, v)| (*n, v.to_string())).collect()
        };
        assert_eq!(c.test(&v(&[("title", "CEO"), ("dept", "x")])), Ok(true));
        assert_eq!(c.test(&v(&[("title", "x"), ("dept", "Ops")])), Ok(true));
        assert_eq!(c.test(&v(&[("title", "x"), ("dept", "HR")])), Ok(false));
        assert_eq!(
            c.test(&v(&[("dept", "HR")])),
            Err(RenderError::Missing(vec!["title".into()]))
        );
        let d = Template::compile_condition("{title is defined and title == 'CEO'}").expect("ok");
        assert_eq!(d.test(&[]), Ok(false));
        assert!(Template::compile_condition("x {title}").is_err());
    }

    #[test]
    fn bad_templates_are_refused_with_where() {
        let cases: &[(&str, usize, usize, &str)] = &[
            ("{givenName", 0, 1, "`{` is not closed"),
            ("a}b", 1, 1, "`}` without `{`"),
            ("x {}", 2, 2, "holds no expression"),
            ("{sn | shout}", 6, 5, "unknown filter `shout`"),
            ("{sn} {nope(sn)}", 6, 4, "unknown function `nope`"),
            ("{'a' if sn is odd else 'b'}", 14, 3, "unknown test `odd`"),
            ("{sn} {sn | truncate}", 5, 15, "missing argument"),
            ("{sn | truncate(1, 2)}", 0, 21, "too many arguments"),
            ("{sn} {sn +}", 5, 6, "syntax error"),
            (
                "{sn | replace('(', '')}",
                0,
                23,
                "invalid regular expression",
            ),
        ];
        for (template, at, len, why) in cases {
            let err = Template::compile(template).expect_err(template);
            assert!(err.why.contains(why), "{template}: {err:?}");
            assert_eq!((err.at, err.len), (*at, *len), "{template}: {err:?}");
        }
        // A filter name inside a string literal is text, not a call.
        assert!(Template::compile("{sn ~ '| shout'}").is_ok());
        assert!(Template::compile("{'a' if not (sn == 'x') and (sn or cn) else 'b'}").is_ok());
        assert!(!is_template("cn") && is_template("{cn}"));
    }
}
