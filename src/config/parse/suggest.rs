//! "Did you mean": the one place that guesses what a misspelled name was meant to be.
//!
//! Node names, property names and values are all offered the same way, each written as it
//! would be in the config (`base-dn`, `env=`, `"add-only"`), so the help reads alike wherever
//! a name is unknown.

/// How a name is written in KDL, and so how the guess shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    /// A node name: `base-dn`.
    Node,
    /// A property name: `env=`.
    Property,
    /// A string value: `"add-only"`.
    Value,
}

/// A likely meant name, and the help line that offers it.
#[derive(Debug, PartialEq)]
pub(super) struct Guess<'a> {
    pub(super) name: &'a str,
    /// "did you mean `base-dn`?"
    pub(super) help: String,
}

/// The candidate that `word` was likely meant to be, if one is close enough.
pub(super) fn did_you_mean<'a>(
    word: &str,
    candidates: &[&'a str],
    written: Written,
) -> Option<Guess<'a>> {
    let name = closest(word, candidates)?;
    let shown = match written {
        Written::Node => format!("`{name}`"),
        Written::Property => format!("`{name}=`"),
        Written::Value => format!("\"{name}\""),
    };
    Some(Guess {
        name,
        help: format!("did you mean {shown}?"),
    })
}

/// The candidate closest to `word`, if it is close enough to be a likely misspelling.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (*c, strsim::jaro_winkler(&word, c)))
        .filter(|(_, score)| *score >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::source::LDAP;

    #[test]
    fn misspellings() {
        assert_eq!(closest("base-nd", LDAP.nodes), Some("base-dn"));
        assert_eq!(
            closest("normalise", &["to", "normalize"]),
            Some("normalize")
        );
        assert_eq!(closest("Page-Size", LDAP.nodes), Some("page-size"));
        assert_eq!(closest("colour", LDAP.nodes), None);
    }

    #[test]
    fn guesses_are_written_as_in_kdl() {
        let help = |written| did_you_mean("fiel", &["file", "env"], written).map(|g| g.help);
        assert_eq!(help(Written::Node).as_deref(), Some("did you mean `file`?"));
        assert_eq!(
            help(Written::Property).as_deref(),
            Some("did you mean `file=`?")
        );
        assert_eq!(
            help(Written::Value).as_deref(),
            Some("did you mean \"file\"?")
        );
        assert_eq!(
            did_you_mean("colour", &["file", "env"], Written::Node),
            None
        );
    }
}
