//! The effective config as TOML, for `edge check` and start-up logs.
//!
//! "Redacted" by construction: `Config` only ever holds where secrets live (file paths,
//! environment variable names), never their values, so serialising it is safe. A test
//! keeps that true by loading a real secret and looking for it in the output.

use super::schema::Config;

impl Config {
    /// The effective configuration (defaults filled in, paths absolute, certificate
    /// names expanded) as TOML.
    pub fn to_redacted_toml(&self) -> String {
        match toml::to_string(self) {
            Ok(body) => format!(
                "# effective configuration: defaults filled in, secret values never shown\n{body}"
            ),
            // Only reachable for a Config built in code with a non-UTF-8 path; a loaded
            // one came from UTF-8 text.
            Err(e) => format!("# the configuration cannot be shown as TOML: {e}\n"),
        }
    }
}
