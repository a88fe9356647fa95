//! Compiled components cached on disk, so a restart (or a redeploy of the
//! same bytes) does not compile again.
//!
//! An entry is named after the SHA-256 of the component's bytes and of the
//! engine's compatibility hash (wasmtime's version and every setting that
//! changes generated code), and holds a header (magic, SHA-256 of the
//! payload) before wasmtime's serialized artifact. An entry is loaded only
//! when its checksum matches and wasmtime accepts it for this engine;
//! anything else — truncated, corrupt, from another wasmtime or another
//! configuration — is removed and compiled afresh. The directory belongs to
//! the data dir's owner (as the state does): whoever can write it can
//! already change what runs. Deleting it at any time is safe.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"WSCWASM1";
/// Entries kept; older ones (by modification time) are removed.
const MAX_ENTRIES: usize = 128;

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the cache.
    Hit,
    /// Compiled (and stored, if the cache is writable).
    Compiled,
    /// Compiled: the entry found was corrupt or foreign, and was replaced.
    Rebuilt,
}

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ComponentCache {
    /// A cache in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ComponentCache { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry file of `wasm` compiled by `engine`.
    pub fn entry(&self, engine: &Engine, wasm: &[u8]) -> PathBuf {
        let mut h = ShaHasher(Sha256::new());
        h.write(&Sha256::digest(wasm));
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{}.cwasm", hex(&h.0.finalize())))
    }

    /// The compiled component: from the cache when a valid entry exists,
    /// else compiled and stored. Blocking (compiles, reads and writes
    /// files): call from a blocking thread.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.entry(engine, wasm);
        let mut outcome = CacheOutcome::Compiled;
        if let Ok(bytes) = std::fs::read(&path) {
            match Self::verified(&bytes) {
                Some(payload) => {
                    // SAFETY: the payload is what `Component::serialize` wrote
                    // for this engine's configuration (named by its
                    // compatibility hash, checksummed); wasmtime checks its
                    // own header and version again.
                    match unsafe { Component::deserialize(engine, payload) } {
                        Ok(c) => return Ok((c, CacheOutcome::Hit)),
                        Err(e) => tracing::warn!(
                            entry = %path.display(), error = %e,
                            "ignoring a compiled component wasmtime refused; compiling again"
                        ),
                    }
                }
                None => tracing::warn!(
                    entry = %path.display(),
                    "ignoring a corrupt compiled component; compiling again"
                ),
            }
            let _ = std::fs::remove_file(&path);
            outcome = CacheOutcome::Rebuilt;
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot cache a compiled component");
        }
        Ok((component, outcome))
    }

    fn verified(bytes: &[u8]) -> Option<&[u8]> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let (sum, payload) = rest.split_at_checked(32)?;
        (Sha256::digest(payload).as_slice() == sum).then_some(payload)
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let payload = component.serialize()?;
        std::fs::create_dir_all(&self.dir)?;
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&Sha256::digest(&payload));
        file.extend_from_slice(&payload);
        // Write then rename: a reader never sees half an entry.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &file)?;
        std::fs::rename(&tmp, path)?;
        self.prune();
        Ok(())
    }

    /// Keep the newest [`MAX_ENTRIES`] entries.
    fn prune(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = dir
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if entries.len() <= MAX_ENTRIES {
            return;
        }
        entries.sort();
        for (_, p) in &entries[..entries.len() - MAX_ENTRIES] {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAT: &str = r#"(component
        (core module $m (func (export "f") (result i32) i32.const 7))
        (core instance $i (instantiate $m))
        (func (export "f") (result u32) (canon lift (core func $i "f"))))"#;

    #[test]
    fn hits_after_a_compile_and_rebuilds_corrupt_or_foreign_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ComponentCache::new(dir.path());
        let engine = Engine::default();
        let (_, o) = cache.load_or_compile(&engine, WAT.as_bytes()).unwrap();
        assert_eq!(o, CacheOutcome::Compiled);
        let (_, o) = cache.load_or_compile(&engine, WAT.as_bytes()).unwrap();
        assert_eq!(o, CacheOutcome::Hit);

        // Flip a byte of the payload: the checksum refuses it.
        let path = cache.entry(&engine, WAT.as_bytes());
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, o) = cache.load_or_compile(&engine, WAT.as_bytes()).unwrap();
        assert_eq!(o, CacheOutcome::Rebuilt);
        assert_eq!(
            cache.load_or_compile(&engine, WAT.as_bytes()).unwrap().1,
            CacheOutcome::Hit
        );

        // A checksummed entry that is not wasmtime's: wasmtime refuses it.
        let mut foreign = MAGIC.to_vec();
        foreign.extend_from_slice(&Sha256::digest(b"not a cwasm"));
        foreign.extend_from_slice(b"not a cwasm");
        std::fs::write(&path, &foreign).unwrap();
        assert_eq!(
            cache.load_or_compile(&engine, WAT.as_bytes()).unwrap().1,
            CacheOutcome::Rebuilt
        );

        // Another configuration names another entry.
        let mut c = wasmtime::Config::new();
        c.epoch_interruption(true);
        let other = Engine::new(&c).unwrap();
        assert_ne!(cache.entry(&other, WAT.as_bytes()), path);
        assert_eq!(
            cache.load_or_compile(&other, WAT.as_bytes()).unwrap().1,
            CacheOutcome::Compiled
        );
    }
}
