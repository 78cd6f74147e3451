//! `[tables]`: which tables are captured, by `schema.table` patterns.

use std::fmt;

use globset::{GlobBuilder, GlobMatcher};
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
/// (possibly empty); every other character stands for itself.
///
/// The parts are matched separately, so `*` never spans the dot, and case-sensitively, as
/// PostgreSQL stores the names.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct TablePattern {
    schema: Part,
    table: Part,
}

/// One side of the dot: as written, and compiled.
#[derive(Clone)]
struct Part {
    text: String,
    matcher: GlobMatcher,
}

impl Part {
    fn new(text: &str) -> Result<Self, globset::Error> {
        // Only `*` is a wildcard here: globset's other syntax (`?`, `[...]`, `{a,b}`, `\`)
        // is escaped, since PostgreSQL names may contain any of those characters.
        let glob = text
            .split('*')
            .map(globset::escape)
            .collect::<Vec<_>>()
            .join("*");
        let matcher = GlobBuilder::new(&glob)
            .literal_separator(false)
            .backslash_escape(false)
            .build()?
            .compile_matcher();
        Ok(Part {
            text: text.to_owned(),
            matcher,
        })
    }

    fn matches(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }
}

impl TablePattern {
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        self.schema.matches(schema) && self.table.matches(table)
    }
}

impl PartialEq for TablePattern {
    fn eq(&self, other: &Self) -> bool {
        self.schema.text == other.schema.text && self.table.text == other.table.text
    }
}

impl Eq for TablePattern {}

// As written: the compiled matcher is no help in a log line.
impl fmt::Debug for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TablePattern")
            .field(&self.to_string())
            .finish()
    }
}

impl std::str::FromStr for TablePattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid =
            || format!("invalid table pattern {s:?}: expected schema.table, e.g. \"public.*\"");
        let mut parts = s.split('.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(schema), Some(table), None) if !schema.is_empty() && !table.is_empty() => {
                let compile =
                    |part| Part::new(part).map_err(|error| format!("{}: {error}", invalid()));
                Ok(TablePattern {
                    schema: compile(schema)?,
                    table: compile(table)?,
                })
            }
            _ => Err(invalid()),
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
        write!(f, "{}.{}", self.schema.text, self.table.text)
    }
}

fn default_include() -> Vec<TablePattern> {
    vec!["public.*".parse().expect("a valid pattern")]
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

    #[test]
    fn only_the_star_is_a_wildcard() {
        // PostgreSQL names may hold glob syntax; here it stands for itself.
        let p = |s: &str| s.parse::<TablePattern>().unwrap();
        assert!(p("public.a?c").matches("public", "a?c"));
        assert!(!p("public.a?c").matches("public", "abc"));
        assert!(p("public.[ab]*").matches("public", "[ab]x"));
        assert!(!p("public.[ab]*").matches("public", "ax"));
        assert!(p("public.{a,b}").matches("public", "{a,b}"));
        assert!(!p("public.{a,b}").matches("public", "a"));
        assert!(p(r"public.a\*").matches("public", r"a\bc"));
        assert!(p("we/ird.a/*").matches("we/ird", "a/b/c"));
        assert_eq!(p("public.[x]").to_string(), "public.[x]");
        assert_eq!(format!("{:?}", p("public.*")), "TablePattern(\"public.*\")");
    }
}
