//! "Did you mean …?" for unknown keys.

use super::keys::{join, Field, Kind, ROOT};

/// The fix for an unknown key: the same name elsewhere in the schema (a setting put
/// in the wrong section is the commonest slip), else the closest sibling by edit
/// distance, else the list of keys that section accepts.
pub(super) fn suggest(name: &str, path: &str, siblings: &[Field]) -> String {
    let mut elsewhere = Vec::new();
    find_everywhere(name, ROOT, "", &mut elsewhere);
    elsewhere.retain(|p| p != path);
    if !elsewhere.is_empty() {
        let places: Vec<String> = elsewhere.iter().map(|p| format!("`{p}`")).collect();
        return format!(
            "did you mean {}? it belongs in another section",
            places.join(" or ")
        );
    }
    let best = siblings
        .iter()
        .map(|f| (edit_distance(name, f.name), f.name))
        .min_by_key(|(d, _)| *d);
    match best {
        // Beyond a third of the name the "closest" key is usually unrelated.
        Some((d, known)) if d <= (name.len() / 3).max(2) => format!("did you mean `{known}`?"),
        _ => {
            let names: Vec<&str> = siblings.iter().map(|f| f.name).collect();
            format!("remove it; this section accepts: {}", names.join(", "))
        }
    }
}

fn find_everywhere(name: &str, fields: &[Field], prefix: &str, out: &mut Vec<String>) {
    for field in fields {
        let path = join(prefix, field.name);
        if field.name == name {
            out.push(path.clone());
        }
        match field.kind {
            Kind::Table(inner) => find_everywhere(name, inner, &path, out),
            Kind::TableList(inner) => find_everywhere(name, inner, &format!("{path}[]"), out),
            _ => {}
        }
    }
}

/// Levenshtein distance over chars; the inputs are short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kye", "key"), 2);
        assert_eq!(edit_distance("listen", "listen"), 0);
        assert_eq!(edit_distance("lsten", "listen"), 1);
    }
}
