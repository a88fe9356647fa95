//! The admin socket: `DATA_DIR/admin.sock`, mode 0600, answered by the
//! process that holds the data dir.

use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// The socket's file name inside the data dir.
pub const SOCKET_NAME: &str = "admin.sock";

/// Where the admin socket of `data_dir` is.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// A bound admin socket; the file is removed when it is dropped, if it is
/// still this socket's (a server started after this one stopped listening
/// may have put its own in its place).
#[derive(Debug)]
pub struct AdminSocket {
    listener: Option<UnixListener>,
    path: PathBuf,
    /// The socket file's identity once in place.
    id: Option<FileId>,
}

/// A file's device, inode and change time: an inode number is reused as
/// soon as its file is gone, the change time (set by the rename that
/// put the socket in place) tells the two apart.
type FileId = (u64, u64, i64, i64);

/// A file's identity, if it exists.
fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()))
}

impl AdminSocket {
    /// Bind the admin socket of `data_dir`. A socket file left by a server
    /// that crashed (nobody answers on it) is replaced; one a live server
    /// answers on is an error. The socket is made owner-only (0600) before
    /// it appears under its name, so nobody else can ever connect.
    pub async fn bind(data_dir: &Path) -> std::io::Result<AdminSocket> {
        use std::os::unix::fs::PermissionsExt;
        crate::runtime::datadir::prepare(data_dir).map_err(|e| {
            let kind = match &e {
                crate::runtime::HostError::Io { source, .. } => source.kind(),
                _ => std::io::ErrorKind::Other,
            };
            std::io::Error::new(kind, e.to_string())
        })?;
        let path = path(data_dir);
        if path.exists() {
            if tokio::net::UnixStream::connect(&path).await.is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!(
                        "another wasm-state server answers on {}; stop it, or give this one another --data dir",
                        path.display()
                    ),
                ));
            }
            tracing::info!(socket = %path.display(), "removing a stale admin socket");
            std::fs::remove_file(&path)?;
        }
        let tmp = data_dir.join(format!(".{SOCKET_NAME}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp).map_err(|e| {
            // sun_path holds 108 bytes with its terminating NUL.
            let hint = if tmp.as_os_str().len() >= 108 {
                "; a Unix socket path must be shorter than 108 bytes — use a shorter --data path"
            } else {
                ""
            };
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot create the admin socket {} ({e}){hint}",
                    tmp.display()
                ),
            )
        })?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, &path)?;
        let id = file_id(&path);
        Ok(AdminSocket {
            listener: Some(listener),
            path,
            id,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The listener, to serve on (once).
    pub fn take_listener(&mut self) -> Option<UnixListener> {
        self.listener.take()
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        if self.id.is_some() && file_id(&self.path) == self.id {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that stops after a newer one replaced its socket (it had
    /// stopped listening, so the newer one found the file stale) leaves
    /// the newer one's socket in place.
    #[tokio::test]
    async fn a_stopping_server_leaves_a_newer_servers_socket() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = AdminSocket::bind(dir.path()).await.unwrap();
        drop(old.take_listener());
        // Past a tick of a coarse change-time clock (a real restart is
        // much later than this).
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let new = AdminSocket::bind(dir.path()).await.unwrap();
        drop(old);
        assert!(
            path(dir.path()).exists(),
            "the newer server's socket is gone"
        );
        assert!(
            tokio::net::UnixStream::connect(path(dir.path()))
                .await
                .is_ok(),
            "the newer server does not answer"
        );
        drop(new);
        assert!(!path(dir.path()).exists());
    }
}
