//! For the crate's tests: the smallest configuration, and files that clean up after
//! themselves.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::{Config, load};

/// The smallest configuration that loads: the required keys, the rest at its defaults.
pub(crate) const MINIMAL: &str = r#"
        [postgres]
        database = "app"
        user = "cdc"

        [kafka]
        bootstrap_servers = "broker:9092"
        topic_prefix = "shop"

        [registry]
        url = "http://registry:8081"
    "#;

/// [`MINIMAL`], loaded (with no environment overrides).
pub(crate) fn minimal() -> Config {
    // One file per call: the tests run side by side.
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let file = TempFile::new(
        &format!("minimal-{}.toml", CALLS.fetch_add(1, Relaxed)),
        MINIMAL,
    );
    load(Some(&file.0), Vec::new()).unwrap()
}

/// A file under the temp directory, removed when dropped.
pub(crate) struct TempFile(pub(crate) PathBuf);

impl TempFile {
    pub(crate) fn new(name: &str, contents: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("sluice-config-test-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
