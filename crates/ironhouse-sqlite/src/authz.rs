//! The SQL authorizer: which actions a statement may take (sqlite_rx's
//! `auth_config`). A config maps a permission (OK, DENY, IGNORE) to a set of
//! SQLite action codes; an action gets the first permission whose set holds
//! it, and OK when none does. A custom config **replaces** the default, as
//! in sqlite_rx.
//!
//! [`AuthConfig::default`] is sqlite_rx's `DEFAULT_AUTH_CONFIG`: DELETE and
//! every DROP denied (`sqlite3.DatabaseError: not authorized`), PRAGMA
//! silently ignored, everything else allowed.
//!
//! On the command line (`--auth-config`) a config is JSON, inline or in a
//! file: an object whose keys are permissions (`"0"`/`"OK"`, `"1"`/`"DENY"`,
//! `"2"`/`"IGNORE"`) and whose values are lists of action codes or names
//! (`9` or `"SQLITE_DELETE"` or `"DELETE"`):
//!
//! ```
//! use ironhouse_sqlite::AuthConfig;
//! let cfg = AuthConfig::from_json(r#"{"DENY": ["SQLITE_DELETE", 11], "OK": ["DROP_TABLE"]}"#)?;
//! assert_eq!(cfg.permission(9), rusqlite::hooks::Authorization::Deny);
//! assert_eq!(cfg.permission(18), rusqlite::hooks::Authorization::Allow); // unlisted: OK
//! # Ok::<(), String>(())
//! ```

use rusqlite::hooks::{AuthAction, Authorization};

/// SQLite's action codes, by name (`sqlite3.h`).
pub const ACTIONS: &[(&str, i32)] = &[
    ("CREATE_INDEX", 1),
    ("CREATE_TABLE", 2),
    ("CREATE_TEMP_INDEX", 3),
    ("CREATE_TEMP_TABLE", 4),
    ("CREATE_TEMP_TRIGGER", 5),
    ("CREATE_TEMP_VIEW", 6),
    ("CREATE_TRIGGER", 7),
    ("CREATE_VIEW", 8),
    ("DELETE", 9),
    ("DROP_INDEX", 10),
    ("DROP_TABLE", 11),
    ("DROP_TEMP_INDEX", 12),
    ("DROP_TEMP_TABLE", 13),
    ("DROP_TEMP_TRIGGER", 14),
    ("DROP_TEMP_VIEW", 15),
    ("DROP_TRIGGER", 16),
    ("DROP_VIEW", 17),
    ("INSERT", 18),
    ("PRAGMA", 19),
    ("READ", 20),
    ("SELECT", 21),
    ("TRANSACTION", 22),
    ("UPDATE", 23),
    ("ATTACH", 24),
    ("DETACH", 25),
    ("ALTER_TABLE", 26),
    ("REINDEX", 27),
    ("ANALYZE", 28),
    ("CREATE_VTABLE", 29),
    ("DROP_VTABLE", 30),
    ("FUNCTION", 31),
    ("SAVEPOINT", 32),
    ("RECURSIVE", 33),
];

/// The numeric code of an action.
pub fn action_code(action: &AuthAction<'_>) -> i32 {
    use AuthAction as A;
    match action {
        A::Unknown { code, .. } => *code,
        A::CreateIndex { .. } => 1,
        A::CreateTable { .. } => 2,
        A::CreateTempIndex { .. } => 3,
        A::CreateTempTable { .. } => 4,
        A::CreateTempTrigger { .. } => 5,
        A::CreateTempView { .. } => 6,
        A::CreateTrigger { .. } => 7,
        A::CreateView { .. } => 8,
        A::Delete { .. } => 9,
        A::DropIndex { .. } => 10,
        A::DropTable { .. } => 11,
        A::DropTempIndex { .. } => 12,
        A::DropTempTable { .. } => 13,
        A::DropTempTrigger { .. } => 14,
        A::DropTempView { .. } => 15,
        A::DropTrigger { .. } => 16,
        A::DropView { .. } => 17,
        A::Insert { .. } => 18,
        A::Pragma { .. } => 19,
        A::Read { .. } => 20,
        A::Select => 21,
        A::Transaction { .. } => 22,
        A::Update { .. } => 23,
        A::Attach { .. } => 24,
        A::Detach { .. } => 25,
        A::AlterTable { .. } => 26,
        A::Reindex { .. } => 27,
        A::Analyze { .. } => 28,
        A::CreateVtable { .. } => 29,
        A::DropVtable { .. } => 30,
        A::Function { .. } => 31,
        A::Savepoint { .. } => 32,
        A::Recursive => 33,
        // Variants added by later rusqlite versions: unknown to this table.
        _ => -1,
    }
}

/// Permissions by action, in order (first match wins).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    rules: Vec<(Authorization, Vec<i32>)>,
}

impl Default for AuthConfig {
    /// sqlite_rx's `DEFAULT_AUTH_CONFIG`.
    fn default() -> Self {
        AuthConfig {
            rules: vec![
                (
                    Authorization::Allow,
                    vec![
                        1, 2, 3, 4, 5, 6, 7, 8, 18, 20, 21, 22, 23, 24, 25, 26, 27, 28,
                    ],
                ),
                (Authorization::Deny, vec![9, 10, 11, 12, 13, 14, 15, 16, 17]),
                (Authorization::Ignore, vec![19]),
            ],
        }
    }
}

fn parse_permission(key: &str) -> Result<Authorization, String> {
    match key.trim().to_ascii_uppercase().trim_start_matches("SQLITE_") {
        "0" | "OK" => Ok(Authorization::Allow),
        "1" | "DENY" => Ok(Authorization::Deny),
        "2" | "IGNORE" => Ok(Authorization::Ignore),
        _ => Err(format!(
            "auth config: {key:?} is not a permission; allowed are SQLITE_OK (0), SQLITE_DENY (1), SQLITE_IGNORE (2)"
        )),
    }
}

fn parse_action(v: &serde_json::Value) -> Result<i32, String> {
    match v {
        serde_json::Value::Number(n) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .filter(|n| (1..=33).contains(n))
            .ok_or_else(|| format!("auth config: {n} is not an SQLite action code (1-33)")),
        serde_json::Value::String(s) => {
            let upper = s.trim().to_ascii_uppercase();
            let name = upper.trim_start_matches("SQLITE_");
            ACTIONS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, c)| *c)
                .ok_or_else(|| format!("auth config: {s:?} is not an SQLite action"))
        }
        other => Err(format!("auth config: {other} is not an action")),
    }
}

impl AuthConfig {
    /// A config from rules: (permission, actions), first match wins.
    pub fn new(rules: Vec<(Authorization, Vec<i32>)>) -> Self {
        AuthConfig { rules }
    }

    /// Everything allowed (no authorizer effect).
    pub fn allow_all() -> Self {
        AuthConfig { rules: Vec::new() }
    }

    /// Parses the JSON form (see the module docs). An empty object means the
    /// default, as an empty dict does in sqlite_rx.
    ///
    /// # Errors
    /// Invalid JSON, an unknown permission or action, with what was wrong.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("auth config is not valid JSON: {e}"))?;
        let serde_json::Value::Object(map) = v else {
            return Err("auth config must be a JSON object {permission: [actions]}".into());
        };
        if map.is_empty() {
            return Ok(AuthConfig::default());
        }
        let mut rules = Vec::new();
        for (k, actions) in map {
            let perm = parse_permission(&k)?;
            let serde_json::Value::Array(list) = actions else {
                return Err(format!("auth config: the actions of {k:?} must be a list"));
            };
            let codes = list
                .iter()
                .map(parse_action)
                .collect::<Result<Vec<_>, _>>()?;
            rules.push((perm, codes));
        }
        Ok(AuthConfig { rules })
    }

    /// Reads `--auth-config`: inline JSON if it starts with `{`, else a file.
    ///
    /// # Errors
    /// The file cannot be read, or [`AuthConfig::from_json`] fails.
    pub fn from_arg(arg: &str) -> Result<Self, String> {
        if arg.trim_start().starts_with('{') {
            Self::from_json(arg)
        } else {
            let text = std::fs::read_to_string(arg)
                .map_err(|e| format!("cannot read auth config {arg}: {e}"))?;
            Self::from_json(&text)
        }
    }

    /// The permission for an action code.
    pub fn permission(&self, action: i32) -> Authorization {
        self.rules
            .iter()
            .find(|(_, actions)| actions.contains(&action))
            .map_or(Authorization::Allow, |(p, _)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_sqlite_rx_default() {
        let d = AuthConfig::default();
        assert_eq!(d.permission(9), Authorization::Deny);
        assert_eq!(d.permission(11), Authorization::Deny);
        assert_eq!(d.permission(19), Authorization::Ignore);
        assert_eq!(d.permission(18), Authorization::Allow);
        assert_eq!(d.permission(31), Authorization::Allow);
    }

    #[test]
    fn json_forms() {
        let c = AuthConfig::from_json(r#"{"0": [11]}"#).unwrap();
        assert_eq!(c.permission(11), Authorization::Allow);
        assert_eq!(c.permission(9), Authorization::Allow);
        assert_eq!(c.permission(19), Authorization::Allow);
        assert_eq!(AuthConfig::from_json("{}").unwrap(), AuthConfig::default());
        assert!(AuthConfig::from_json(r#"{"7": [1]}"#)
            .unwrap_err()
            .contains("not a permission"));
        assert!(AuthConfig::from_json(r#"{"OK": ["NOPE"]}"#)
            .unwrap_err()
            .contains("NOPE"));
        assert!(AuthConfig::from_json("[").is_err());
    }
}
