//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// A fresh folder under the system's temporary directory, unique to this process and
/// moment, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `tapegrad-{tag}-{pid}-{nanoseconds}` under the temporary directory.
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "tapegrad-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
