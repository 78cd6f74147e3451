//! What the server's PostgreSQL version lacks of what sluice uses, and what follows for the
//! user: a pure verdict from the server's facts and the configuration, for the items
//! `postgres version` and `postgres features`.
//!
//! The list follows what sluice does with each version: `ProtocolChoice::for_server` (pgoutput
//! protocol, streaming, binary, messages), the publication through partition roots, failover
//! slots (`replication.failover`), and the slot's columns `slot::read` takes when they exist.

use super::report::Status;

/// The oldest major sluice runs on: it reads and creates its publication with
/// `publish_via_partition_root` (`pg_publication.pubviaroot`), which came with 13.
pub(super) const MINIMUM_MAJOR: u32 = 13;

/// A server's major from its `server_version_num` (150018 is 15, 90624 is 9).
pub(super) fn major_of(version_num: i32) -> u32 {
    u32::try_from(version_num / 10_000).unwrap_or(0)
}

/// Why sluice cannot run on `major` at all, if it cannot.
pub(super) fn below_minimum(major: u32) -> Option<String> {
    (major < MINIMUM_MAJOR).then(|| {
        format!(
            "sluice needs PostgreSQL {MINIMUM_MAJOR} or later: it publishes partitioned tables \
             through their root (publish_via_partition_root, pg_publication.pubviaroot), \
             which {major} lacks"
        )
    })
}

/// Something sluice uses that came with a PostgreSQL major.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Feature {
    /// `streaming 'on'` (pgoutput protocol 2): in-progress transactions streamed.
    Streaming,
    /// The pgoutput `binary` option.
    Binary,
    /// The pgoutput `messages` option: `pg_logical_emit_message` in the stream.
    Messages,
    /// `streaming 'parallel'` (pgoutput protocol 4).
    ParallelStreaming,
    /// Logical decoding (and so a logical slot) on a physical standby.
    StandbyDecoding,
    /// The `failover` option of a logical slot; `sync_replication_slots` on standbys.
    FailoverSlots,
    /// `pg_replication_slots.invalidation_reason` and `inactive_since`.
    SlotInvalidationReason,
}

impl Feature {
    /// In the order they are named.
    const ALL: [Feature; 7] = [
        Feature::Streaming,
        Feature::Binary,
        Feature::Messages,
        Feature::ParallelStreaming,
        Feature::StandbyDecoding,
        Feature::FailoverSlots,
        Feature::SlotInvalidationReason,
    ];

    /// The major that brought it.
    pub(super) fn since(self) -> u32 {
        match self {
            Feature::Streaming | Feature::Binary | Feature::Messages => 14,
            Feature::ParallelStreaming | Feature::StandbyDecoding => 16,
            Feature::FailoverSlots | Feature::SlotInvalidationReason => 17,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Feature::Streaming => "streaming of large in-progress transactions",
            Feature::Binary => "binary transfer",
            Feature::Messages => "logical decoding messages",
            Feature::ParallelStreaming => "streaming 'parallel'",
            Feature::StandbyDecoding => "logical decoding on a standby",
            Feature::FailoverSlots => "failover slots",
            Feature::SlotInvalidationReason => "pg_replication_slots.invalidation_reason",
        }
    }

    /// What follows for the user on a server without it, under the configuration's `asks`.
    fn without(self, asks: Asks) -> &'static str {
        match self {
            Feature::Streaming => {
                "each transaction is decoded whole on the server (spilling to disk beyond \
                 logical_decoding_work_mem) and reaches sluice only once committed"
            }
            Feature::Binary if asks.binary => {
                "replication.binary = true falls back to text (the same values)"
            }
            Feature::Binary => "values stream as text (as replication.binary = false asks)",
            Feature::Messages if asks.messages => {
                "events.message_prefixes is set, but no message reaches sluice"
            }
            Feature::Messages => "events.message_prefixes cannot capture any",
            Feature::ParallelStreaming => {
                "large transactions stream with streaming 'on' (protocol 2, not 4), whose \
                 stream aborts lack the abort position and time; sluice does not need them, \
                 nothing is lost"
            }
            Feature::StandbyDecoding => "sluice must read from the primary",
            Feature::FailoverSlots if asks.failover => {
                "replication.failover = true asks for one, so sluice refuses to start"
            }
            Feature::FailoverSlots => {
                "sluice's slot exists on this server only (replication.failover needs 17): \
                 after a failover to a standby, sluice needs a new slot and a new snapshot"
            }
            Feature::SlotInvalidationReason => {
                "check and status cannot say why a slot was invalidated (16: only a conflict \
                 with recovery) nor how long it has been unused"
            }
        }
    }
}

/// What `major` lacks of what sluice uses, in the order they are named. `streaming
/// 'parallel'` is named only where streaming exists at all.
pub(super) fn missing(major: u32) -> Vec<Feature> {
    Feature::ALL
        .into_iter()
        .filter(|feature| feature.since() > major)
        .filter(|feature| *feature != Feature::ParallelStreaming || major >= 14)
        .collect()
}

/// What the configuration asks for that a version may lack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Asks {
    /// `replication.binary`.
    pub(super) binary: bool,
    /// `events.message_prefixes` is not empty.
    pub(super) messages: bool,
    /// `replication.heartbeat_interval` is set.
    pub(super) heartbeat: bool,
    /// `replication.failover`.
    pub(super) failover: bool,
}

/// What the server says of itself beyond its version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Role {
    /// `pg_is_in_recovery()`: a physical standby.
    pub(super) standby: bool,
    /// `hot_standby_feedback`.
    pub(super) hot_standby_feedback: bool,
    /// `primary_slot_name`, `None` when empty.
    pub(super) primary_slot_name: Option<String>,
    /// `synchronized_standby_slots` (17 on), `None` when empty or absent.
    pub(super) synchronized_standby_slots: Option<String>,
    /// `idle_replication_slot_timeout` (18 on), `None` when `0` or absent.
    pub(super) idle_slot_timeout: Option<String>,
}

/// The item `postgres features`: its status, detail and fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Verdict {
    pub(super) status: Status,
    pub(super) detail: String,
    pub(super) fix: Option<String>,
}

/// The findings of one verdict: the worst status decides, and the fixes of failures come
/// before those of warnings.
#[derive(Default)]
struct Findings {
    status: Option<Status>,
    details: Vec<String>,
    fixes: Vec<(Status, String)>,
}

impl Findings {
    fn note(&mut self, detail: impl Into<String>) {
        self.add(Status::Ok, detail, None::<String>);
    }

    fn add(&mut self, status: Status, detail: impl Into<String>, fix: Option<impl Into<String>>) {
        self.details.push(detail.into());
        self.raise(status, fix);
    }

    /// A status and fix for something a detail already said.
    fn raise(&mut self, status: Status, fix: Option<impl Into<String>>) {
        self.status = self.status.max(Some(status));
        self.fixes.extend(fix.map(|fix| (status, fix.into())));
    }

    fn verdict(mut self) -> Verdict {
        self.fixes
            .sort_by_key(|(status, _)| std::cmp::Reverse(*status));
        let fixes: Vec<String> = self.fixes.into_iter().map(|(_, fix)| fix).collect();
        Verdict {
            status: self.status.unwrap_or(Status::Ok),
            detail: self.details.join("; "),
            fix: (!fixes.is_empty()).then(|| fixes.join("; ")),
        }
    }
}

/// What a server of `major` (at least [`MINIMUM_MAJOR`]) lacks of what sluice uses, and what
/// the configuration asks of it: OK when sluice loses nothing it needs (the gaps named);
/// WARN for large transactions decoded whole on the server (before 14), or a standby or
/// failover setup missing a safeguard; FAIL for what sluice refuses or cannot do (a failover
/// slot before 17 or on a standby, decoding on a standby before 16).
pub(super) fn verdict(major: u32, role: &Role, asks: Asks) -> Verdict {
    let mut findings = Findings::default();
    let missing = missing(major);
    if missing.is_empty() {
        findings.note(format!(
            "PostgreSQL {major} has all that sluice uses (streaming 'parallel', binary \
             transfer, logical decoding messages, decoding on a standby, failover slots)"
        ));
    } else {
        let gaps: Vec<String> = missing
            .iter()
            .map(|f| format!("{} ({}+): {}", f.name(), f.since(), f.without(asks)))
            .collect();
        let detail = format!("PostgreSQL {major} lacks {}", gaps.join("; "));
        // Without streaming, a large transaction costs the server disk and delays its events
        // (and binary transfer and messages are missing too).
        if missing.contains(&Feature::Streaming) {
            findings.add(
                Status::Warn,
                detail,
                Some(
                    "upgrade to PostgreSQL 14 or later (16 or later to decode on a standby, 17 \
                     or later for failover slots)",
                ),
            );
        } else {
            findings.note(detail);
        }
    }
    failover(major, role, asks, &mut findings);
    if role.standby {
        standby(major, role, asks, &mut findings);
    }
    if let Some(timeout) = &role.idle_slot_timeout {
        findings.note(format!(
            "idle_replication_slot_timeout = {timeout}: a slot unused longer (sluice stopped) \
             is invalidated, and sluice then needs a new snapshot"
        ));
    }
    findings.verdict()
}

/// `replication.failover`, and failover slots where the server has them (a standby's are
/// said with its other findings).
fn failover(major: u32, role: &Role, asks: Asks, findings: &mut Findings) {
    if role.standby {
        return;
    }
    if major < Feature::FailoverSlots.since() {
        if asks.failover {
            // The gap's own words say so.
            findings.raise(
                Status::Fail,
                Some("set replication.failover = false, or upgrade to PostgreSQL 17 or later"),
            );
        }
        return;
    }
    if !asks.failover {
        findings.note(
            "replication.failover = false: sluice's slot is not a failover slot, so after a \
             failover to a standby sluice needs a new slot and a new snapshot",
        );
        return;
    }
    match &role.synchronized_standby_slots {
        Some(slots) => findings.note(format!(
            "replication.failover = true: standbys with sync_replication_slots = on keep a \
             copy of sluice's slot, and sluice receives only what the standbys of \
             synchronized_standby_slots ({slots}) have flushed"
        )),
        None => findings.add(
            Status::Warn,
            "replication.failover = true, but synchronized_standby_slots is empty: sluice may \
             receive changes before a standby does, and a standby promoted then lacks them \
             while Kafka has them",
            Some(
                "on this primary, name the standbys' physical slots: ALTER SYSTEM SET \
                 synchronized_standby_slots = '<slot>'; SELECT pg_reload_conf(); and set \
                 sync_replication_slots = on on the standbys",
            ),
        ),
    }
}

/// A standby: whether sluice can decode here, and the safeguards it needs.
fn standby(major: u32, role: &Role, asks: Asks, findings: &mut Findings) {
    if major < Feature::StandbyDecoding.since() {
        findings.add(
            Status::Fail,
            "this server is a standby (in recovery), and logical decoding on a standby needs \
             PostgreSQL 16",
            Some("point postgres.host at the primary, or upgrade to PostgreSQL 16 or later"),
        );
        return;
    }
    findings.note(
        "this server is a standby (in recovery): sluice decodes here (16+); the publication \
         must be created on the primary, and creating the slot waits for the primary's next \
         snapshot of running transactions (SELECT pg_log_standby_snapshot() there hastens it)",
    );
    if asks.failover {
        findings.add(
            Status::Fail,
            "replication.failover = true, but only a primary (of 17 or later) can have a \
             failover slot: sluice cannot start",
            Some("set replication.failover = false, or point postgres.host at the primary"),
        );
    }
    if !role.hot_standby_feedback {
        findings.add(
            Status::Warn,
            "hot_standby_feedback is off: the primary may remove catalog rows the slot still \
             needs, which invalidates it (a conflict with recovery)",
            Some(
                "on this standby: ALTER SYSTEM SET hot_standby_feedback = on; SELECT \
                 pg_reload_conf()",
            ),
        );
    }
    if role.primary_slot_name.is_none() {
        findings.add(
            Status::Warn,
            "no physical slot between the primary and this standby (primary_slot_name is \
             empty): while the standby is disconnected the primary may remove the WAL and \
             catalog rows it needs",
            Some(
                "create a physical slot on the primary (SELECT \
                 pg_create_physical_replication_slot('<name>')) and set primary_slot_name to it \
                 on this standby",
            ),
        );
    }
    if asks.heartbeat {
        findings.add(
            Status::Warn,
            "replication.heartbeat_interval is set, but a standby cannot write a heartbeat \
             (no WAL is written in recovery): every heartbeat fails",
            Some(
                "unset replication.heartbeat_interval, and emit the messages on the primary \
                 instead (SELECT pg_logical_emit_message(false, 'sluice-heartbeat', ''))",
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary() -> Role {
        Role::default()
    }

    #[test]
    fn the_minimum_is_13() {
        assert_eq!(major_of(150_018), 15);
        assert_eq!(major_of(90_624), 9);
        assert_eq!(major_of(180_004), 18);
        let reason = below_minimum(12).expect("12 is too old");
        assert!(reason.contains("13 or later"), "{reason}");
        assert!(reason.contains("publish_via_partition_root"), "{reason}");
        assert_eq!(below_minimum(13), None);
        assert_eq!(below_minimum(18), None);
    }

    #[test]
    fn each_major_lacks_what_came_after_it() {
        use Feature::*;
        assert_eq!(
            missing(13),
            [
                Streaming,
                Binary,
                Messages,
                StandbyDecoding,
                FailoverSlots,
                SlotInvalidationReason
            ]
        );
        let fourteen = [
            ParallelStreaming,
            StandbyDecoding,
            FailoverSlots,
            SlotInvalidationReason,
        ];
        assert_eq!(missing(14), fourteen);
        assert_eq!(missing(15), fourteen);
        assert_eq!(missing(16), [FailoverSlots, SlotInvalidationReason]);
        assert_eq!(missing(17), []);
        assert_eq!(missing(18), []);
    }

    #[test]
    fn a_primary_of_14_to_18_is_ok_and_names_its_gaps() {
        for major in 14..=18 {
            let verdict = verdict(major, &primary(), Asks::default());
            assert_eq!(verdict.status, Status::Ok, "{major}: {verdict:?}");
            assert_eq!(verdict.fix, None);
        }
        let v14 = verdict(14, &primary(), Asks::default()).detail;
        assert!(
            v14.starts_with(
                "PostgreSQL 14 lacks streaming 'parallel' (16+): large transactions stream \
                 with streaming 'on' (protocol 2, not 4)"
            ),
            "{v14}"
        );
        assert!(
            v14.contains("failover slots (17+): sluice's slot exists on this server only"),
            "{v14}"
        );
        assert!(v14.contains("logical decoding on a standby (16+)"), "{v14}");
        let v16 = verdict(16, &primary(), Asks::default()).detail;
        assert!(
            !v16.contains("parallel") && !v16.contains("on a standby (16+)"),
            "{v16}"
        );
        assert!(v16.contains("failover slots (17+)"), "{v16}");
        let v18 = verdict(18, &primary(), Asks::default()).detail;
        assert!(
            v18.starts_with("PostgreSQL 18 has all that sluice uses"),
            "{v18}"
        );
        assert!(!v18.contains("lacks"), "{v18}");
        assert!(v18.contains("replication.failover = false"), "{v18}");
    }

    #[test]
    fn before_14_large_transactions_warn_and_unavailable_asks_are_named() {
        let plain = verdict(13, &primary(), Asks::default());
        assert_eq!(plain.status, Status::Warn);
        assert!(
            plain.detail.contains("decoded whole on the server"),
            "{plain:?}"
        );
        assert!(plain.fix.unwrap().contains("PostgreSQL 14 or later"));
        let asks = Asks {
            binary: true,
            messages: true,
            ..Asks::default()
        };
        let asked = verdict(13, &primary(), asks);
        assert_eq!(asked.status, Status::Warn);
        assert!(asked.detail.contains("falls back to text"), "{asked:?}");
        assert!(
            asked.detail.contains("no message reaches sluice"),
            "{asked:?}"
        );
        // From 14 on, they are simply there.
        let fine = verdict(14, &primary(), asks);
        assert!(!fine.detail.contains("text") && !fine.detail.contains("message"));
    }

    #[test]
    fn failover_before_17_fails_and_from_17_wants_synchronized_standby_slots() {
        let asks = Asks {
            failover: true,
            ..Asks::default()
        };
        for major in [13, 14, 16] {
            let verdict = verdict(major, &primary(), asks);
            assert_eq!(verdict.status, Status::Fail, "{major}");
            assert!(
                verdict.detail.contains(
                    "failover slots (17+): replication.failover = true asks for one, so sluice \
                     refuses to start"
                ),
                "{verdict:?}"
            );
            assert!(
                verdict
                    .fix
                    .unwrap()
                    .contains("replication.failover = false")
            );
        }
        let unsynced = verdict(17, &primary(), asks);
        assert_eq!(unsynced.status, Status::Warn);
        assert!(unsynced.fix.unwrap().contains("synchronized_standby_slots"));
        let synced = Role {
            synchronized_standby_slots: Some("standby1".to_owned()),
            ..primary()
        };
        let ok = verdict(18, &synced, asks);
        assert_eq!(ok.status, Status::Ok, "{ok:?}");
        assert!(ok.detail.contains("(standby1) have flushed"), "{ok:?}");
    }

    #[test]
    fn a_standby_before_16_fails_and_from_16_needs_its_safeguards() {
        let bare = Role {
            standby: true,
            ..Role::default()
        };
        let old = verdict(15, &bare, Asks::default());
        assert_eq!(old.status, Status::Fail);
        assert!(old.detail.contains("needs PostgreSQL 16"), "{old:?}");
        assert!(old.fix.unwrap().contains("the primary"));

        let unguarded = verdict(16, &bare, Asks::default());
        assert_eq!(unguarded.status, Status::Warn);
        assert!(
            unguarded.detail.contains("sluice decodes here"),
            "{unguarded:?}"
        );
        let fix = unguarded.fix.unwrap();
        assert!(fix.contains("hot_standby_feedback = on") && fix.contains("primary_slot_name"));

        let guarded = Role {
            standby: true,
            hot_standby_feedback: true,
            primary_slot_name: Some("s1".to_owned()),
            ..Role::default()
        };
        assert_eq!(verdict(17, &guarded, Asks::default()).status, Status::Ok);
        let heartbeat = Asks {
            heartbeat: true,
            ..Asks::default()
        };
        assert_eq!(verdict(17, &guarded, heartbeat).status, Status::Warn);
        let failover = Asks {
            failover: true,
            ..Asks::default()
        };
        let refused = verdict(17, &guarded, failover);
        assert_eq!(refused.status, Status::Fail);
        assert!(refused.detail.contains("only a primary"), "{refused:?}");
    }

    #[test]
    fn an_idle_slot_timeout_is_named() {
        let role = Role {
            idle_slot_timeout: Some("1d".to_owned()),
            ..primary()
        };
        let verdict = verdict(18, &role, Asks::default());
        assert_eq!(verdict.status, Status::Ok);
        assert!(
            verdict
                .detail
                .contains("idle_replication_slot_timeout = 1d")
        );
    }
}
