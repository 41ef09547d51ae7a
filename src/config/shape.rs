//! Checks the parsed TOML tree against the schema before serde sees it.
//!
//! serde with `deny_unknown_fields` stops at the first error; an operator editing a file
//! over SSH wants every mistake at once. So we walk the raw `toml::Table` ourselves
//! against the key list in `keys.rs`, report each unknown key (with the closest known
//! key) and each value of the wrong kind, and remove the offending entries so that serde
//! then succeeds on the rest and semantic validation can still run.

use std::net::SocketAddr;

use toml::{Table, Value};

use super::keys::{join, Field, Kind, ROOT};
use super::problem::ConfigProblem;
use super::suggest::suggest;

/// Result of a walk: the problems, and the key paths that were removed from the tree
/// because of them (their defaults are used so validation can go on; problems that
/// validation then finds under these paths are noise and get dropped).
#[derive(Debug, Default)]
pub(super) struct ShapeReport {
    pub problems: Vec<ConfigProblem>,
    pub removed: Vec<String>,
}

impl ShapeReport {
    /// Whether `key` is, or lies under, a removed entry.
    pub fn covers(&self, key: &str) -> bool {
        self.removed.iter().any(|r| {
            key.strip_prefix(r.as_str()).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
            })
        })
    }

    fn reject(&mut self, key: String, message: String, fix: String) {
        self.problems
            .push(ConfigProblem::new(key.clone(), message, fix));
        self.removed.push(key);
    }
}

/// Walks `table` against the schema, removing every entry it reports.
pub(super) fn check(table: &mut Table) -> ShapeReport {
    let mut report = ShapeReport::default();
    walk_table(table, ROOT, "", &mut report);
    report
}

fn walk_table(table: &mut Table, fields: &[Field], prefix: &str, report: &mut ShapeReport) {
    let keys: Vec<String> = table.keys().cloned().collect();
    for name in keys {
        let path = join(prefix, &name);
        let Some(field) = fields.iter().find(|f| f.name == name) else {
            table.remove(&name);
            report.reject(
                path.clone(),
                "unknown setting".to_owned(),
                suggest(&name, &path, fields),
            );
            continue;
        };
        let keep = match table.get_mut(&name) {
            Some(value) => walk_value(value, field.kind, &path, report),
            None => true,
        };
        if !keep {
            table.remove(&name);
        }
    }
}

/// Checks one value; returns false when it must be removed (the problem is recorded).
fn walk_value(value: &mut Value, kind: Kind, path: &str, report: &mut ShapeReport) -> bool {
    match value_problem(value, kind, path, report) {
        None => true,
        Some((message, fix)) => {
            report.reject(path.to_owned(), message, fix);
            false
        }
    }
}

/// What is wrong with `value` as a `kind`, as (message, fix); recurses into tables,
/// whose own problems go straight into `report`.
fn value_problem(
    value: &mut Value,
    kind: Kind,
    path: &str,
    report: &mut ShapeReport,
) -> Option<(String, String)> {
    match (kind, value) {
        (Kind::Bool, Value::Boolean(_)) | (Kind::Str, Value::String(_)) => None,
        (Kind::UInt, Value::Integer(n)) => (*n < 0).then(|| {
            (
                format!("must not be negative, found {n}"),
                "use a number of 0 or more".to_owned(),
            )
        }),
        (Kind::Addr, Value::String(s)) => s.parse::<SocketAddr>().is_err().then(|| {
            (
                format!("`{s}` is not an IP address with a port"),
                "write it as \"IP:port\", e.g. \"0.0.0.0:443\" or \"[::]:443\" (no host names)"
                    .to_owned(),
            )
        }),
        (Kind::Ip, Value::String(s)) => s.parse::<std::net::IpAddr>().is_err().then(|| {
            (
                format!("`{s}` is not an IP address"),
                "write a bare address without port or brackets, e.g. \"203.0.113.7\" or \"2001:db8::7\""
                    .to_owned(),
            )
        }),
        (Kind::OneOf(allowed), Value::String(s)) => (!allowed.contains(&s.as_str())).then(|| {
            (
                format!("`{s}` is not one of {}", quoted_list(allowed)),
                format!("use one of {}", quoted_list(allowed)),
            )
        }),
        (Kind::StrList, Value::Array(items)) => {
            let (i, item) = items.iter().enumerate().find(|(_, v)| !v.is_str())?;
            Some((
                format!("item [{i}] is {}, expected a string", kind_of(item)),
                "quote every entry, e.g. [\"example.org\"]".to_owned(),
            ))
        }
        (Kind::Table(fields), Value::Table(t)) => {
            walk_table(t, fields, path, report);
            None
        }
        (Kind::TableList(fields), Value::Array(items)) => {
            // Checked before walking: dropping one bad entry would shift the index of
            // every later one, so a list with a non-table in it goes as a whole.
            if let Some((i, item)) = items.iter().enumerate().find(|(_, v)| !v.is_table()) {
                return Some((
                    format!("item [{i}] is {}, expected a table", kind_of(item)),
                    format!("write each entry as a [[{path}]] section"),
                ));
            }
            for (i, item) in items.iter_mut().enumerate() {
                if let Value::Table(t) = item {
                    walk_table(t, fields, &format!("{path}[{i}]"), report);
                }
            }
            None
        }
        (Kind::TableList(_), Value::Table(_)) => Some((
            format!("is a single table [{path}], expected a list of tables"),
            format!("write the section header with double brackets: [[{path}]]"),
        )),
        (kind, value) => Some((
            format!("is {}, expected {}", kind_of(value), expected(kind)),
            fix_for(kind, path),
        )),
    }
}

fn expected(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "true or false",
        Kind::UInt => "a whole number",
        Kind::Str | Kind::OneOf(_) => "a string",
        Kind::Addr => "a string \"IP:port\"",
        Kind::Ip => "a string \"IP\"",
        Kind::StrList => "a list of strings",
        Kind::Table(_) => "a table",
        Kind::TableList(_) => "a list of tables",
    }
}

fn fix_for(kind: Kind, path: &str) -> String {
    match kind {
        Kind::Bool => "write true or false without quotes".to_owned(),
        Kind::UInt => "write a whole number without quotes, e.g. 1024".to_owned(),
        Kind::Str | Kind::Addr | Kind::Ip => "put the value in double quotes".to_owned(),
        Kind::OneOf(allowed) => format!("use one of {}", quoted_list(allowed)),
        Kind::StrList => "write a list, e.g. [\"example.org\"]".to_owned(),
        Kind::Table(_) => format!("make it a section: [{path}]"),
        Kind::TableList(_) => format!("make it a list of sections: [[{path}]]"),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a decimal number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keys::{LOG_FORMATS, POLICIES};
    use crate::config::schema::{CertConfig, Config};
    use std::path::PathBuf;

    fn check_text(text: &str) -> (Table, ShapeReport) {
        let mut table: Table = text.parse().expect("test TOML parses");
        let report = check(&mut table);
        (table, report)
    }

    /// Sorted, so the tests do not depend on the map order of `toml::Table`.
    fn keys(report: &ShapeReport) -> Vec<&str> {
        let mut keys: Vec<&str> = report.problems.iter().map(|p| p.key.as_str()).collect();
        keys.sort_unstable();
        keys
    }

    /// Every leaf of the schema, with its dotted path (list items as `[]`).
    fn leaves(fields: &[Field], prefix: &str, out: &mut Vec<String>) {
        for field in fields {
            let path = join(prefix, field.name);
            match field.kind {
                Kind::Table(inner) => leaves(inner, &path, out),
                Kind::TableList(inner) => leaves(inner, &format!("{path}[]"), out),
                _ => out.push(path),
            }
        }
    }

    fn value_leaves(table: &Table, prefix: &str, out: &mut Vec<String>) {
        for (name, value) in table {
            let path = join(prefix, name);
            match value {
                Value::Table(t) => value_leaves(t, &path, out),
                Value::Array(items) if items.iter().all(Value::is_table) && !items.is_empty() => {
                    for item in items {
                        if let Value::Table(t) = item {
                            value_leaves(t, &format!("{path}[]"), out);
                        }
                    }
                }
                _ => out.push(path),
            }
        }
    }

    #[test]
    fn schema_matches_the_serde_types() {
        // A config with every optional field present, so serialisation shows all keys.
        let mut config = Config::default();
        config.front.session.secret_file = Some(PathBuf::from("/s"));
        config.front.session.secret_env = Some("S".to_owned());
        config.front.certs.push(CertConfig {
            names: vec!["a.example".to_owned()],
            cert: PathBuf::from("/c"),
            key: PathBuf::from("/k"),
        });
        config.tunnel.client = Some(Default::default());
        config.tunnel.forward.push(Default::default());
        config.sfu.secret_file = Some(PathBuf::from("/sfu"));
        config.sfu.private_ip = Some("10.0.0.2".parse().expect("an IP"));
        let text = toml::to_string(&config).expect("serialises");
        let (_, report) = check_text(&text);
        assert!(report.problems.is_empty(), "{:?}", report.problems);

        let mut schema = Vec::new();
        leaves(ROOT, "", &mut schema);
        let mut serialized = Vec::new();
        value_leaves(&text.parse().expect("parses back"), "", &mut serialized);
        schema.sort();
        serialized.sort();
        serialized.dedup();
        assert_eq!(schema, serialized);
    }

    #[test]
    fn every_enum_variant_in_the_schema_deserializes() {
        for policy in POLICIES {
            let text = format!("[front]\npolicy = \"{policy}\"\n");
            toml::from_str::<Config>(&text).expect("policy variant is known to serde");
        }
        for format in LOG_FORMATS {
            let text = format!("[log]\nformat = \"{format}\"\n");
            toml::from_str::<Config>(&text).expect("format variant is known to serde");
        }
    }

    #[test]
    fn unknown_keys_at_every_level_are_reported_with_suggestions() {
        let (table, report) = check_text(
            r#"
            colour = "blue"
            [node]
            idd = "x"
            [front]
            cores = 4
            [[front.certs]]
            cert = "/c"
            kye = "/k"
            [front.limits]
            max_body_byte = 10
            "#,
        );
        assert_eq!(
            keys(&report),
            [
                "colour",
                "front.certs[0].kye",
                "front.cores",
                "front.limits.max_body_byte",
                "node.idd"
            ]
        );
        let fix = |key: &str| {
            report
                .problems
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.fix.clone())
                .unwrap_or_default()
        };
        assert!(fix("node.idd").contains("`id`"));
        assert!(fix("front.certs[0].kye").contains("`key`"));
        assert!(fix("front.limits.max_body_byte").contains("`max_body_bytes`"));
        assert!(fix("front.cores").contains("`runtime.cores`"));
        assert!(fix("colour").contains("node, runtime, front"));
        // Removed, so serde (deny_unknown_fields) accepts what is left.
        Value::Table(table)
            .try_into::<Config>()
            .expect("clean tree deserializes");
    }

    #[test]
    fn wrong_kinds_are_all_reported_and_removed() {
        let (table, report) = check_text(
            r#"
            [node]
            dev = "yes"
            [runtime]
            cores = -1
            ring_depth = "128"
            [front]
            listen = "localhost:443"
            domains = ["a.example", 7]
            policy = "lenient"
            certs = { cert = "/c" }
            [log]
            format = "xml"
            "#,
        );
        assert_eq!(
            keys(&report),
            [
                "front.certs",
                "front.domains",
                "front.listen",
                "front.policy",
                "log.format",
                "node.dev",
                "runtime.cores",
                "runtime.ring_depth"
            ]
        );
        let certs = report.problems.iter().find(|p| p.key == "front.certs");
        assert!(certs.is_some_and(|p| p.fix.contains("[[front.certs]]")));
        assert!(report.covers("front.certs[0].cert"));
        assert!(report.covers("runtime.cores"));
        assert!(!report.covers("runtime.cores_extra"));
        Value::Table(table)
            .try_into::<Config>()
            .expect("clean tree deserializes");
    }

    #[test]
    fn a_certificate_list_with_a_non_table_goes_as_a_whole() {
        let (table, report) = check_text("[front]\ncerts = [{ cert = \"/c\" }, \"/d\"]\n");
        assert_eq!(keys(&report), ["front.certs"]);
        assert!(report.problems[0].message.contains("item [1]"));
        assert!(report.covers("front.certs[0].key"));
        assert!(!table["front"]
            .as_table()
            .is_some_and(|t| t.contains_key("certs")));
    }
}
