//! `[tables]`: which tables are captured, by `schema.table` patterns.

use std::fmt;

use serde::Deserialize;

/// `[tables]`: which tables are captured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablesSection {
    #[serde(default = "default_include")]
    pub include: Vec<TablePattern>,
    #[serde(default)]
    pub exclude: Vec<TablePattern>,
    /// Capture tables without a primary key or replica identity (their events have no key).
    #[serde(default)]
    pub allow_keyless: bool,
}

impl TablesSection {
    /// Whether `schema.table` is captured: some include pattern matches it and no exclude
    /// pattern does.
    pub fn selects(&self, schema: &str, table: &str) -> bool {
        self.include.iter().any(|p| p.matches(schema, table))
            && !self.exclude.iter().any(|p| p.matches(schema, table))
    }
}

impl Default for TablesSection {
    fn default() -> Self {
        TablesSection {
            include: default_include(),
            exclude: Vec::new(),
            allow_keyless: false,
        }
    }
}

/// `schema.table`, either part with `*` wildcards, each matching any run of characters
/// (possibly empty).
///
/// The parts are matched separately, so `*` never spans the dot, and case-sensitively, as
/// PostgreSQL stores the names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TablePattern {
    schema: String,
    table: String,
}

impl TablePattern {
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        glob(self.schema.as_bytes(), schema.as_bytes())
            && glob(self.table.as_bytes(), table.as_bytes())
    }
}

impl std::str::FromStr for TablePattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(schema), Some(table), None) if !schema.is_empty() && !table.is_empty() => {
                Ok(TablePattern {
                    schema: schema.to_owned(),
                    table: table.to_owned(),
                })
            }
            _ => Err(format!(
                "invalid table pattern {s:?}: expected schema.table, e.g. \"public.*\""
            )),
        }
    }
}

impl TryFrom<String> for TablePattern {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// `*`-only glob over bytes. Byte-wise is safe for UTF-8: a literal run can only match where a
/// character starts, since no character's encoding begins with a continuation byte.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was seen, and where in `text` it currently stops: on a mismatch the
    // star swallows one more byte and matching resumes after it.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                backtrack = Some((p, t));
            }
            Some(&c) if text.get(t) == Some(&c) => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star_p, star_t)) => {
                    p = star_p;
                    t = star_t + 1;
                    backtrack = Some((star_p, t));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

fn default_include() -> Vec<TablePattern> {
    vec![TablePattern {
        schema: "public".to_owned(),
        table: "*".to_owned(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_patterns() {
        let p = |s: &str| s.parse::<TablePattern>().unwrap();
        assert!(p("public.*").matches("public", "orders"));
        assert!(p("public.*").matches("public", ""));
        assert!(!p("public.*").matches("sales", "orders"));
        assert!(p("*.orders").matches("sales", "orders"));
        assert!(p("public.order*").matches("public", "orders"));
        assert!(p("public.order*").matches("public", "order"));
        assert!(!p("public.order*").matches("public", "porder"));
        assert!(p("public.*_log").matches("public", "audit_log"));
        assert!(!p("public.*_log").matches("public", "audit_logs"));
        assert!(p("public.a*b*c").matches("public", "aXbYbZc"));
        assert!(!p("public.a*b*c").matches("public", "aXbYcZ"));
        assert!(p("*.*").matches("any", "thing"));
        assert!(p("p*c.**").matches("public", "x"));
        // Case-sensitive, and the parts are matched separately.
        assert!(!p("public.orders").matches("public", "Orders"));
        assert!(!p("*.b").matches("a.b", "c"));
        assert!(p("public.zähler*").matches("public", "zähler_2024"));
        assert_eq!(p("sales.order*").to_string(), "sales.order*");
        for bad in ["public", "a.b.c", ".orders", "public.", ""] {
            assert!(bad.parse::<TablePattern>().is_err(), "{bad}");
        }

        let tables = TablesSection {
            include: vec![p("public.*"), p("sales.orders")],
            exclude: vec![p("public.tmp_*"), p("*.secrets")],
            allow_keyless: false,
        };
        assert!(tables.selects("public", "customers"));
        assert!(tables.selects("sales", "orders"));
        assert!(!tables.selects("sales", "invoices"));
        assert!(!tables.selects("public", "tmp_import"));
        assert!(!tables.selects("public", "secrets"));
    }
}
