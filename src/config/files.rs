//! Validation of the files the config points at: certificates, private keys, the
//! session secret file and the cover site directory. Contents are parsed only as far as
//! needed to say "this is not a certificate"; nothing read here reaches a message.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::problem::ConfigProblem;
use super::schema::{CertConfig, Config};
use super::secret::{self, check_secret_file_mode};

pub(super) fn check(config: &Config, out: &mut Vec<ConfigProblem>) {
    for (i, cert) in config.front.certs.iter().enumerate() {
        cert_pair(cert, i, out);
    }
    let session = &config.front.session;
    if let (Some(path), None) = (&session.secret_file, &session.secret_env) {
        // load_secret checks mode, readability and length; the secret is dropped at once.
        if let Err(problem) = secret::load_secret(Some(path), None, "front.session") {
            out.push(problem);
        }
    }
    if let Some(path) = &config.sfu.secret_file {
        if let Err(problem) = secret::load_secret(Some(path), None, "sfu") {
            out.push(problem);
        }
    }
    cover_dir(&config.front.cover_dir, out);
}

fn cert_pair(cert: &CertConfig, i: usize, out: &mut Vec<ConfigProblem>) {
    let cert_key = format!("front.certs[{i}].cert");
    let key_key = format!("front.certs[{i}].key");
    if cert.cert.as_os_str().is_empty() {
        out.push(required(&cert_key, "fullchain.pem"));
    } else if let Err(problem) = certificate_chain(&cert.cert, &cert_key) {
        out.push(problem);
    }
    if cert.key.as_os_str().is_empty() {
        out.push(required(&key_key, "privkey.pem"));
    } else if let Err(problem) = private_key(&cert.key, &key_key) {
        out.push(problem);
    }
}

fn required(key: &str, example: &str) -> ConfigProblem {
    ConfigProblem::new(
        key,
        "is required in every [[front.certs]] entry",
        format!("set it to the PEM file path, e.g. \"/etc/oxpulse-edge/tls/{example}\""),
    )
}

fn open(path: &Path, key: &str) -> Result<BufReader<File>, ConfigProblem> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| secret::io_problem(path, key, &e))
}

fn certificate_chain(path: &Path, key: &str) -> Result<(), ConfigProblem> {
    let mut reader = open(path, key)?;
    let mut count = 0usize;
    for item in rustls_pemfile::certs(&mut reader) {
        item.map_err(|e| not_pem(path, key, "certificate", &e))?;
        count += 1;
    }
    if count == 0 {
        return Err(ConfigProblem::new(
            key,
            format!("{} holds no PEM CERTIFICATE block", path.display()),
            "point it at the full chain PEM (e.g. certbot's fullchain.pem)",
        ));
    }
    Ok(())
}

fn private_key(path: &Path, key: &str) -> Result<(), ConfigProblem> {
    check_secret_file_mode(path, key)?;
    let mut reader = open(path, key)?;
    match rustls_pemfile::private_key(&mut reader) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ConfigProblem::new(
            key,
            format!("{} holds no PEM private key", path.display()),
            "point it at the key PEM (e.g. certbot's privkey.pem)",
        )),
        Err(e) => Err(not_pem(path, key, "private key", &e)),
    }
}

fn not_pem(path: &Path, key: &str, what: &str, error: &std::io::Error) -> ConfigProblem {
    ConfigProblem::new(
        key,
        format!("{} is not a readable PEM {what}: {error}", path.display()),
        format!("check that the file is the PEM-encoded {what}"),
    )
}

fn cover_dir(dir: &Path, out: &mut Vec<ConfigProblem>) {
    const KEY: &str = "front.cover_dir";
    if dir.as_os_str().is_empty() {
        return;
    }
    if !dir.is_dir() {
        out.push(ConfigProblem::new(
            KEY,
            format!("{} is not a directory", dir.display()),
            "create the directory, or set cover_dir = \"\" for the built-in cover site",
        ));
        return;
    }
    for page in ["index.html", "404.html"] {
        if !dir.join(page).is_file() {
            out.push(ConfigProblem::new(
                KEY,
                format!("{} has no {page}", dir.display()),
                format!("add {page} to the directory; the front serves it to strangers"),
            ));
        }
    }
}
