//! The schema registry: reachable, its compatibility rule, and the subjects sluice registers.

use std::time::Duration;

use sluice_avro::{Method, StatusCode, TableCodec};
use sluice_pipeline::catalog::CapturedTable;
use sluice_pipeline::config::Config;
use sluice_pipeline::naming;
use sluice_pipeline::run::topic_of;

use super::report::Report;
use crate::registry::{URL_FIX, Unreachable};

/// Bound on each registry request.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn check_registry(
    config: &Config,
    tables: Option<&[CapturedTable]>,
    report: &mut Report,
) {
    const ITEM: &str = "registry";
    let (registry, listed) =
        match crate::registry::connect(&config.registry.client_config(REGISTRY_TIMEOUT)).await {
            Ok(reached) => reached,
            Err(Unreachable { detail, fix }) => {
                report.fail(ITEM, detail, fix);
                return;
            }
        };
    let base = registry.url().trim_end_matches('/').to_owned();
    let get = |segments: &'static [&'static str]| registry.call(Method::GET, segments, &[], None);

    report.ok(
        ITEM,
        format!("reachable at {base}; {listed} subject(s) listed"),
    );

    const RULE: &str = "registry compatibility";
    let url = format!("{base}/config");
    let rule = match get(&["config"]).await {
        Ok(answer) if answer.status.is_success() => {
            serde_json::from_str::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|value| {
                    ["compatibilityLevel", "compatibility"]
                        .iter()
                        .find_map(|key| value.get(key)?.as_str().map(str::to_owned))
                })
                .ok_or_else(|| format!("GET {url} answered {}", answer.snippet()))
        }
        Ok(answer) => Err(format!(
            "GET {url} answered {}: {}",
            answer.status,
            answer.snippet()
        )),
        Err(err) => Err(err.to_string()),
    };
    match rule {
        Ok(rule) if rule == "NONE" => report.warn(
            RULE,
            "NONE: the registry accepts any schema change, so a column change can break \
             consumers unnoticed",
            format!("set a global rule: PUT {base}/config {{\"compatibility\": \"BACKWARD\"}}"),
        ),
        Ok(rule) => report.ok(RULE, format!("global rule {rule}")),
        Err(err) => report.warn(
            RULE,
            format!("the global rule is not readable: {err}"),
            URL_FIX,
        ),
    }

    let Some(tables) = tables else { return };
    let mut checked = Report::default();
    let (mut compatible, mut new) = (0, 0);
    let type_options = config.events.type_options();
    for table in tables {
        let topic = topic_of(&config.kafka.topic_prefix, table);
        let codec = TableCodec::with_options(&topic, &table.spec, &type_options);
        // As `sluice run` registers them: the row alone in upsert mode, else the envelope.
        let value = if config.events.is_upsert() {
            codec.row_schema()
        } else {
            codec.value_schema()
        };
        for (subject, schema) in [
            (naming::key_subject(&topic), codec.key_schema()),
            (naming::value_subject(&topic), value),
        ] {
            let item = format!("subject {subject}");
            // Asked one by one: a registry lists a limited number of subjects (Apicurio
            // 1000), and Apicurio calls any schema compatible with a subject it lacks.
            let latest = format!("{base}/subjects/{subject}/versions/latest");
            let path = ["subjects", subject.as_str(), "versions", "latest"];
            match registry.call(Method::GET, &path, &[], None).await {
                Ok(answer) if answer.status == StatusCode::NOT_FOUND => {
                    new += 1;
                    continue;
                }
                Ok(answer) if answer.status.is_success() => {}
                Ok(answer) => {
                    checked.warn(
                        &item,
                        format!(
                            "GET {latest} answered {}: {}",
                            answer.status,
                            answer.snippet()
                        ),
                        URL_FIX,
                    );
                    continue;
                }
                Err(err) => {
                    checked.warn(
                        &item,
                        format!("GET {latest} failed: {err}"),
                        "run the check again",
                    );
                    continue;
                }
            }
            let path = [
                "compatibility",
                "subjects",
                subject.as_str(),
                "versions",
                "latest",
            ];
            let body = serde_json::json!({ "schema": schema }).to_string();
            let asked = registry
                .call(Method::POST, &path, &[("verbose", "true")], Some(body))
                .await;
            match asked {
                Ok(answer) if answer.status.is_success() => {
                    let value: serde_json::Value =
                        serde_json::from_str(&answer.body).unwrap_or_default();
                    match value
                        .get("is_compatible")
                        .and_then(serde_json::Value::as_bool)
                    {
                        Some(true) => compatible += 1,
                        Some(false) => {
                            let mut detail = "incompatible: the registry would refuse the schema \
                                              sluice registers for this table now"
                                .to_owned();
                            if let Some(messages) = value
                                .get("messages")
                                .and_then(serde_json::Value::as_array)
                                .filter(|m| !m.is_empty())
                            {
                                let messages: Vec<String> =
                                    messages.iter().map(ToString::to_string).collect();
                                detail.push_str(&format!(" ({})", messages.join("; ")));
                            }
                            checked.fail(
                                &item,
                                detail,
                                format!(
                                    "set the subject's compatibility (PUT {base}/config/{subject}) \
                                     or use another kafka.topic_prefix"
                                ),
                            );
                        }
                        None => checked.warn(
                            &item,
                            format!("the compatibility check answered {}", answer.snippet()),
                            URL_FIX,
                        ),
                    }
                }
                // No such subject (or no version of it) yet.
                Ok(answer) if answer.status == StatusCode::NOT_FOUND => new += 1,
                Ok(answer) => checked.warn(
                    &item,
                    format!(
                        "the compatibility check answered {}: {}",
                        answer.status,
                        answer.snippet()
                    ),
                    URL_FIX,
                ),
                Err(err) => checked.warn(
                    &item,
                    format!("the compatibility check failed: {err}"),
                    "run the check again",
                ),
            }
        }
    }
    // Counted rather than listed: only problems get a line of their own.
    let mut fine = Vec::new();
    if compatible > 0 {
        fine.push(format!(
            "{compatible} registered, and the schemas sluice registers now are compatible"
        ));
    }
    if new > 0 {
        fine.push(format!(
            "{new} not registered yet (sluice will register them)"
        ));
    }
    if !fine.is_empty() {
        report.ok("subjects", fine.join("; "));
    }
    report.items.extend(checked.items);
}
