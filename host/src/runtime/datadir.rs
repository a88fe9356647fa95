//! The data directory: created private to its owner (0700, the state file
//! 0600), as PostgreSQL insists for its data directory — it holds every
//! instance's and session's state, the admin socket and the component cache.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::error::HostError;

/// Create `dir` (and missing parents) with mode 0700; warn when an existing
/// one can be read or entered by other users.
pub fn prepare(dir: &Path) -> Result<(), HostError> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| HostError::Io {
                what: format!("cannot create the data directory {}", dir.display()),
                source,
            })?;
        // Its name must survive a crash with what is written in it.
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|source| HostError::Io {
                what: format!("cannot sync the directory holding {}", dir.display()),
                source,
            })?;
        return Ok(());
    }
    let meta = std::fs::metadata(dir).map_err(|source| HostError::Io {
        what: format!("cannot read the data directory {}", dir.display()),
        source,
    })?;
    if !meta.is_dir() {
        return Err(HostError::Io {
            what: format!(
                "the data directory {} is not a directory; give --data a directory",
                dir.display()
            ),
            source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
        });
    }
    warn_if_shared(dir, meta.permissions().mode(), "chmod 700");
    Ok(())
}

/// Make a state file the store just created private (0600); warn about an
/// existing one others can read.
pub fn secure_file(path: &Path, created: bool) -> Result<(), HostError> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(()); // not a file of ours (e.g. the Redis engine)
    };
    let mode = meta.permissions().mode();
    if created {
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
                |source| HostError::Io {
                    what: format!("cannot make {} private (mode 0600)", path.display()),
                    source,
                },
            )?;
        }
    } else {
        warn_if_shared(path, mode, "chmod 600");
    }
    Ok(())
}

fn warn_if_shared(path: &Path, mode: u32, fix: &str) {
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "other users can access the state; `{fix} {}` to keep it private",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use crate::runtime::{Host, HostConfig};

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_data_dir_and_state_file_are_private_to_the_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/data");
        let host = Host::open(HostConfig::new(&dir)).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("state.redb")), 0o600);
        drop(host);
        // Reopening leaves a mode the owner chose alone (it only warns).
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        let host = Host::open(HostConfig::new(&dir)).unwrap();
        assert_eq!(mode(&dir), 0o750);
        drop(host);
    }

    #[test]
    fn a_data_dir_that_is_a_file_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("data");
        std::fs::write(&file, b"x").unwrap();
        let err = Host::open(HostConfig::new(&file)).unwrap_err().to_string();
        assert!(err.contains("is not a directory"), "{err}");
    }
}
