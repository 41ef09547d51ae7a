//! From text to a validated `Config`: TOML syntax, shape (every unknown key and bad
//! value), serde, path resolution, then semantic validation, all problems in one list.

use std::fs;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::problem::{ConfigErrors, ConfigProblem};
use super::schema::Config;
use super::secret::io_problem;
use super::shape::{self, ShapeReport};

/// The dev node's config, compiled into the binary so `edge` with no file just runs.
const DEV_TOML: &str = include_str!("../../config/dev.toml");

/// Reads, checks and validates a config file. Relative paths inside it are resolved
/// against the file's directory, so the config works whatever the working directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = fs::read_to_string(path).map_err(|e| io_problem(path, "config", &e))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // Absolute, so `edge check` shows exactly which files will be opened.
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    parse_str(&text, &dir)
}

/// The embedded dev default, parsed and validated like any file.
pub fn dev_default() -> Config {
    match parse_str(DEV_TOML, Path::new("/")) {
        Ok(config) => config,
        // A unit test parses the embedded file, so this cannot ship broken.
        Err(errors) => panic!("embedded config/dev.toml is invalid:\n{errors}"),
    }
}

/// Parses and validates config text; relative paths resolve against `base_dir`.
pub fn parse_str(text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let Shaped { config, report } = parse_shaped(text, base_dir)?;
    let semantic: Vec<ConfigProblem> = match config.validate() {
        Ok(()) => Vec::new(),
        // A removed entry was replaced by its default; what validation says about that
        // default would only confuse.
        Err(ConfigErrors(found)) => found
            .into_iter()
            .filter(|p| !report.covers(&p.key))
            .collect(),
    };
    let mut problems = report.problems;
    problems.extend(semantic);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(problems))
    }
}

/// A config that parsed, with the shape problems found on the way (their entries were
/// dropped and defaults used). Not yet validated.
pub(super) struct Shaped {
    pub config: Config,
    pub report: ShapeReport,
}

pub(super) fn parse_shaped(text: &str, base_dir: &Path) -> Result<Shaped, ConfigErrors> {
    let mut table: Table = text.parse().map_err(|e| syntax_problem(text, &e))?;
    let report = shape::check(&mut table);
    let mut config: Config = Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| {
            // The shape walk mirrors the schema, so serde should never refuse what is left;
            // if it does, report it rather than hide it, together with what was found.
            let mut problems = report.problems.clone();
            problems.push(ConfigProblem::new(
                "config",
                e.to_string().trim().to_owned(),
                "correct the setting named above",
            ));
            ConfigErrors(problems)
        })?;
    resolve(&mut config, base_dir);
    Ok(Shaped { config, report })
}

/// Makes relative paths absolute against the config's directory and fills each
/// certificate's default names, so the effective config says what will really be used.
fn resolve(config: &mut Config, base_dir: &Path) {
    let front = &mut config.front;
    let domains = front.domains.clone();
    for cert in &mut front.certs {
        rebase(&mut cert.cert, base_dir);
        rebase(&mut cert.key, base_dir);
        if cert.names.is_empty() {
            cert.names = domains.clone();
        }
    }
    if let Some(path) = &mut front.session.secret_file {
        rebase(path, base_dir);
    }
    rebase(&mut front.cover_dir, base_dir);
    if let Some(client) = &mut config.tunnel.client {
        rebase(&mut client.uuid_file, base_dir);
    }
    if let Some(path) = &mut config.sfu.secret_file {
        rebase(path, base_dir);
    }
}

fn rebase(path: &mut PathBuf, base_dir: &Path) {
    // An empty path means "not set" (cover_dir = "" is the built-in site).
    if !path.as_os_str().is_empty() && path.is_relative() {
        *path = base_dir.join(&*path);
    }
}

/// A TOML syntax error, located by line and column since there is no key path yet.
fn syntax_problem(text: &str, error: &toml::de::Error) -> ConfigErrors {
    let key = match error.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("line {line}, column {column}")
        }
        None => "config".to_owned(),
    };
    ConfigProblem::new(
        key,
        format!("invalid TOML: {}", error.message().trim()),
        "correct the syntax there; strings need double quotes, sections look like [front]",
    )
    .into()
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
