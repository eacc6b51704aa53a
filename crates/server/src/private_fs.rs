//! Directories for data only the server's account may read: the data
//! directory holds password-equivalent digest hashes, message archives and
//! the TLS private key.

use anyhow::Context;
use std::path::Path;

/// Creates `dir` and any missing parents with mode 0700 (owner only). An
/// existing directory keeps its permissions: the operator may have chosen
/// them.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn new_directories_are_owner_only_and_existing_ones_are_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("tempdir");
        let nested = root.path().join("a").join("b");
        create_private_dir(&nested).expect("create");
        for d in [root.path().join("a"), nested.clone()] {
            let mode = std::fs::metadata(&d).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(0o750)).expect("chmod");
        create_private_dir(&nested).expect("again");
        let mode = std::fs::metadata(&nested)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o750);
    }
}
