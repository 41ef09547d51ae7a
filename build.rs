//! Records the git commit in the binary so `edge --version` can name it.
use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let hash = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=EDGE_GIT_HASH={hash}");
    // Rebuild when HEAD moves. Ask git where its directory is: in a worktree `.git` is a
    // file, and naming a path that does not exist would make cargo rerun this (and rebuild
    // the crate) on every build.
    match git(&["rev-parse", "--git-dir"]) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
            if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
                let refs = PathBuf::from(common).join("refs/heads");
                println!("cargo:rerun-if-changed={}", refs.display());
            }
        }
        // Not a git checkout (a source tarball): the hash is fixed, nothing to watch.
        None => println!("cargo:rerun-if-changed=build.rs"),
    }
}
