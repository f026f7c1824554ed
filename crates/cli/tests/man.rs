//! The committed man pages must match the clap definitions.

use std::collections::BTreeMap;
use std::path::Path;

fn pages(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "1"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect()
}

#[test]
fn man_pages_are_current() {
    let fresh = tempfile::tempdir().unwrap();
    natter_cli::write_man_pages(fresh.path()).unwrap();
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../man");
    let (want, have) = (pages(fresh.path()), pages(&committed));
    assert!(want.contains_key("natter.1") && want.contains_key("natter-send.1"));
    assert!(
        want == have,
        "man pages are stale: run `cargo run -p natter-cli -- man --dir man` \
         (differing: {:?})",
        want.keys()
            .chain(have.keys())
            .filter(|k| want.get(*k) != have.get(*k))
            .collect::<std::collections::BTreeSet<_>>()
    );
}
