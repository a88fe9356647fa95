//! Path-prefix routing: prefixes match whole path segments, and the guest
//! sees the rest of the path.

use crate::runtime::HostError;

/// `"shop"`, `"/shop/"` → `"/shop"`; `""`, `"/"` → `"/"`. A prefix must be
/// a plain path (no `?`, `#`, `..`).
pub fn normalize_prefix(prefix: &str) -> Result<String, HostError> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.split('/').any(|s| s == "." || s == "..") || prefix.contains(['?', '#', ' ']) {
        return Err(HostError::InvalidMount(prefix.to_string()));
    }
    Ok(format!("/{trimmed}"))
}

/// The path a guest mounted at `prefix` sees for `path`, if it matches.
pub fn strip(prefix: &str, path: &str) -> Option<String> {
    if prefix == "/" {
        return Some(path.to_string());
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some("/".into())
    } else if rest.starts_with('/') {
        Some(rest.to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert_eq!(strip("/shop", "/shop/add"), Some("/add".into()));
        assert_eq!(strip("/shop", "/shop"), Some("/".into()));
        assert_eq!(strip("/shop", "/shopping"), None);
        assert_eq!(strip("/", "/anything"), Some("/anything".into()));
        assert_eq!(normalize_prefix("shop/").unwrap(), "/shop");
        assert_eq!(normalize_prefix("").unwrap(), "/");
        assert!(normalize_prefix("/../x").is_err());
    }
}
