//! The admin TCP listener's token: every request to its API carries
//! `Authorization: Bearer TOKEN`. A fresh random token is made each time a
//! server starts and kept in `DATA_DIR/admin-PORT.token` (one per listener:
//! hosts sharing a data dir on Redis each have their own), readable only by
//! the server's user (as the admin socket is), so another local user cannot
//! use the API the listener opens on loopback.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// Where the token of the listener on `port` is kept in `data_dir`.
pub fn path(data_dir: &Path, port: u16) -> PathBuf {
    data_dir.join(format!("admin-{port}.token"))
}

/// A new random token (256 bits, URL-safe base64) for the listener on
/// `port`, written to its token file in `data_dir` (mode 0600, replacing
/// an older one).
pub fn create(data_dir: &Path, port: u16) -> std::io::Result<String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| std::io::Error::other(format!("no randomness for the admin token: {e}")))?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let file = path(data_dir, port);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&file)
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot write the admin token {}: {e}", file.display()),
            )
        })?;
    // A file left by an older server with wider rights is narrowed first.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    Ok(token)
}

/// Does the `Authorization` header value carry `token` (`Bearer TOKEN`,
/// compared in constant time)?
pub fn matches(header: Option<&[u8]>, token: &str) -> bool {
    let sent = header
        .and_then(|h| h.strip_prefix(b"Bearer "))
        .unwrap_or_default();
    subtle::ConstantTimeEq::ct_eq(sent, token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_new_each_time_and_only_the_owner_reads_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path(), 9090);
        std::fs::write(&file, "old").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let a = create(dir.path(), 9090).unwrap();
        let b = create(dir.path(), 9090).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), b);
        // Another listener on the same data dir keeps its own.
        let c = create(dir.path(), 9091).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), b);
        assert_eq!(std::fs::read_to_string(path(dir.path(), 9091)).unwrap(), c);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches(Some(format!("Bearer {b}").as_bytes()), &b));
        assert!(!matches(Some(format!("Bearer {a}").as_bytes()), &b));
        assert!(!matches(Some(b.as_bytes()), &b));
        assert!(!matches(None, &b));
    }
}
