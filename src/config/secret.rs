//! Secrets: read from a private file or an environment variable, never from argv (other
//! users can read `/proc/<pid>/cmdline`) and never from a literal in the config file
//! (config files get pasted into chats and tickets).

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Serialize, Serializer};

use super::problem::ConfigProblem;

/// Shortest secret accepted: 256 bits, the key size of the HMACs built on it.
pub const MIN_SECRET_BYTES: usize = 32;

/// Secret key material. Prints and serialises as `<redacted>` so it cannot reach a log
/// or `edge check` output by accident; it deliberately has no `Deserialize`, so no
/// config field can hold one as a literal.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps bytes that came from a trusted source (a key exchange, a test vector).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// A fresh random secret of `MIN_SECRET_BYTES`, as a dev node uses for sessions.
    pub fn generate() -> Result<Self, ring::error::Unspecified> {
        let mut bytes = vec![0u8; MIN_SECRET_BYTES];
        SystemRandom::new().fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The key material; name the call site so reviewers see every place it escapes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort: clear the bytes so a later core dump is less likely to hold them.
        // black_box discourages the optimiser from dropping the dead stores; without
        // `unsafe` volatile writes (or the zeroize crate) that is as far as we can go.
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

/// Refuses a secret file that is not a regular file or that group or others may
/// access in any way (`mode & 0o077 != 0`); `key_path` names the setting in the problem.
///
/// Only the metadata is read, never the contents.
pub fn check_secret_file_mode(path: &Path, key_path: &str) -> Result<(), ConfigProblem> {
    let shown = path.display();
    let meta = fs::metadata(path).map_err(|e| io_problem(path, key_path, &e))?;
    if !meta.is_file() {
        return Err(ConfigProblem::new(
            key_path,
            format!("{shown} is not a regular file"),
            "point it at the file that holds the secret",
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigProblem::new(
            key_path,
            format!("{shown} has mode {mode:03o}; group or others can access it"),
            format!("run `chmod 600 {shown}`"),
        ));
    }
    Ok(())
}

/// Reads a secret from exactly one of `file` or the environment variable named `env`.
///
/// `key_path` is the section holding the two settings (e.g. `front.session`); problems
/// are reported at `<key_path>.secret_file` or `<key_path>.secret_env`. A file must pass
/// [`check_secret_file_mode`]; one trailing newline is dropped because editors and
/// `echo` add it. Either source must give at least [`MIN_SECRET_BYTES`] bytes.
pub fn load_secret(
    file: Option<&Path>,
    env: Option<&str>,
    key_path: &str,
) -> Result<Secret, ConfigProblem> {
    let file_key = format!("{key_path}.secret_file");
    let env_key = format!("{key_path}.secret_env");
    match (file, env) {
        (Some(_), Some(_)) => Err(ConfigProblem::new(
            file_key,
            "both secret_file and secret_env are set",
            format!("keep one of {key_path}.secret_file or {key_path}.secret_env"),
        )),
        (None, None) => Err(ConfigProblem::new(
            file_key,
            "no secret source is set",
            format!(
                "set {key_path}.secret_file to a file made with `openssl rand -hex 32 > FILE && chmod 600 FILE`, or {key_path}.secret_env to the name of an environment variable"
            ),
        )),
        (Some(path), None) => {
            check_secret_file_mode(path, &file_key)?;
            let mut bytes = fs::read(path).map_err(|e| io_problem(path, &file_key, &e))?;
            trim_one_newline(&mut bytes);
            long_enough(Secret(bytes), &file_key, &format!("file {}", path.display()))
        }
        (None, Some(name)) => from_env_value(name, std::env::var_os(name), &env_key),
    }
}

/// The env branch of [`load_secret`], split out so tests need not mutate the process
/// environment (`set_var` races with libc `getenv` in other threads).
fn from_env_value(name: &str, value: Option<OsString>, key: &str) -> Result<Secret, ConfigProblem> {
    let Some(value) = value else {
        return Err(ConfigProblem::new(
            key,
            format!("environment variable {name} is not set"),
            format!("export {name} in the service environment (e.g. systemd EnvironmentFile=)"),
        ));
    };
    long_enough(
        Secret(value.as_bytes().to_vec()),
        key,
        &format!("environment variable {name}"),
    )
}

fn trim_one_newline(bytes: &mut Vec<u8>) {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
}

fn long_enough(secret: Secret, key: &str, source: &str) -> Result<Secret, ConfigProblem> {
    if secret.len() >= MIN_SECRET_BYTES {
        return Ok(secret);
    }
    // The length is safe to report; the contents never are.
    Err(ConfigProblem::new(
        key,
        format!(
            "{source} holds {} bytes, at least {MIN_SECRET_BYTES} are required",
            secret.len()
        ),
        "generate one with `openssl rand -hex 32`",
    ))
}

/// Maps an I/O error on a file named by a setting to an operator-facing problem.
pub(super) fn io_problem(path: &Path, key: &str, error: &io::Error) -> ConfigProblem {
    let shown = path.display();
    match error.kind() {
        ErrorKind::NotFound => ConfigProblem::new(
            key,
            format!("{shown} does not exist"),
            "create it or correct the path; relative paths start at the config file's directory",
        ),
        ErrorKind::PermissionDenied => ConfigProblem::new(
            key,
            format!("{shown} cannot be read by this user"),
            "make the file readable by the user edge runs as (chown it to that user)",
        ),
        _ => ConfigProblem::new(
            key,
            format!("{shown} cannot be read: {error}"),
            "check the path and the disk",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::Permissions;

    fn secret_file(dir: &Path, contents: &[u8], mode: u32) -> std::path::PathBuf {
        let path = dir.join("session.key");
        fs::write(&path, contents).expect("write secret");
        fs::set_permissions(&path, Permissions::from_mode(mode)).expect("chmod");
        path
    }

    const HEX64: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_0600_file_is_accepted_and_its_newline_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut contents = HEX64.to_vec();
        contents.extend_from_slice(b"\r\n");
        let path = secret_file(dir.path(), &contents, 0o600);
        let secret = load_secret(Some(&path), None, "front.session").expect("accepted");
        assert_eq!(secret.expose(), HEX64);
    }

    #[test]
    fn a_0644_file_is_refused_with_the_chmod_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = secret_file(dir.path(), HEX64, 0o644);
        let problem = load_secret(Some(&path), None, "front.session").expect_err("refused");
        assert_eq!(problem.key, "front.session.secret_file");
        assert!(problem.message.contains("644"), "{problem}");
        assert_eq!(problem.fix, format!("run `chmod 600 {}`", path.display()));
    }

    #[test]
    fn group_only_access_is_refused_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = secret_file(dir.path(), HEX64, 0o640);
        assert!(check_secret_file_mode(&path, "k").is_err());
        fs::set_permissions(&path, Permissions::from_mode(0o400)).expect("chmod");
        assert!(check_secret_file_mode(&path, "k").is_ok());
    }

    #[test]
    fn short_missing_and_directory_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let short = secret_file(dir.path(), b"too short\n", 0o600);
        let problem = load_secret(Some(&short), None, "s").expect_err("short");
        assert!(problem.message.contains("9 bytes"), "{problem}");
        assert!(
            !problem.message.contains("too short"),
            "contents leaked: {problem}"
        );

        let missing = dir.path().join("absent");
        let problem = load_secret(Some(&missing), None, "s").expect_err("missing");
        assert!(problem.message.contains("does not exist"));

        let problem = check_secret_file_mode(dir.path(), "s.key").expect_err("dir");
        assert!(problem.message.contains("not a regular file"));
    }

    #[test]
    fn env_secret_must_be_set_and_long_enough() {
        let key = "front.session.secret_env";
        let long = from_env_value("S", Some(OsString::from("x".repeat(40))), key);
        assert_eq!(long.expect("long enough").len(), 40);
        let short = from_env_value("S", Some(OsString::from("x".repeat(31))), key);
        let problem = short.expect_err("short");
        assert_eq!(problem.key, key);
        assert!(problem.message.contains("31 bytes"), "{problem}");
        // Reading a variable nobody sets goes through the real environment.
        let unset = "OXPULSE_EDGE_TEST_SECRET_THAT_IS_NEVER_SET_7F3A";
        let problem = load_secret(None, Some(unset), "front.session").expect_err("unset");
        assert_eq!(problem.key, key);
        assert!(problem.message.contains("not set"));
    }

    #[test]
    fn exactly_one_source_is_required() {
        let both = load_secret(Some(Path::new("/x")), Some("X"), "front.session");
        assert!(both.expect_err("both").message.contains("both"));
        let none = load_secret(None, None, "front.session");
        assert!(none.expect_err("none").message.contains("no secret source"));
    }

    #[test]
    fn secret_never_prints_or_serializes() {
        let secret = Secret::from_bytes(b"hunter2hunter2hunter2hunter2hunter2".to_vec());
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        let json = serde_json::to_string(&secret).expect("serialises");
        assert_eq!(json, "\"<redacted>\"");
        let generated = Secret::generate().expect("system rng");
        assert_eq!(generated.len(), MIN_SECRET_BYTES);
        assert_ne!(generated, Secret::generate().expect("system rng"));
    }
}
