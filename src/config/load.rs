//! Loading the effective config: defaults, then the file, the environment
//! and the command-line flags in rising precedence, with the source of each
//! value; and the two texts printed from it (`rdask config show`,
//! `rdask config default`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, RdaskConfig, CONFIG_FILE_NAME, ENV_PREFIX, ENV_SEPARATOR, SECTIONS};

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A config file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(v) => write!(f, "env {v}"),
            Source::Flag(x) => write!(f, "flag {x}"),
        }
    }
}

/// A value set on the command line: `section.key`, the value, and the flag's
/// name for messages.
#[derive(Clone, Debug)]
pub struct FlagValue {
    /// Section.
    pub section: &'static str,
    /// Key.
    pub key: &'static str,
    /// Value.
    pub value: toml::Value,
    /// Flag name, e.g. `--port`.
    pub flag: &'static str,
}

impl FlagValue {
    /// A flag setting `section.key`.
    pub fn new(section: &'static str, key: &'static str, flag: &'static str, value: impl Into<toml::Value>) -> Self {
        FlagValue {
            section,
            key,
            value: value.into(),
            flag,
        }
    }
}

/// What a config is loaded from; [`Inputs::from_process`] reads the real
/// process, tests build one by hand.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// `--config FILE`, which must exist.
    pub explicit_file: Option<PathBuf>,
    /// Directory searched for `rdask.toml`.
    pub cwd: PathBuf,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Command-line flags.
    pub flags: Vec<FlagValue>,
}

impl Inputs {
    /// This process's working directory and environment, with the given
    /// `--config` and flags.
    pub fn from_process(explicit_file: Option<PathBuf>, flags: Vec<FlagValue>) -> Self {
        Inputs {
            explicit_file,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            env: std::env::vars().collect(),
            flags,
        }
    }

    fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The config file to read: `--config`, else `./rdask.toml`, else the
    /// user's config directory; None if there is none.
    pub fn config_file(&self) -> Option<PathBuf> {
        if let Some(f) = &self.explicit_file {
            return Some(f.clone());
        }
        let here = self.cwd.join(CONFIG_FILE_NAME);
        if here.is_file() {
            return Some(here);
        }
        let dir = match self.env_var("XDG_CONFIG_HOME") {
            Some(x) => PathBuf::from(x),
            None => PathBuf::from(self.env_var("HOME")?).join(".config"),
        };
        let user = dir.join("rdask").join(CONFIG_FILE_NAME);
        user.is_file().then_some(user)
    }
}

/// An effective config with the source of every value.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The config.
    pub config: RdaskConfig,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// `(section, key)` → where its value came from; keys not listed are
    /// unset optional keys.
    pub sources: BTreeMap<(String, String), Source>,
    /// The merged values, for printing.
    merged: toml::Table,
}

fn default_table() -> toml::Table {
    // Serializing the defaults cannot fail: every field is a plain value.
    toml::Table::try_from(RdaskConfig::default()).unwrap_or_default()
}

/// Checks that a table holding one layer's values deserializes; the message
/// names the key at fault.
fn check_layer(table: &toml::Table) -> Result<(), String> {
    RdaskConfig::deserialize(toml::Value::Table(table.clone()))
        .map(|_| ())
        .map_err(|e| e.to_string().trim().to_string())
}

fn single(section: &str, key: &str, value: toml::Value) -> toml::Table {
    let mut inner = toml::Table::new();
    inner.insert(key.to_string(), value);
    let mut outer = toml::Table::new();
    outer.insert(section.to_string(), toml::Value::Table(inner));
    outer
}

/// Reads an environment value as TOML (`8786`, `true`, `1.5`, `["a"]`,
/// `{ GPU = 2 }`), falling back to a plain string (`127.0.0.1`, `/tmp/x`).
fn env_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Loads the effective config from `inputs`.
pub fn load(inputs: &Inputs) -> Result<Loaded, ConfigError> {
    let mut merged = default_table();
    let mut sources = BTreeMap::new();
    for (section, keys) in SECTIONS {
        for (key, _) in *keys {
            let present = merged
                .get(*section)
                .and_then(|s| s.as_table())
                .is_some_and(|t| t.contains_key(*key));
            if present {
                sources.insert((section.to_string(), key.to_string()), Source::Default);
            }
        }
    }
    let mut set = |section: &str, key: &str, value: toml::Value, source: Source| {
        let entry = merged
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = entry {
            t.insert(key.to_string(), value);
        }
        sources.insert((section.to_string(), key.to_string()), source);
    };

    // File: checked as a whole so toml's message carries line and column.
    let file = inputs.config_file();
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let parse_err = |e: toml::de::Error| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string().trim().to_string(),
        };
        toml::from_str::<RdaskConfig>(&text).map_err(parse_err)?;
        let table = toml::from_str::<toml::Table>(&text).map_err(parse_err)?;
        for (section, values) in table {
            if let toml::Value::Table(values) = values {
                for (key, value) in values {
                    set(&section, &key, value, Source::File(path.clone()));
                }
            }
        }
    }

    // Environment, in name order so the result does not depend on the
    // order the OS lists variables in.
    let mut env: Vec<&(String, String)> = inputs.env.iter().collect();
    env.sort();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        // Variables without a section separator (RDASK_LOG, ...) are not config.
        let Some((section, key)) = rest.split_once(ENV_SEPARATOR) else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let mut value = env_value(raw);
        if let Err(message) = check_layer(&single(&section, &key, value.clone())) {
            // `listen_host = 10` parses as an integer; a string may be meant.
            let as_string = toml::Value::String(raw.clone());
            if check_layer(&single(&section, &key, as_string.clone())).is_ok() {
                value = as_string;
            } else {
                return Err(ConfigError::Env {
                    var: var.clone(),
                    message,
                });
            }
        }
        set(&section, &key, value, Source::Env(var.clone()));
    }

    for f in &inputs.flags {
        check_layer(&single(f.section, f.key, f.value.clone())).map_err(|message| ConfigError::Flag {
            flag: f.flag.to_string(),
            message,
        })?;
        set(f.section, f.key, f.value.clone(), Source::Flag(f.flag.to_string()));
    }

    let config = RdaskConfig::deserialize(toml::Value::Table(merged.clone())).map_err(|e| ConfigError::Flag {
        flag: "(combined config)".into(),
        message: e.to_string(),
    })?;
    Ok(Loaded {
        config,
        file,
        sources,
        merged,
    })
}

/// Writes `key = value` as one TOML line; tables (resources) inline.
fn toml_line(key: &str, value: &toml::Value) -> String {
    // Keys are the config's own identifiers, so they need no quoting;
    // `Value`'s Display writes strings quoted and tables inline.
    format!("{key} = {value}")
}

impl Loaded {
    /// The effective config as TOML, each value followed by a comment saying
    /// where it came from (`rdask config show`).
    pub fn show(&self) -> String {
        let mut out = String::new();
        out.push_str("# Effective rdask configuration.\n");
        match &self.file {
            Some(f) => out.push_str(&format!("# Config file: {}\n", f.display())),
            None => out.push_str("# Config file: none found\n"),
        }
        for (section, keys) in SECTIONS {
            out.push_str(&format!("\n[{section}]\n"));
            let values = self.merged.get(*section).and_then(|v| v.as_table());
            for (key, _) in *keys {
                let value = values.and_then(|t| t.get(*key));
                let source = self.sources.get(&(section.to_string(), key.to_string()));
                match (value, source) {
                    // The token is a secret: show that it is set and where from, not its value.
                    (Some(_), Some(s)) if (*section, *key) == ("security", "token") => {
                        out.push_str(&format!("{key} = \"<redacted>\"  # {s}\n"))
                    }
                    (Some(v), Some(s)) => out.push_str(&format!("{}  # {s}\n", toml_line(key, v))),
                    _ => out.push_str(&format!("# {key} is not set  # default\n")),
                }
            }
        }
        out
    }
}

/// The text of `config/rdask.toml`: every section and key with its doc
/// comment and default, values commented out so the file changes nothing
/// until edited (`rdask config default`).
pub fn default_file_text() -> String {
    let defaults = default_table();
    let mut out = String::from(
        "# rdask configuration: every key with its default (generated by `rdask config default`).\n\
         # Uncomment and edit what you want to change. Precedence: command-line flag >\n\
         # environment variable RDASK_<SECTION>__<KEY> > this file > built-in default.\n\
         # Looked for as --config FILE, else ./rdask.toml, else ~/.config/rdask/rdask.toml.\n",
    );
    for (section, keys) in SECTIONS {
        out.push_str(&format!("\n[{section}]\n"));
        let values = defaults.get(*section).and_then(|v| v.as_table());
        for (key, doc) in *keys {
            for line in doc.lines() {
                out.push_str(&format!("#{line}\n"));
            }
            match values.and_then(|t| t.get(*key)) {
                Some(v) => out.push_str(&format!("# {}\n", toml_line(key, v))),
                None => out.push_str(&format!("# {key} = (unset by default)\n")),
            }
        }
    }
    out
}

/// Loads a config from one TOML file with nothing else applied (no
/// environment, no flags); for tools and tests.
pub fn from_file(path: &Path) -> Result<RdaskConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim().to_string(),
    })
}
