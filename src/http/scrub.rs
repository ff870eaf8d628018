//! Keeping secrets out of what servers say back.
//!
//! A server's error text is the one place a secret can re-enter roster from outside: a
//! misconfigured gateway that echoes the request, an OAuth endpoint that quotes the form it
//! was sent, a proxy that prints the `Proxy-Authorization` it refused. A `Scrubber` knows every
//! secret its client sends, in every form it goes on the wire, and replaces each with
//! `<redacted>` before the text becomes part of an error or a log line.
//!
//! **Which forms.** For every secret: the value itself, its `application/x-www-form-urlencoded`
//! form (OAuth client secrets and passwords in token grants; space as `+`), its percent-encoded
//! form (space as `%20`, as in a URL's user info), and its JSON-escaped form (with `/` as `\/`
//! too, as some encoders write it). For basic auth, also `base64(user:password)` (which covers
//! `Basic <base64>`), padded and unpadded. A bearer token is its raw value.
//!
//! **Short secrets.** A secret shorter than `MIN_ANYWHERE_LEN` characters is replaced only where
//! it stands as a whole token (not touching a letter or digit on either side). Replacing a
//! 1–3 character secret everywhere would shred messages (a password `a` would turn every `a`
//! into `<redacted>`) and, worse, tell a reader which letters the secret has. Where it stands
//! alone, as an echo would put it, it is still scrubbed; inside a word it reveals nothing.
//! Longer secrets are replaced wherever they occur, glued to other text or not.

use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::secret::Secret;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Secrets at least this long (in characters) are scrubbed wherever they occur; shorter ones
/// only as whole tokens (see the module doc).
pub const MIN_ANYWHERE_LEN: usize = 8;

/// RFC 3986 unreserved characters stay; everything else is percent-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What `application/x-www-form-urlencoded` leaves as it is (the URL Standard's set; space
/// is handled apart, as `+`).
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b' ');

/// The secrets a client sends, in every form it sends them. Shared by a client's threads;
/// secrets learned later (an OAuth token issued during a run) are added with `learn`.
#[derive(Default)]
pub struct Scrubber {
    known: RwLock<Known>,
}

#[derive(Default)]
struct Known {
    /// Longest first, so that a form containing another is replaced whole.
    forms: Vec<String>,
    /// What was learned, as it was given: every request learns its credentials again, and
    /// one learned already is then a look-up, its forms not made again.
    learned: Vec<Learned>,
}

#[derive(PartialEq, Eq)]
enum Learned {
    Secret(String),
    Basic { user: String, password: String },
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrubber(<redacted>)")
    }
}

impl Scrubber {
    pub fn new() -> Scrubber {
        Scrubber::default()
    }

    /// Adds a secret in each of its encoded forms.
    pub fn learn(&self, secret: &Secret) {
        let value = secret.expose();
        let learned = |l: &Learned| matches!(l, Learned::Secret(s) if s == value);
        if self.read().learned.iter().any(learned) {
            return;
        }
        self.add(Learned::Secret(value.to_string()), encoded_forms(value));
    }

    /// Adds what basic auth puts on the wire for `user` and `password`: `base64(user:password)`,
    /// padded and unpadded. Whichever of the two is secret (the password, or an API key as the
    /// user name) is learned on its own with `learn`; the other may be public (Freshservice's
    /// `X`), and scrubbing it would only mangle messages.
    pub fn learn_basic(&self, user: &str, password: &str) {
        let learned = |l: &Learned| match l {
            Learned::Basic {
                user: u,
                password: p,
            } => u == user && p == password,
            Learned::Secret(_) => false,
        };
        if self.read().learned.iter().any(learned) {
            return;
        }
        let pair = format!("{user}:{password}");
        let mut forms = Vec::new();
        for encoded in [STANDARD.encode(&pair), STANDARD_NO_PAD.encode(&pair)] {
            forms.extend(encoded_forms(&encoded));
        }
        let learned = Learned::Basic {
            user: user.to_string(),
            password: password.to_string(),
        };
        self.add(learned, forms);
    }

    fn add(&self, learned: Learned, new: Vec<String>) {
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        for form in new {
            if !form.is_empty() && !known.forms.contains(&form) {
                known.forms.push(form);
            }
        }
        known
            .forms
            .sort_by_key(|f| std::cmp::Reverse(f.chars().count()));
        if !known.learned.contains(&learned) {
            known.learned.push(learned);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        // Nothing panics while the lock is held; a poisoned list is still a valid list.
        self.known.read().unwrap_or_else(|p| p.into_inner())
    }

    /// `text` with every known form of every secret replaced by `<redacted>`.
    pub fn scrub(&self, text: &str) -> String {
        self.read()
            .forms
            .iter()
            .fold(text.to_string(), |text, form| replace_form(&text, form))
    }
}

/// The forms in which `value` may travel: raw, form-encoded, percent-encoded, JSON-escaped.
fn encoded_forms(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_string()];
    forms.push(
        utf8_percent_encode(value, FORM)
            .to_string()
            .replace(' ', "+"),
    );
    forms.push(utf8_percent_encode(value, UNRESERVED).to_string());
    let json = serde_json::Value::String(value.to_string()).to_string();
    let json = json[1..json.len() - 1].to_string();
    forms.push(json.replace('/', "\\/"));
    forms.push(json);
    forms.dedup();
    forms
}

fn replace_form(text: &str, form: &str) -> String {
    if form.is_empty() {
        return text.to_string();
    }
    if form.chars().count() >= MIN_ANYWHERE_LEN {
        return text.replace(form, REDACTED);
    }
    // Whole tokens only: not glued to a letter or digit on either side.
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    while let Some(at) = rest.find(form) {
        let prev = rest[..at].chars().next_back().or(before);
        let next = rest[at + form.len()..].chars().next();
        let alone =
            !prev.is_some_and(char::is_alphanumeric) && !next.is_some_and(char::is_alphanumeric);
        out.push_str(&rest[..at]);
        if alone {
            out.push_str(REDACTED);
        } else {
            out.push_str(form);
        }
        before = form.chars().next_back();
        rest = &rest[at + form.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber(secrets: &[&str]) -> Scrubber {
        let scrubber = Scrubber::new();
        for s in secrets {
            scrubber.learn(&Secret::new(s.to_string()));
        }
        scrubber
    }

    #[test]
    fn every_encoded_form_of_a_secret_is_scrubbed() {
        let secret = "p@ss w/rd+\"q\"&x";
        let s = scrubber(&[secret]);
        let forms = [
            secret.to_string(),
            "p%40ss+w%2Frd%2B%22q%22%26x".to_string(),
            "p%40ss%20w%2Frd%2B%22q%22%26x".to_string(),
            r#"p@ss w/rd+\"q\"&x"#.to_string(),
            r#"p@ss w\/rd+\"q\"&x"#.to_string(),
        ];
        for form in forms {
            let text = format!("rejected [{form}] for sync");
            assert_eq!(s.scrub(&text), "rejected [<redacted>] for sync", "{form}");
        }
    }

    #[test]
    fn basic_auth_is_scrubbed_as_base64_with_and_without_padding() {
        let s = scrubber(&["hunter2-lon"]);
        s.learn_basic("roster.sync", "hunter2-lon");
        let b64 = STANDARD.encode("roster.sync:hunter2-lon");
        assert!(b64.ends_with('='), "the test wants a padded form: {b64}");
        let echoed = format!("Authorization: Basic {b64}");
        assert_eq!(s.scrub(&echoed), "Authorization: Basic <redacted>");
        assert_eq!(s.scrub(b64.trim_end_matches('=')), "<redacted>");
        assert_eq!(s.scrub("password=hunter2-lon"), "password=<redacted>");
        let form_encoded = b64
            .replace('=', "%3D")
            .replace('+', "%2B")
            .replace('/', "%2F");
        assert_eq!(s.scrub(&form_encoded), "<redacted>");
        // The user name alone is not a secret.
        assert_eq!(s.scrub("user roster.sync"), "user roster.sync");
    }

    #[test]
    fn a_bearer_token_is_scrubbed_where_it_stands() {
        let s = scrubber(&["tok3n-abcdef"]);
        assert_eq!(
            s.scrub("Authorization: Bearer tok3n-abcdef; x=tok3n-abcdefgh"),
            "Authorization: Bearer <redacted>; x=<redacted>gh"
        );
    }

    #[test]
    fn short_secrets_are_scrubbed_only_as_whole_tokens() {
        let s = scrubber(&["a", "ab1", "X"]);
        let message = "Bad gateway: about ab12 and Xavier at a.example";
        assert_eq!(
            s.scrub(message),
            "Bad gateway: about ab12 and Xavier at <redacted>.example"
        );
        assert_eq!(
            s.scrub("password ab1 is wrong"),
            "password <redacted> is wrong"
        );
        assert_eq!(s.scrub("user=X&pw=ab1"), "user=<redacted>&pw=<redacted>");
        assert_eq!(s.scrub("ab1ab1"), "ab1ab1");
        assert_eq!(s.scrub(""), "");
    }

    #[test]
    fn longer_forms_go_first_and_nothing_is_printed() {
        let s = scrubber(&["secret-one", "secret-one-and-more"]);
        assert_eq!(s.scrub("[secret-one-and-more]"), "[<redacted>]");
        assert!(!format!("{s:?}").contains("secret"));
        // Learning again changes nothing.
        s.learn(&Secret::new("secret-one".into()));
        assert_eq!(s.scrub("secret-one"), "<redacted>");
    }

    #[test]
    fn a_secret_that_is_another_secrets_encoded_form_is_learned_in_its_own_forms() {
        let s = Scrubber::new();
        let first = Secret::new("p@ss word!".to_string());
        s.learn(&first);
        s.learn(&first);
        // The first secret's percent-encoded form, as a secret of its own: its forms are
        // not known yet, though its raw value is.
        let second = Secret::new("p%40ss%20word%21".to_string());
        s.learn(&second);
        let text = "a p%2540ss%2520word%2521 b";
        assert_eq!(s.scrub(text), "a <redacted> b");
        // Learning again adds nothing twice.
        let forms = s.read().forms.len();
        s.learn(&first);
        s.learn(&second);
        s.learn_basic("X", "p@ss word!");
        let with_basic = s.read().forms.len();
        s.learn_basic("X", "p@ss word!");
        assert_eq!(s.read().forms.len(), with_basic);
        assert!(with_basic > forms);
    }
}
