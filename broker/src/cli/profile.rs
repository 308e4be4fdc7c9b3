//! Profiles: named sets of `brokers`, `http` and `format` in a file, so
//! that `floe --profile prod topic list` needs no flags, as `rpk` profiles.
//!
//! The file is `$FLOE_PROFILES`, else `$XDG_CONFIG_HOME/floe/profiles.toml`,
//! else `~/.config/floe/profiles.toml`, in this subset of TOML:
//!
//! ```toml
//! [prod]
//! brokers = "b1:9092,b2:9092"
//! http = "http://b1:8080"
//! format = "json"
//! ```
//!
//! A flag or its environment variable wins over the profile; the profile
//! over the built-in defaults. Without `--profile` (or `FLOE_PROFILE`), a
//! profile named `default` applies if the file has one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};

/// One profile's settings, by key.
pub type Profile = BTreeMap<String, String>;

/// The keys a profile may set.
const KEYS: &[&str] = &["brokers", "http", "format"];

/// Where the profiles file is.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FLOE_PROFILES") {
        return Some(PathBuf::from(p));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("floe").join("profiles.toml"))
}

/// The profiles of a file's text: `[name]` sections of `key = "value"`
/// lines; `#` starts a comment.
pub fn parse(text: &str) -> anyhow::Result<BTreeMap<String, Profile>> {
    let mut out: BTreeMap<String, Profile> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("line {}: {raw:?}", n + 1);
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().trim_matches('"').to_string();
            out.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .with_context(|| format!("{}: expected key = \"value\"", at()))?;
        let key = key.trim();
        if !KEYS.contains(&key) {
            bail!("{}: unknown key {key:?} (known: {})", at(), KEYS.join(", "));
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(rest) => rest
                .split_once('"')
                .map(|(v, _)| v)
                .with_context(|| format!("{}: unclosed quote", at()))?,
            None => value.split('#').next().unwrap_or_default().trim(),
        };
        let Some(section) = &current else {
            bail!("{}: a setting before any [profile]", at());
        };
        out.entry(section.clone())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }
    Ok(out)
}

/// The profile to apply: `name` (an error if it is not in the file), or
/// `default` if the file has one.
pub fn load(name: Option<&str>) -> anyhow::Result<Profile> {
    let Some(path) = path() else {
        return match name {
            Some(n) => bail!("profile {n}: no profiles file (set FLOE_PROFILES or HOME)"),
            None => Ok(Profile::new()),
        };
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && name.is_none() => {
            return Ok(Profile::new())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut all = parse(&text).with_context(|| format!("in {}", path.display()))?;
    match name {
        Some(n) => all
            .remove(n)
            .with_context(|| format!("{} has no profile [{n}]", path.display())),
        None => Ok(all.remove("default").unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_hold_quoted_and_bare_values() {
        let all = parse(
            "# mine\n[prod]\nbrokers = \"b1:9092,b2:9092\" # two\nformat = json\n\n[\"dev\"]\n",
        )
        .unwrap();
        assert_eq!(all["prod"]["brokers"], "b1:9092,b2:9092");
        assert_eq!(all["prod"]["format"], "json");
        assert!(all["dev"].is_empty());
        assert!(parse("brokers = \"x\"\n").is_err());
        assert!(parse("[p]\ncolour = \"red\"\n").is_err());
        assert!(parse("[p]\nbrokers = \"open\n").is_err());
    }
}
