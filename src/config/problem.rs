//! Operator-facing configuration errors: each names the setting, what is wrong and the fix.

use std::fmt;

/// One thing wrong with the configuration.
///
/// `key` is the dotted path of the setting (`front.limits.max_body_bytes`,
/// `front.certs[1].key`) so the operator can find it in the file without guessing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message} (fix: {fix})")]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
    pub fix: String,
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// Every problem found in one pass, so the operator fixes them all in one edit
/// instead of restarting once per mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Lines(.0))]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl ConfigErrors {
    /// The problems whose key is `key` (exactly), for callers and tests that look for one.
    pub fn for_key<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a ConfigProblem> + 'a {
        self.0.iter().filter(move |p| p.key == key)
    }
}

impl From<ConfigProblem> for ConfigErrors {
    fn from(problem: ConfigProblem) -> Self {
        Self(vec![problem])
    }
}

/// Renders one problem per line; a helper because thiserror's format string
/// cannot loop.
struct Lines<'a>(&'a [ConfigProblem]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lists_every_problem_on_its_own_line() {
        let errors = ConfigErrors(vec![
            ConfigProblem::new("a.b", "is bad", "make it good"),
            ConfigProblem::new("c", "is missing", "add it"),
        ]);
        assert_eq!(
            errors.to_string(),
            "a.b: is bad (fix: make it good)\nc: is missing (fix: add it)"
        );
    }
}
