//! `wasm-state new`: scaffold a guest crate from a template.
//!
//! The templates are the files under `host/templates/{http,command,plugin}/`,
//! embedded in the binary. Their placeholders are `{{name}}` (the crate
//! name), `{{wasm}}` (the stem of the `.wasm` file cargo builds: the name,
//! with `_` for `-` in a cdylib) and `{{sdk_dep}}` (the `wasm-state-sdk`
//! dependency line). `Cargo.toml.tmpl` and `gitignore` are stored under those
//! names so that cargo and git take them for no manifest or ignore file of
//! this repository.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

/// What kind of guest to scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// A wasi:http handler for `wasm-state serve`.
    Http,
    /// A wasi:cli command for `wasm-state run`.
    Command,
    /// A plugin component with its own WIT export, for embedding hosts
    /// (try it with `wasm-state call`).
    Plugin,
}

/// `new` arguments.
#[derive(Debug, Args)]
#[command(after_help = "\
The new directory NAME/ holds a crate with its own [workspace], a README.md, a .gitignore
and a wasm-state.toml manifest; build it with
  cargo build --release --target wasm32-wasip2
The wasm-state-sdk dependency is, unless --sdk-path or --sdk-git says otherwise, the
guest-sdk/ of the wasm-state sources this binary was built from (by path), or if they
are gone https://github.com/wasm-state/wasm-state (by git).")]
pub struct NewArgs {
    /// Name of the crate and directory to create (lowercase letters, digits,
    /// '-' and '_', starting with a letter).
    pub name: String,
    /// What kind of guest.
    #[arg(long, short, value_enum, default_value = "http")]
    pub template: Template,
    /// Depend on the wasm-state-sdk crate in this directory (a wasm-state
    /// checkout's guest-sdk/) by path.
    #[arg(long, value_name = "DIR", conflicts_with = "sdk_git")]
    pub sdk_path: Option<PathBuf>,
    /// Depend on the wasm-state-sdk crate of this git repository.
    #[arg(long, value_name = "URL")]
    pub sdk_git: Option<String>,
}

/// The repository the SDK comes from when its sources are not at hand.
const SDK_GIT: &str = "https://github.com/wasm-state/wasm-state";

/// The longest name accepted.
const MAX_NAME: usize = 64;

/// One file of a template: where it goes in the new crate, and its text.
type File = (&'static str, &'static str);

macro_rules! template {
    ($dir:literal: $($dest:literal <- $src:literal),* $(,)?) => {
        &[$(($dest, include_str!(concat!("../../../templates/", $dir, "/", $src)))),*]
    };
}

const HTTP: &[File] = template!("http":
    "Cargo.toml" <- "Cargo.toml.tmpl",
    "src/main.rs" <- "src/main.rs",
    "README.md" <- "README.md",
    ".gitignore" <- "gitignore",
    "wasm-state.toml" <- "wasm-state.toml",
);

const COMMAND: &[File] = template!("command":
    "Cargo.toml" <- "Cargo.toml.tmpl",
    "src/main.rs" <- "src/main.rs",
    "README.md" <- "README.md",
    ".gitignore" <- "gitignore",
    "wasm-state.toml" <- "wasm-state.toml",
);

const PLUGIN: &[File] = template!("plugin":
    "Cargo.toml" <- "Cargo.toml.tmpl",
    "src/lib.rs" <- "src/lib.rs",
    "wit/plugin.wit" <- "wit/plugin.wit",
    "README.md" <- "README.md",
    ".gitignore" <- "gitignore",
    "wasm-state.toml" <- "wasm-state.toml",
);

impl Template {
    fn files(self) -> &'static [File] {
        match self {
            Template::Http => HTTP,
            Template::Command => COMMAND,
            Template::Plugin => PLUGIN,
        }
    }

    /// The stem of the `.wasm` file cargo builds for crate `name`: a bin
    /// keeps the name, a cdylib has `_` for each `-`.
    fn wasm_stem(self, name: &str) -> String {
        match self {
            Template::Http | Template::Command => name.to_string(),
            Template::Plugin => name.replace('-', "_"),
        }
    }

    /// How to run the built component, from the crate's directory.
    fn run_hint(self, wasm: &str) -> String {
        let path = format!("target/wasm32-wasip2/release/{wasm}.wasm");
        match self {
            Template::Http => {
                "wasm-state serve        # reads wasm-state.toml; then curl http://127.0.0.1:8080/"
                    .into()
            }
            Template::Command => format!("wasm-state run {path}"),
            Template::Plugin => format!("wasm-state call {path} on-event click hello"),
        }
    }
}

/// Write the crate.
pub fn new(a: NewArgs) -> anyhow::Result<()> {
    check_name(&a.name)?;
    let dir = PathBuf::from(&a.name);
    if dir.symlink_metadata().is_ok() {
        bail!(
            "{} already exists in {}; pick another name or remove it first",
            a.name,
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| "the current directory".into())
        );
    }
    let sdk = sdk_dependency(a.sdk_path.as_deref(), a.sdk_git.as_deref())?;
    let wasm = a.template.wasm_stem(&a.name);
    let files: Vec<(&str, String)> = a
        .template
        .files()
        .iter()
        .map(|(dest, text)| (*dest, render(text, &a.name, &wasm, &sdk.line)))
        .collect();

    std::fs::create_dir(&dir).with_context(|| format!("cannot create directory {}", a.name))?;
    if let Err(e) = write_files(&dir, &files) {
        // Leave nothing half-written behind: the directory is ours.
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }

    if let Some(note) = sdk.note {
        eprintln!("note: {note}");
    }
    let kind = match a.template {
        Template::Http => "wasi:http handler",
        Template::Command => "wasi:cli command",
        Template::Plugin => "plugin component",
    };
    println!(
        "Created {kind} `{name}` in {name}/ (wasm-state-sdk {from}). Next:\n  \
         cd {name}\n  \
         cargo build --release --target wasm32-wasip2\n  \
         {run}",
        name = a.name,
        from = sdk.from,
        run = a.template.run_hint(&wasm),
    );
    Ok(())
}

fn write_files(dir: &Path, files: &[(&str, String)]) -> anyhow::Result<()> {
    for (dest, text) in files {
        let path = dir.join(dest);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create directory {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// A template's text with its placeholders filled in.
fn render(text: &str, name: &str, wasm: &str, sdk_dep: &str) -> String {
    text.replace("{{name}}", name)
        .replace("{{wasm}}", wasm)
        .replace("{{sdk_dep}}", sdk_dep)
}

/// Refuse names that are no (portable, unsurprising) crate name.
fn check_name(name: &str) -> anyhow::Result<()> {
    const ALLOWED: &str = "a name is 1 to 64 lowercase ASCII letters, digits, '-' and '_', \
                           starting with a letter, e.g. my-guest";
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok
        || name.len() > MAX_NAME
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        bail!("{name:?} is not a valid crate name here: {ALLOWED}");
    }
    const KEYWORDS: &[&str] = &[
        "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
        "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
        "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub",
        "ref", "return", "self", "static", "struct", "super", "trait", "true", "try", "type",
        "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
    ];
    if KEYWORDS.contains(&name) {
        bail!("{name:?} is a Rust keyword, so no crate name; pick another ({ALLOWED})");
    }
    // Cargo's own names, the standard library's, Windows' device names, and
    // the crates the templates depend on (a crate cannot depend on itself).
    const RESERVED: &[&str] = &[
        "test",
        "build",
        "deps",
        "examples",
        "incremental",
        "std",
        "core",
        "alloc",
        "proc_macro",
        "con",
        "prn",
        "aux",
        "nul",
        "wasm_state_sdk",
        "wit_bindgen",
        "wstd",
        "serde",
        "serde_json",
    ];
    let normalized = name.replace('-', "_");
    let device = |prefix: &str| {
        normalized
            .strip_prefix(prefix)
            .is_some_and(|n| n.len() == 1 && n.as_bytes()[0].is_ascii_digit())
    };
    if RESERVED.contains(&normalized.as_str()) || device("com") || device("lpt") {
        bail!(
            "{name:?} is reserved (by cargo, the standard library, Windows, or a dependency of \
             the template); pick another name"
        );
    }
    Ok(())
}

/// The `wasm-state-sdk = …` line of the new crate's Cargo.toml.
struct SdkDep {
    line: String,
    /// Where it comes from, for the summary.
    from: String,
    /// Something the user should know about the choice.
    note: Option<String>,
}

fn sdk_dependency(path: Option<&Path>, git: Option<&str>) -> anyhow::Result<SdkDep> {
    if let Some(url) = git {
        if url.trim().is_empty() {
            bail!("--sdk-git needs a repository URL, e.g. {SDK_GIT}");
        }
        return Ok(git_dep(url, None));
    }
    if let Some(dir) = path {
        let abs = std::path::absolute(dir)
            .with_context(|| format!("--sdk-path {}: cannot make it absolute", dir.display()))?;
        if !is_sdk(&abs) {
            bail!(
                "--sdk-path {}: there is no Cargo.toml of the wasm-state-sdk crate there; \
                 point it at the guest-sdk directory of a wasm-state checkout",
                dir.display()
            );
        }
        return Ok(path_dep(&abs));
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|root| root.join("guest-sdk"));
    match built_from {
        Some(dir) if is_sdk(&dir) => Ok(path_dep(&dir)),
        _ => Ok(git_dep(
            SDK_GIT,
            Some(format!(
                "the wasm-state SDK sources this binary was built from ({}/../guest-sdk) are \
                 gone, so the crate depends on the SDK from git ({SDK_GIT}); pass --sdk-path \
                 DIR or --sdk-git URL to choose another",
                env!("CARGO_MANIFEST_DIR")
            )),
        )),
    }
}

/// Whether `dir` holds the wasm-state-sdk crate.
fn is_sdk(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .is_ok_and(|manifest| manifest.contains("name = \"wasm-state-sdk\""))
}

fn path_dep(dir: &Path) -> SdkDep {
    // Tidy `host/../guest-sdk`; the path exists, but keep it if that fails.
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let shown = dir.display().to_string();
    // Cargo wants a plain path, not Windows' `\\?\C:\…` form.
    let shown = shown.strip_prefix(r"\\?\").unwrap_or(&shown).to_string();
    SdkDep {
        line: format!("wasm-state-sdk = {{ path = {} }}", toml_string(&shown)),
        from: format!("from {shown}"),
        note: None,
    }
}

fn git_dep(url: &str, note: Option<String>) -> SdkDep {
    SdkDep {
        line: format!("wasm-state-sdk = {{ git = {} }}", toml_string(url)),
        from: format!("from git {url}"),
        note,
    }
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["hello", "my-guest", "my_guest2", "a"] {
            check_name(ok).unwrap();
        }
        for bad in [
            "",
            "My",
            "1st",
            "-x",
            "_x",
            "a b",
            "a/b",
            "../x",
            "é",
            "fn",
            "test",
            "deps",
            "wstd",
            "wasm-state-sdk",
            "com1",
            "nul",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        check_name(&"a".repeat(MAX_NAME)).unwrap();
        assert!(check_name(&"a".repeat(MAX_NAME + 1)).is_err());
        assert!(
            check_name("Hello")
                .unwrap_err()
                .to_string()
                .contains("lowercase")
        );
    }

    #[test]
    fn every_placeholder_is_filled() {
        for t in [Template::Http, Template::Command, Template::Plugin] {
            for (dest, text) in t.files() {
                let out = render(text, "my-guest", &t.wasm_stem("my-guest"), "dep");
                assert!(!out.contains("{{"), "{t:?} {dest}: {out}");
            }
        }
    }

    #[test]
    fn cdylib_names_have_underscores() {
        let manifest = render(
            PLUGIN[0].1,
            "my-guest",
            &Template::Plugin.wasm_stem("my-guest"),
            "",
        );
        assert!(manifest.contains("crate-type = [\"cdylib\"]"));
        let readme = render(PLUGIN[3].1, "my-guest", "my_guest", "");
        assert!(readme.contains("release/my_guest.wasm"), "{readme}");
        let apps = render(HTTP[4].1, "my-guest", "my-guest", "");
        assert!(apps.contains("component = \"target/wasm32-wasip2/release/my-guest.wasm\""));
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"C:\a "b""#), r#""C:\\a \"b\"""#);
    }
}
