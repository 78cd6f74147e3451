//! The report: one item per finding, printed as lines or as one JSON document; the worst
//! item decides the exit code.

use std::process::ExitCode;

use serde::Serialize;

use super::Output;

/// Ordered so that the worst status of a report is its maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub(super) fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }

    pub(super) fn exit_code(self) -> ExitCode {
        match self {
            Status::Ok => ExitCode::SUCCESS,
            Status::Warn => ExitCode::from(1),
            Status::Fail => ExitCode::from(2),
        }
    }
}

/// One finding: what was checked, how it stands, what was found, and what to do about it.
#[derive(Debug, Serialize)]
pub(super) struct Item {
    pub(super) item: String,
    pub(super) status: Status,
    pub(super) detail: String,
    pub(super) fix: Option<String>,
}

/// The findings, in the order they were made.
#[derive(Debug, Default)]
pub(super) struct Report {
    pub(super) items: Vec<Item>,
}

impl Report {
    pub(super) fn push(&mut self, status: Status, item: &str, detail: String, fix: Option<String>) {
        self.items.push(Item {
            item: item.to_owned(),
            status,
            detail,
            fix,
        });
    }

    pub(super) fn ok(&mut self, item: &str, detail: impl Into<String>) {
        self.push(Status::Ok, item, detail.into(), None);
    }

    pub(super) fn warn(&mut self, item: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(Status::Warn, item, detail.into(), Some(fix.into()));
    }

    pub(super) fn fail(&mut self, item: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(Status::Fail, item, detail.into(), Some(fix.into()));
    }

    /// Adds the findings of `part`, about many things of one kind: each problem as its own
    /// item, everything fine as one item `item` (described by `summary`), so that a database
    /// with hundreds of tables still reads in a screen.
    pub(super) fn summarize(
        &mut self,
        item: &str,
        part: Report,
        summary: impl FnOnce(&[Item]) -> String,
    ) {
        let (fine, problems): (Vec<Item>, Vec<Item>) = part
            .items
            .into_iter()
            .partition(|item| item.status == Status::Ok);
        if !fine.is_empty() {
            self.ok(item, summary(&fine));
        }
        self.items.extend(problems);
    }

    pub(super) fn status(&self) -> Status {
        self.items
            .iter()
            .map(|item| item.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    pub(super) fn print(&self, output: Output) {
        match output {
            Output::Json => {
                #[derive(Serialize)]
                struct Document<'a> {
                    items: &'a [Item],
                    status: Status,
                }
                let document = Document {
                    items: &self.items,
                    status: self.status(),
                };
                match serde_json::to_string_pretty(&document) {
                    Ok(text) => println!("{text}"),
                    Err(err) => eprintln!("error: writing the report as JSON: {err}"),
                }
            }
            Output::Human => {
                for item in &self.items {
                    let mut line =
                        format!("{:<4}  {}: {}", item.status.label(), item.item, item.detail);
                    if let Some(fix) = &item.fix {
                        line.push_str(" -- fix: ");
                        line.push_str(fix);
                    }
                    println!("{line}");
                }
                let count = |status| self.items.iter().filter(|i| i.status == status).count();
                println!(
                    "{}: {} ok, {} warning(s), {} failure(s)",
                    self.status().label(),
                    count(Status::Ok),
                    count(Status::Warn),
                    count(Status::Fail)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn the_worst_item_decides() {
        let mut report = Report::default();
        assert_eq!(report.status(), Status::Ok);
        report.ok("a", "fine");
        assert_eq!(report.status(), Status::Ok);
        report.warn("b", "meh", "do this");
        assert_eq!(report.status(), Status::Warn);
        report.fail("c", "broken", "do that");
        report.ok("d", "fine");
        assert_eq!(report.status(), Status::Fail);
    }
}
