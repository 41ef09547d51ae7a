//! End-to-end tests of the config module: the shipped files, files on disk, and many
//! problems reported together.

use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::keys::{Field, Kind, ROOT};
use super::load::parse_shaped;
use super::*;

const EXAMPLE: &str = include_str!("../../config/edge.example.toml");
const SESSION_SECRET: &str = "5f1d0c8e9a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";

fn keys(errors: &ConfigErrors) -> Vec<&str> {
    let mut keys: Vec<&str> = errors.0.iter().map(|p| p.key.as_str()).collect();
    keys.sort_unstable();
    keys
}

fn write_private(path: &Path, contents: &str) {
    fs::write(path, contents).expect("write file");
    fs::set_permissions(path, Permissions::from_mode(0o600)).expect("chmod 600");
}

/// A directory laid out like /etc/oxpulse-edge with a real certificate, key and
/// session secret, holding the example config rewritten to use relative paths.
fn example_node_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("tls")).expect("mkdir tls");
    let names = vec!["example.org".to_owned(), "www.example.org".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).expect("self-signed cert");
    fs::write(dir.path().join("tls/fullchain.pem"), certified.cert.pem()).expect("write cert");
    write_private(
        &dir.path().join("tls/privkey.pem"),
        &certified.signing_key.serialize_pem(),
    );
    write_private(
        &dir.path().join("session.key"),
        &format!("{SESSION_SECRET}\n"),
    );
    let config = EXAMPLE.replace("/etc/oxpulse-edge/", "");
    let path = dir.path().join("edge.toml");
    fs::write(&path, config).expect("write config");
    (dir, path)
}

#[test]
fn embedded_dev_config_parses_and_validates() {
    let config = dev_default();
    assert!(config.node.dev);
    assert!(config.front.listen.ip().is_loopback());
    assert!(config.admin.listen.ip().is_loopback());
    assert!(config.front.certs.is_empty());
    config.validate().expect("dev config is valid");
}

#[test]
fn example_config_parses_cleanly() {
    let shaped = parse_shaped(EXAMPLE, Path::new("/etc/oxpulse-edge")).expect("parses");
    assert!(
        shaped.report.problems.is_empty(),
        "{:?}",
        shaped.report.problems
    );
    let config = shaped.config;
    assert!(!config.node.dev);
    assert_eq!(config.node.id, "edge-fra-1");
    assert_eq!(config.front.certs.len(), 1);
    assert_eq!(
        config.front.session.secret_file.as_deref(),
        Some(Path::new("/etc/oxpulse-edge/session.key"))
    );
}

fn schema_leaves(fields: &[Field], out: &mut Vec<&'static str>) {
    for field in fields {
        match field.kind {
            Kind::Table(inner) | Kind::TableList(inner) => schema_leaves(inner, out),
            _ => out.push(field.name),
        }
    }
}

#[test]
fn example_config_documents_every_key() {
    let mut leaves = Vec::new();
    schema_leaves(ROOT, &mut leaves);
    for leaf in leaves {
        let documented = EXAMPLE.lines().any(|line| {
            let line = line.trim_start_matches(['#', ' ']);
            line.starts_with(&format!("{leaf} ="))
        });
        assert!(
            documented,
            "config/edge.example.toml does not document `{leaf}`"
        );
    }
}

#[test]
fn example_config_with_real_files_validates_and_resolves_relative_paths() {
    let (dir, path) = example_node_dir();
    let config = load_file(&path).expect("valid");
    let base = std::path::absolute(dir.path()).expect("absolute");
    assert_eq!(config.front.certs[0].cert, base.join("tls/fullchain.pem"));
    assert_eq!(config.front.certs[0].key, base.join("tls/privkey.pem"));
    assert_eq!(
        config.front.session.secret_file.as_deref(),
        Some(base.join("session.key").as_path())
    );
    let secret = load_secret(
        config.front.session.secret_file.as_deref(),
        None,
        "front.session",
    )
    .expect("secret loads");
    assert_eq!(secret.expose(), SESSION_SECRET.as_bytes());
}

#[test]
fn loose_private_key_mode_is_refused() {
    let (dir, path) = example_node_dir();
    let key = dir.path().join("tls/privkey.pem");
    fs::set_permissions(&key, Permissions::from_mode(0o644)).expect("chmod");
    let errors = load_file(&path).expect_err("refused");
    assert_eq!(keys(&errors), ["front.certs[0].key"]);
    assert!(errors.0[0].fix.contains("chmod 600"));
}

#[test]
fn redacted_toml_shows_paths_not_secrets_and_round_trips() {
    let (dir, path) = example_node_dir();
    let config = load_file(&path).expect("valid");
    let text = config.to_redacted_toml();
    assert!(text.contains("session.key"), "{text}");
    assert!(!text.contains(SESSION_SECRET), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    // Defaults are filled in.
    assert!(text.contains("max_requests_per_conn = 1000"), "{text}");
    let again = parse_str(&text, dir.path()).expect("effective config is itself valid");
    assert_eq!(again, config);
}

#[test]
fn dev_config_redacted_toml_round_trips() {
    let config = dev_default();
    let again = parse_str(&config.to_redacted_toml(), Path::new("/")).expect("parses");
    assert_eq!(again, config);
}

#[test]
fn many_problems_are_reported_together_with_key_paths() {
    let text = r#"
        [node]
        id = "Bad_Id"
        dev = false

        [runtime]
        ring_depth = 100
        io_memory_kib = 1

        [front]
        listen = "0.0.0.0:9317"
        domains = ["Example.org"]
        colour = "blue"

        [front.session]
        secret_file = "session.key"
        secret_env = "OXPULSE_SESSION_SECRET"

        [front.limits]
        max_body_bytes = -5

        [admin]
        listen = "127.0.0.1:9317"

        [log]
        level = "oxpulse_edge=loud"
    "#;
    let errors = parse_str(text, Path::new("/nonexistent")).expect_err("invalid");
    assert_eq!(
        keys(&errors),
        [
            "admin.listen",
            "front.certs",
            "front.colour",
            "front.domains[0]",
            "front.limits.max_body_bytes",
            "front.session.secret_env",
            "log.level",
            "node.id",
            "runtime.io_memory_kib",
            "runtime.ring_depth",
        ]
    );
    let shown = errors.to_string();
    assert_eq!(shown.lines().count(), errors.0.len());
    for line in shown.lines() {
        assert!(line.contains(": ") && line.contains(" (fix: "), "{line}");
    }
}

#[test]
fn a_removed_entry_causes_no_follow_on_problems() {
    // `certs` of the wrong kind is reported once, not again as "no certificate".
    let text =
        "[node]\nid = \"n\"\n[front]\ncerts = \"cert.pem\"\n[front.session]\nsecret_env = \"S\"\n";
    let errors = parse_str(text, Path::new("/")).expect_err("invalid");
    assert_eq!(keys(&errors), ["front.certs"]);
}

#[test]
fn syntax_errors_give_line_and_column() {
    let text = "[node]\nid = \"a\"\ndev = tru\n";
    let errors = parse_str(text, Path::new("/")).expect_err("invalid");
    assert_eq!(errors.0.len(), 1);
    assert!(errors.0[0].key.starts_with("line 3, column "), "{errors}");
    assert!(errors.0[0].message.starts_with("invalid TOML"), "{errors}");
}

#[test]
fn certificate_names_must_be_unique_and_cover_every_domain() {
    let (dir, _) = example_node_dir();
    let text = r#"
        [node]
        id = "n"
        [front]
        domains = ["example.org", "other.example"]
        [[front.certs]]
        names = ["example.org"]
        cert = "tls/fullchain.pem"
        key = "tls/privkey.pem"
        [[front.certs]]
        names = ["example.org", "*.example.org"]
        cert = "tls/fullchain.pem"
        key = "tls/privkey.pem"
        [front.session]
        secret_file = "session.key"
    "#;
    let errors = parse_str(text, dir.path()).expect_err("invalid");
    assert_eq!(keys(&errors), ["front.certs[1].names", "front.domains[1]"]);
}

#[test]
fn missing_files_and_incomplete_cover_dir_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("cover")).expect("mkdir");
    fs::write(dir.path().join("cover/index.html"), "<html></html>").expect("write");
    let text = r#"
        [node]
        id = "n"
        [front]
        cover_dir = "cover"
        [[front.certs]]
        cert = "missing.pem"
        [front.session]
        secret_file = "missing.key"
    "#;
    let errors = parse_str(text, dir.path()).expect_err("invalid");
    assert_eq!(
        keys(&errors),
        [
            "front.certs[0].cert",
            "front.certs[0].key",
            "front.cover_dir",
            "front.session.secret_file",
        ]
    );
    let cover = errors
        .for_key("front.cover_dir")
        .next()
        .expect("cover problem");
    assert!(cover.message.contains("404.html"));
    let cert = errors
        .for_key("front.certs[0].cert")
        .next()
        .expect("cert problem");
    assert!(cert.message.contains("does not exist"));
}

#[test]
fn a_dev_file_needs_no_certificate_or_secret() {
    let config = parse_str("[node]\ndev = true\n", Path::new("/")).expect("valid");
    assert!(config.node.id.is_empty());
    assert_eq!(config.runtime.ring_depth, 128);
}

#[test]
fn an_empty_file_is_a_production_node_missing_its_essentials() {
    let errors = parse_str("", Path::new("/")).expect_err("invalid");
    assert_eq!(
        keys(&errors),
        ["front.certs", "front.session.secret_file", "node.id"]
    );
}

#[test]
fn a_missing_config_file_is_one_clear_problem() {
    let errors = load_file(Path::new("/nonexistent/edge.toml")).expect_err("missing");
    assert_eq!(keys(&errors), ["config"]);
    assert!(errors.0[0].message.contains("does not exist"));
}

#[test]
fn sfu_media_keys_are_checked() {
    let text = "[node]\ndev = true\n[runtime]\ncores = 4\n[sfu]\nmedia_port_base = 65534\npublic_ip = \"0.0.0.0\"\nprivate_ip = \"10.0.0.7:1\"\nmax_rooms_per_shard = 0\nmedia_timeout_secs = 1\n";
    let errors = parse_str(text, Path::new("/")).expect_err("invalid");
    assert_eq!(
        keys(&errors),
        [
            "sfu.max_rooms_per_shard",
            "sfu.media_port_base",
            "sfu.media_timeout_secs",
            "sfu.private_ip",
            "sfu.public_ip",
        ]
    );
    let ok = "[node]\ndev = true\n[sfu]\nmedia_port_base = 30000\npublic_ip = \"2001:db8::7\"\n";
    let config = parse_str(ok, Path::new("/")).expect("valid");
    assert_eq!(config.sfu.media_port(3), 30003);
    let addrs = crate::sfu::media_addrs(&config.sfu, 1);
    assert_eq!(addrs.bound, "[::]:30001".parse().unwrap());
    assert_eq!(addrs.candidates, ["[2001:db8::7]:30001".parse().unwrap()]);
}
