//! The loader end to end: files and variables in, a checked configuration or an error naming
//! the key out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;
use sluice_postgres::{Host, SslMode};
use toml::Table;

use super::fixture::{MINIMAL, TempFile, minimal};
use super::keys::{PRODUCER, env_var_for, known_keys};
use super::*;

/// Every `(section, key)` serde knows.
fn every_key() -> impl Iterator<Item = (&'static str, &'static str)> {
    known_keys(None).iter().flat_map(|section| {
        known_keys(Some(section))
            .iter()
            .map(move |key| (*section, *key))
    })
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load_str(name: &str, toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let file = TempFile::new(name, toml);
    load(Some(&file.0), env(vars))
}

fn error_str(name: &str, toml: &str, vars: &[(&str, &str)]) -> String {
    load_str(name, toml, vars).unwrap_err().to_string()
}

#[test]
fn defaults() {
    let config = minimal();
    let pg = &config.postgres;
    assert_eq!(pg.host, "127.0.0.1");
    assert_eq!(pg.port, 5432);
    assert_eq!(pg.database, "app");
    assert_eq!(pg.user, "cdc");
    assert_eq!(pg.password, None);
    assert_eq!(pg.password_file, None);
    assert_eq!(pg.sslmode, SslMode::Prefer);
    assert_eq!(pg.sslrootcert, None);
    assert_eq!(pg.connect_timeout, Duration::from_secs(10));
    assert!(!pg.is_unix_socket());
    assert_eq!(config.replication, ReplicationSection::default());
    assert_eq!(config.replication.slot, "sluice");
    assert_eq!(config.replication.publication, "sluice");
    assert!(config.replication.create_publication);
    assert!(!config.replication.binary);
    assert_eq!(config.replication.status_interval, Duration::from_secs(1));
    assert_eq!(config.replication.streamed_memory_mib, 64);
    assert_eq!(config.replication.heartbeat_interval, None);
    assert_eq!(config.replication.streamed_memory_bytes(), 64 << 20);
    assert_eq!(config.tables.include, vec!["public.*".parse().unwrap()]);
    assert!(config.tables.exclude.is_empty());
    assert!(!config.tables.allow_keyless);
    assert_eq!(config.snapshot.mode, SnapshotMode::Initial);
    assert_eq!(config.snapshot.parallelism, 2);
    assert_eq!(config.snapshot.chunk_rows, 100_000);
    assert_eq!(config.kafka.bootstrap_servers, "broker:9092");
    assert_eq!(config.kafka.topic_prefix, "shop");
    assert_eq!(config.kafka.partitions, 3);
    assert_eq!(config.kafka.replication_factor, 1);
    assert_eq!(config.kafka.compression, Compression::Lz4);
    assert!(config.kafka.producer.is_empty());
    assert_eq!(config.registry.url, "http://registry:8081");
    assert_eq!(config.registry.username, None);
    assert_eq!(config.registry.password, None);
    assert_eq!(config.registry.compatibility, None);
    assert_eq!(config.events.mode, EventsMode::Debezium);
    assert!(config.events.tombstones);
    assert_eq!(config.events.key_change, KeyChange::DeleteCreate);
    assert_eq!(config.shutdown.drain_timeout, Duration::from_secs(30));
    assert_eq!(config.metrics.bind, "127.0.0.1:9187".parse().unwrap());
    assert!(config.metrics.enabled);
}

#[test]
fn only_environment() {
    let config = load(
        None,
        env(&[
            ("SLUICE_POSTGRES__DATABASE", "app"),
            ("SLUICE_POSTGRES__USER", "cdc"),
            ("SLUICE_KAFKA__BOOTSTRAP_SERVERS", "broker:9092"),
            ("SLUICE_KAFKA__TOPIC_PREFIX", "shop"),
            ("SLUICE_REGISTRY__URL", "https://registry"),
        ]),
    )
    .unwrap();
    assert_eq!(config.postgres.database, "app");
    assert_eq!(config.registry.url, "https://registry");
}

const FULL: &str = r#"
        [postgres]
        host = "/var/run/postgresql"
        port = 6432
        database = "app"
        user = "cdc"
        password = "hunter2-secret"
        sslmode = "verify-full"
        sslrootcert = "/etc/ssl/pg-ca.pem"
        connect_timeout = "2s 500ms"
        hosts = ["pg-a:6433", "pg-b", "[::1]:6434"]

        [replication]
        slot = "shop_cdc_1"
        publication = "shop_pub"
        create_publication = false
        binary = true
        status_interval = "250ms"
        streamed_memory_mib = 128
        heartbeat_interval = "30s"
        retained_wal_warn_mib = 2048
        reconnect_timeout = "90s"
        failover = true

        [tables]
        include = ["public.*", "sales.order*"]
        exclude = ["public.tmp_*"]
        allow_keyless = true

        [snapshot]
        mode = "never"
        parallelism = 8
        chunk_rows = 5000
        incremental_chunk_rows = 1000
        progress_interval = "2s"

        [kafka]
        bootstrap_servers = "k1:9092,k2:9092"
        topic_prefix = "shop.prod-1"
        partitions = 12
        replication_factor = 3
        compression = "zstd"

        [kafka.producer]
        linger.ms = 20
        "batch.size" = "131072"
        "socket.keepalive.enable" = true
        "sasl.password" = "kafka-secret"

        [registry]
        url = "https://registry.example:8081/apis/ccompat/v7"
        username = "sr-user"
        password = "registry-secret"
        ca_file = "/etc/sluice/registry-ca.pem"
        cert_file = "/etc/sluice/registry-client.pem"
        key_file = "/etc/sluice/registry-client.key"
        compatibility = "FULL_TRANSITIVE"

        [events]
        mode = "upsert"
        tombstones = false
        key_change = "delete_create"
        truncate = true
        message_prefixes = ["audit", "app."]
        numeric = "string"
        time_precision = "microseconds"
        hstore = "map"
        transactions = true
        unchanged_placeholder = "<unchanged>"

        [shutdown]
        drain_timeout = "1m"

        [metrics]
        bind = "0.0.0.0:9000"
        enabled = false
    "#;

#[test]
fn full_file() {
    let config = load_str("full.toml", FULL, &[]).unwrap();
    let pg = &config.postgres;
    assert_eq!(pg.host, "/var/run/postgresql");
    assert!(pg.is_unix_socket());
    assert_eq!(pg.port, 6432);
    assert_eq!(pg.password.as_ref().unwrap().expose(), "hunter2-secret");
    assert_eq!(pg.sslmode, SslMode::VerifyFull);
    assert_eq!(pg.sslrootcert, Some(PathBuf::from("/etc/ssl/pg-ca.pem")));
    assert_eq!(pg.connect_timeout, Duration::from_millis(2500));
    let candidates: Vec<(String, u16)> = pg
        .candidates()
        .unwrap()
        .into_iter()
        .map(|c| (c.host, c.port))
        .collect();
    assert_eq!(
        candidates,
        [
            ("pg-a".to_owned(), 6433),
            ("pg-b".to_owned(), 6432),
            ("::1".to_owned(), 6434)
        ]
    );
    let connect = pg.connect_config();
    assert_eq!(
        connect.host,
        Host::UnixSocketDir(PathBuf::from("/var/run/postgresql"))
    );
    assert_eq!(
        connect.password.as_ref().map(ExposeSecret::expose_secret),
        Some("hunter2-secret")
    );
    assert_eq!(connect.sslmode, SslMode::VerifyFull);

    let rep = &config.replication;
    assert_eq!(rep.slot, "shop_cdc_1");
    assert_eq!(rep.publication, "shop_pub");
    assert!(!rep.create_publication);
    assert!(rep.binary);
    assert_eq!(rep.status_interval, Duration::from_millis(250));
    assert_eq!(rep.streamed_memory_mib, 128);
    assert_eq!(rep.heartbeat_interval, Some(Duration::from_secs(30)));
    assert_eq!(rep.retained_wal_warn_mib, 2048);
    assert_eq!(rep.reconnect_timeout, Duration::from_secs(90));
    assert!(rep.failover);

    assert_eq!(config.tables.include.len(), 2);
    assert_eq!(config.tables.exclude[0].to_string(), "public.tmp_*");
    assert!(config.tables.allow_keyless);
    assert_eq!(config.snapshot.mode, SnapshotMode::Never);
    assert_eq!(config.snapshot.parallelism, 8);
    assert_eq!(config.snapshot.chunk_rows, 5000);
    assert_eq!(config.snapshot.incremental_chunk_rows, 1000);

    let kafka = &config.kafka;
    assert_eq!(kafka.bootstrap_servers, "k1:9092,k2:9092");
    assert_eq!(kafka.topic_prefix, "shop.prod-1");
    assert_eq!(kafka.partitions, 12);
    assert_eq!(kafka.replication_factor, 3);
    assert_eq!(kafka.compression, Compression::Zstd);
    // Dotted keys are flattened; numbers and booleans become strings.
    assert_eq!(kafka.producer.get("linger.ms"), Some("20"));
    assert_eq!(kafka.producer.get("batch.size"), Some("131072"));
    assert_eq!(kafka.producer.get("socket.keepalive.enable"), Some("true"));
    assert_eq!(kafka.producer.len(), 4);

    let registry = &config.registry;
    assert_eq!(registry.username.as_deref(), Some("sr-user"));
    assert_eq!(
        registry.password.as_ref().unwrap().expose(),
        "registry-secret"
    );
    assert_eq!(registry.compatibility, Some(Compatibility::FullTransitive));
    let client = registry.client_config(Duration::from_secs(5));
    match &client.auth {
        sluice_avro::RegistryAuth::Basic { username, password } => {
            assert_eq!(username, "sr-user");
            assert_eq!(password.expose_secret(), "registry-secret");
        }
        other => panic!("{other:?}"),
    }

    assert_eq!(config.events.mode, EventsMode::Upsert);
    assert!(!config.events.tombstones);
    assert!(config.events.truncate);
    assert_eq!(
        config.events.time_precision,
        TimePrecisionHandling::Microseconds
    );
    assert_eq!(config.events.hstore, HstoreHandling::Map);
    assert_eq!(config.shutdown.drain_timeout, Duration::from_secs(60));
    assert_eq!(config.metrics.bind, "0.0.0.0:9000".parse().unwrap());
    assert!(!config.metrics.enabled);
}

#[test]
fn full_file_sets_every_key() {
    // The file exercises every key serde knows but the password files, which exclude the
    // passwords (password_file_is_read_and_trimmed), and the registry's token, which excludes
    // basic auth (registry_tls_and_a_bearer_token_reach_the_client).
    let table: Table = FULL.parse().unwrap();
    let excluded = ["password_file", "token", "token_file"];
    let mut count = 0;
    for (section, key) in every_key().filter(|(_, key)| !excluded.contains(key)) {
        assert!(
            table.get(section).and_then(|s| s.get(key)).is_some(),
            "{section}.{key} missing from FULL"
        );
        count += 1;
    }
    assert_eq!(count, 53);
}

#[test]
fn environment_overrides_each_kind() {
    let config = load_str(
        "env.toml",
        MINIMAL,
        &[
            ("SLUICE_POSTGRES__HOST", "db.internal"),
            ("SLUICE_POSTGRES__PORT", "6543"),
            ("SLUICE_REPLICATION__BINARY", "true"),
            (
                "SLUICE_TABLES__INCLUDE",
                r#"["inventory.*", "public.orders"]"#,
            ),
            ("SLUICE_KAFKA__PRODUCER__LINGER_MS", "5"),
            ("SLUICE_KAFKA__PRODUCER__QUEUE_BUFFERING_MAX_KBYTES", "2048"),
            ("SLUICE_POSTGRES__CONNECT_TIMEOUT", "3s"),
            ("SLUICE_SNAPSHOT__MODE", "never"),
            // String keys keep their text even when it reads as a number or boolean…
            ("SLUICE_POSTGRES__PASSWORD", "123456"),
            ("SLUICE_POSTGRES__DATABASE", "true"),
            // …and a quoted TOML string is unquoted.
            ("SLUICE_POSTGRES__USER", r#""cdc user""#),
            // Overrides the file's value.
            ("SLUICE_KAFKA__TOPIC_PREFIX", "other"),
        ],
    )
    .unwrap();
    assert_eq!(config.postgres.host, "db.internal");
    assert_eq!(config.postgres.port, 6543);
    assert!(config.replication.binary);
    assert!(config.tables.selects("inventory", "items"));
    assert!(config.tables.selects("public", "orders"));
    assert!(!config.tables.selects("public", "customers"));
    assert_eq!(config.kafka.producer.get("linger.ms"), Some("5"));
    assert_eq!(
        config.kafka.producer.get("queue.buffering.max.kbytes"),
        Some("2048")
    );
    assert_eq!(config.postgres.connect_timeout, Duration::from_secs(3));
    assert_eq!(config.snapshot.mode, SnapshotMode::Never);
    assert_eq!(config.postgres.password.unwrap().expose(), "123456");
    assert_eq!(config.postgres.database, "true");
    assert_eq!(config.postgres.user, "cdc user");
    assert_eq!(config.kafka.topic_prefix, "other");
}

#[test]
fn producer_table_overridden_inline() {
    let config = load_str(
        "inline-producer.toml",
        MINIMAL,
        &[(
            "SLUICE_KAFKA__PRODUCER",
            "{ linger.ms = 7, \"batch.size\" = 1 }",
        )],
    )
    .unwrap();
    assert_eq!(config.kafka.producer.get("linger.ms"), Some("7"));
    assert_eq!(config.kafka.producer.get("batch.size"), Some("1"));
}

#[test]
fn overrides_are_read_as_their_fields_ask() {
    let toml = format!("{MINIMAL}\n[kafka.producer]\nclient.id = \"from-file\"\nlinger.ms = 1\n");
    let config = load_str(
        "as-asked.toml",
        &toml,
        &[
            // Text for a string field, whatever it looks like: never a number, never trimmed.
            ("SLUICE_POSTGRES__PASSWORD", "007"),
            ("SLUICE_POSTGRES__DATABASE", " spaced "),
            ("SLUICE_REPLICATION__SLOT", "2024"),
            // TOML for the others.
            ("SLUICE_SNAPSHOT__CHUNK_ROWS", "5"),
            ("SLUICE_EVENTS__MESSAGE_PREFIXES", r#"["a", "b"]"#),
            // An inline producer table adds to the file's, a property at a time.
            ("SLUICE_KAFKA__PRODUCER", "{ linger.ms = 7 }"),
            // A property's quoted value is unquoted, like any string's.
            ("SLUICE_KAFKA__PRODUCER__BATCH_SIZE", r#""42""#),
        ],
    )
    .unwrap();
    assert_eq!(config.postgres.password.unwrap().expose(), "007");
    assert_eq!(config.postgres.database, " spaced ");
    assert_eq!(config.replication.slot, "2024");
    assert_eq!(config.snapshot.chunk_rows, 5);
    assert_eq!(config.events.message_prefixes, ["a", "b"]);
    let producer: Vec<(&str, &str)> = config.kafka.producer.iter().collect();
    assert_eq!(
        producer,
        [
            ("batch.size", "42"),
            ("client.id", "from-file"),
            ("linger.ms", "7")
        ]
    );

    // Below a key, only the producer takes names.
    let message = error_str("deep.toml", MINIMAL, &[("SLUICE_POSTGRES__PORT__X", "1")]);
    assert_eq!(
        message,
        "postgres.port.x (from SLUICE_POSTGRES__PORT__X): unknown key; \
         did you mean postgres.port (SLUICE_POSTGRES__PORT)?"
    );
    // An unknown section in the file is named with its first key, for a key's suggestion.
    let message = error_str(
        "section-key.toml",
        &format!("{MINIMAL}\n[postgress]\nhost = \"x\"\n"),
        &[],
    );
    assert!(
        message.ends_with("postgress.host: unknown key; did you mean postgres.host?"),
        "{message}"
    );
}

#[test]
fn other_sluice_variables_are_ignored() {
    let config = load_str(
        "ignored.toml",
        MINIMAL,
        &[
            ("SLUICE_LOG", "debug"),
            ("SLUICE_LOG_FORMAT", "json"),
            ("SLUICE_CONFIG", "/etc/sluice.toml"),
            ("SLUICE_STATE_DIR", "/tmp/x"),
            ("SLUICE_CACHE_DIR", "/tmp/y"),
            ("SLUICE_KEEP_STACK", "1"),
            ("SLUICE_PG_HOST", "elsewhere"),
            ("SLUICE_PG_PORT", "1"),
            ("POSTGRES__HOST", "not ours"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap();
    assert_eq!(config.postgres.host, "127.0.0.1");
}

#[test]
fn unknown_key_in_file_suggests_the_closest() {
    let toml = MINIMAL.replace("user = \"cdc\"", "user = \"cdc\"\npasword = \"x\"");
    let error = load_str("typo.toml", &toml, &[]).unwrap_err();
    let message = error.to_string();
    assert!(
        message.ends_with("postgres.pasword: unknown key; did you mean postgres.password?"),
        "{message}"
    );
    assert!(message.contains("typo.toml"), "{message}");
    assert_eq!(error.key(), Some("postgres.pasword"));

    // An unknown section, and a key in the wrong section.
    let message = error_str("section.toml", &format!("{MINIMAL}\n[postgress]\n"), &[]);
    assert!(
        message.ends_with("postgress: unknown key; did you mean postgres?"),
        "{message}"
    );
    let toml = MINIMAL.replace("topic_prefix", "url = \"x\"\ntopic_prefix");
    let message = error_str("wrong-section.toml", &toml, &[]);
    assert!(
        message.ends_with("kafka.url: unknown key; did you mean registry.url?"),
        "{message}"
    );
    // Nothing near: no suggestion.
    let toml = MINIMAL.replace("user = \"cdc\"", "user = \"cdc\"\nfrobnicate = 1");
    let message = error_str("far.toml", &toml, &[]);
    assert!(
        message.ends_with("postgres.frobnicate: unknown key"),
        "{message}"
    );
}

#[test]
fn unknown_key_in_environment_names_the_variable() {
    let message = error_str(
        "env-typo.toml",
        MINIMAL,
        &[("SLUICE_POSTGRES__PASWORD", "x")],
    );
    assert_eq!(
        message,
        "postgres.pasword (from SLUICE_POSTGRES__PASWORD): unknown key; \
         did you mean postgres.password (SLUICE_POSTGRES__PASSWORD)?"
    );
    let message = error_str(
        "env-section.toml",
        MINIMAL,
        &[("SLUICE_REPLICATON__SLOT", "x")],
    );
    assert!(
        message.ends_with("did you mean replication.slot (SLUICE_REPLICATION__SLOT)?"),
        "{message}"
    );
    let message = error_str("env-empty.toml", MINIMAL, &[("SLUICE_POSTGRES__", "x")]);
    assert!(message.contains("(from SLUICE_POSTGRES__)"), "{message}");
}

#[test]
fn wrong_type_names_key_and_expected_type() {
    let toml = MINIMAL.replace("user = \"cdc\"", "user = \"cdc\"\nport = \"5432\"");
    let message = error_str("type.toml", &toml, &[]);
    assert!(message.contains("postgres.port: invalid type"), "{message}");
    assert!(message.contains("expected u16"), "{message}");

    let message = error_str(
        "type-env.toml",
        MINIMAL,
        &[("SLUICE_REPLICATION__BINARY", "yes")],
    );
    assert!(
        message.starts_with("replication.binary (from SLUICE_REPLICATION__BINARY): "),
        "{message}"
    );
    assert!(message.contains("expected a boolean"), "{message}");

    let message = error_str(
        "range-env.toml",
        MINIMAL,
        &[("SLUICE_POSTGRES__PORT", "70000")],
    );
    assert!(message.contains("postgres.port (from SLUICE_POSTGRES__PORT)"));
    assert!(message.contains("expected u16"), "{message}");

    let message = error_str(
        "enum.toml",
        MINIMAL,
        &[("SLUICE_KAFKA__COMPRESSION", "brotli")],
    );
    assert!(message.contains("kafka.compression"), "{message}");
    assert!(message.contains("`zstd`"), "{message}");

    let message = error_str(
        "duration.toml",
        MINIMAL,
        &[("SLUICE_SHUTDOWN__DRAIN_TIMEOUT", "soon")],
    );
    assert!(message.contains("shutdown.drain_timeout"), "{message}");

    let message = error_str(
        "sslmode.toml",
        MINIMAL,
        &[("SLUICE_POSTGRES__SSLMODE", "always")],
    );
    assert!(message.contains("postgres.sslmode"), "{message}");
    assert!(message.contains("verify-full"), "{message}");

    let toml = format!("{MINIMAL}\n[kafka.producer]\n\"linger.ms\" = [1]\n");
    let message = error_str("producer-type.toml", &toml, &[]);
    assert!(
        message.contains("kafka.producer.linger.ms: expected a string, number or boolean"),
        "{message}"
    );

    let message = error_str(
        "section-type.toml",
        &format!("snapshot = 1\n{MINIMAL}"),
        &[],
    );
    assert!(message.contains("snapshot: expected a table"), "{message}");
}

#[test]
fn missing_required_key_is_named() {
    let toml = MINIMAL.replace("database = \"app\"", "");
    let error = load_str("missing.toml", &toml, &[]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "postgres.database: required key missing; set it in the file or with \
         SLUICE_POSTGRES__DATABASE"
    );
    let message = load(None, env(&[])).unwrap_err().to_string();
    assert!(message.starts_with("postgres.database:"), "{message}");
    let toml = MINIMAL.replace("[registry]\n        url = \"http://registry:8081\"", "");
    let message = error_str("missing-registry.toml", &toml, &[]);
    assert!(message.starts_with("registry.url: required"), "{message}");
}

#[test]
fn syntax_error_names_the_file() {
    let message = error_str("syntax.toml", "[postgres\n", &[]);
    assert!(message.contains("syntax.toml"), "{message}");
    assert!(message.contains("line 1"), "{message}");
    let error = load(Some(Path::new("/nonexistent/sluice.toml")), env(&[])).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }), "{error}");
}

#[test]
fn password_and_password_file_conflict() {
    let toml = MINIMAL.replace(
        "user = \"cdc\"",
        "user = \"cdc\"\npassword = \"a\"\npassword_file = \"/run/secrets/pg\"",
    );
    let message = error_str("both.toml", &toml, &[]);
    assert!(
        message.ends_with(
            "postgres.password_file: give postgres.password or postgres.password_file, not both"
        ),
        "{message}"
    );
    // The file may give one and the environment the other.
    let toml = MINIMAL.replace(
        "url = \"http://registry:8081\"",
        "url = \"http://registry:8081\"\nusername = \"u\"\npassword = \"a\"",
    );
    let message = error_str(
        "both-env.toml",
        &toml,
        &[("SLUICE_REGISTRY__PASSWORD_FILE", "/run/secrets/sr")],
    );
    assert!(
        message.starts_with("registry.password_file (from SLUICE_REGISTRY__PASSWORD_FILE)"),
        "{message}"
    );
}

#[test]
fn password_file_is_read_and_trimmed() {
    let secret = TempFile::new("pg-password", "s3cret with spaces \n");
    let secret_path = secret.0.to_str().unwrap();
    let config = load_str(
        "password-file.toml",
        MINIMAL,
        &[
            ("SLUICE_POSTGRES__PASSWORD_FILE", secret_path),
            ("SLUICE_REGISTRY__USERNAME", "sr"),
            ("SLUICE_REGISTRY__PASSWORD_FILE", secret_path),
        ],
    )
    .unwrap();
    assert_eq!(
        config.postgres.password.as_ref().unwrap().expose(),
        "s3cret with spaces "
    );
    assert_eq!(
        config.postgres.password_file.as_deref(),
        Some(secret.0.as_path())
    );
    assert_eq!(
        config.registry.password.as_ref().unwrap().expose(),
        "s3cret with spaces "
    );

    let crlf = TempFile::new("pg-password-crlf", "abc\r\n");
    let toml = MINIMAL.replace(
        "user = \"cdc\"",
        &format!(
            "user = \"cdc\"\npassword_file = {:?}",
            crlf.0.to_str().unwrap()
        ),
    );
    let config = load_str("password-file-crlf.toml", &toml, &[]).unwrap();
    assert_eq!(config.postgres.password.unwrap().expose(), "abc");

    let message = error_str(
        "password-file-missing.toml",
        MINIMAL,
        &[("SLUICE_POSTGRES__PASSWORD_FILE", "/nonexistent/pg-password")],
    );
    assert!(
        message.starts_with(
            "postgres.password_file (from SLUICE_POSTGRES__PASSWORD_FILE): cannot read /nonexistent/pg-password"
        ),
        "{message}"
    );
}

#[test]
fn registry_tls_and_a_bearer_token_reach_the_client() {
    let token_file = TempFile::new("registry-token", "t0ken-secret\n");
    let https = ("SLUICE_REGISTRY__URL", "https://registry:8081");
    let config = load_str(
        "registry-tls.toml",
        MINIMAL,
        &[
            https,
            (
                "SLUICE_REGISTRY__TOKEN_FILE",
                token_file.0.to_str().unwrap(),
            ),
            ("SLUICE_REGISTRY__CA_FILE", "/etc/ca.pem"),
            ("SLUICE_REGISTRY__CERT_FILE", "/etc/client.pem"),
            ("SLUICE_REGISTRY__KEY_FILE", "/etc/client.key"),
        ],
    )
    .unwrap();
    let client = config.registry.client_config(Duration::from_secs(5));
    match &client.auth {
        sluice_avro::RegistryAuth::Bearer(token) => {
            assert_eq!(token.expose_secret(), "t0ken-secret");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.ca_file, Some(PathBuf::from("/etc/ca.pem")));
    assert_eq!(
        client.client_certificate,
        Some(sluice_avro::ClientCertificate {
            cert_file: "/etc/client.pem".into(),
            key_file: "/etc/client.key".into(),
        })
    );
    let summary = config.redacted_summary();
    assert!(
        summary.contains("registry_auth=bearer")
            && summary.contains("registry_tls=ca_file+client_cert"),
        "{summary}"
    );
    for shown in [format!("{config:?}"), format!("{client:?}"), summary] {
        assert!(!shown.contains("t0ken"), "{shown}");
    }

    for (vars, key, says) in [
        (
            &[
                ("SLUICE_REGISTRY__USERNAME", "u"),
                ("SLUICE_REGISTRY__PASSWORD", "p"),
                ("SLUICE_REGISTRY__TOKEN", "t"),
            ][..],
            "registry.token",
            "not both",
        ),
        (
            &[https, ("SLUICE_REGISTRY__CERT_FILE", "/c")],
            "registry.cert_file",
            "registry.key_file",
        ),
        (
            &[https, ("SLUICE_REGISTRY__KEY_FILE", "/k")],
            "registry.key_file",
            "registry.cert_file",
        ),
        (
            &[("SLUICE_REGISTRY__CA_FILE", "/ca")],
            "registry.ca_file",
            "https://",
        ),
        (
            &[
                ("SLUICE_REGISTRY__TOKEN", "t"),
                ("SLUICE_REGISTRY__TOKEN_FILE", "/t"),
            ],
            "registry.token_file",
            "not both",
        ),
    ] {
        let message = error_str("registry-invalid.toml", MINIMAL, vars);
        assert!(
            message.starts_with(key) && message.contains(says),
            "{vars:?}: {message}"
        );
    }
}

#[test]
fn secrets_never_printed() {
    let secret_file = TempFile::new("registry-password", "from-a-file-secret\n");
    let config = load_str(
        "secrets.toml",
        FULL,
        &[("SLUICE_KAFKA__PRODUCER__SSL_KEY_PASSWORD", "ssl-key-secret")],
    )
    .unwrap();
    let debug = format!("{config:?}");
    let pretty = format!("{config:#?}");
    let summary = config.redacted_summary();
    // What the pipeline runs with, built from the configuration, the clients' settings
    // (PostgreSQL, Kafka, the registry) included.
    let settings = format!(
        "{:#?} {:#?} {:#?} {:#?}",
        config.postgres.conninfo(),
        config.postgres.connect_config(),
        config.kafka.client_config(),
        config
            .registry
            .client_config(RegistrySection::REQUEST_TIMEOUT),
    );
    for text in [&debug, &pretty, &summary, &settings] {
        for secret in [
            "hunter2-secret",
            "registry-secret",
            "kafka-secret",
            "ssl-key-secret",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
    assert!(debug.contains("<redacted>"));
    assert!(summary.contains("linger.ms=20"), "{summary}");
    assert_eq!(Secret::new("x").to_string(), "<redacted>");

    let config = load_str(
        "secrets-file.toml",
        MINIMAL,
        &[
            ("SLUICE_REGISTRY__USERNAME", "sr"),
            (
                "SLUICE_REGISTRY__PASSWORD_FILE",
                secret_file.0.to_str().unwrap(),
            ),
        ],
    )
    .unwrap();
    assert!(!format!("{config:?}").contains("from-a-file-secret"));
    assert!(!config.redacted_summary().contains("from-a-file-secret"));
}

#[test]
fn summary_reads_well() {
    let config = minimal();
    let summary = config.redacted_summary();
    assert!(
        summary.starts_with("postgres=cdc@127.0.0.1:5432/app sslmode=prefer password=none"),
        "{summary}"
    );
    assert!(summary.contains(" include=[public.*] "), "{summary}");
    assert!(summary.contains(" drain_timeout=30s "), "{summary}");
    assert!(summary.ends_with(" metrics=127.0.0.1:9187"), "{summary}");
}

#[test]
fn table_patterns_are_checked_when_loaded() {
    let message = error_str(
        "bad-pattern.toml",
        MINIMAL,
        &[("SLUICE_TABLES__EXCLUDE", r#"["public"]"#)],
    );
    assert!(
        message.starts_with(
            "tables.exclude (from SLUICE_TABLES__EXCLUDE): invalid table pattern \"public\""
        ),
        "{message}"
    );
    let message = error_str(
        "no-include.toml",
        MINIMAL,
        &[("SLUICE_TABLES__INCLUDE", "[]")],
    );
    assert!(message.contains("tables.include"), "{message}");
}

#[test]
fn slot_names() {
    for good in ["sluice", "a", "slot_2", &"s".repeat(63)] {
        let config = load_str(
            "slot-ok.toml",
            MINIMAL,
            &[("SLUICE_REPLICATION__SLOT", good)],
        )
        .unwrap();
        assert_eq!(config.replication.slot, good);
    }
    for bad in ["", "Sluice", "my-slot", "slot.1", "slöt", &"s".repeat(64)] {
        let message = error_str(
            "slot-bad.toml",
            MINIMAL,
            &[("SLUICE_REPLICATION__SLOT", bad)],
        );
        assert!(
            message
                .starts_with("replication.slot (from SLUICE_REPLICATION__SLOT): invalid slot name"),
            "{bad}: {message}"
        );
    }
}

#[test]
fn reserved_producer_properties_are_refused() {
    let message = error_str(
        "acks-env.toml",
        MINIMAL,
        &[("SLUICE_KAFKA__PRODUCER__ACKS", "1")],
    );
    assert!(
        message.starts_with("kafka.producer.acks (from SLUICE_KAFKA__PRODUCER__ACKS): sluice always uses acks=all and enable.idempotence=true"),
        "{message}"
    );
    let toml = format!("{MINIMAL}\n[kafka.producer]\nenable.idempotence = false\n");
    let message = error_str("idempotence.toml", &toml, &[]);
    assert!(
        message.contains("kafka.producer.enable.idempotence: sluice always uses acks=all"),
        "{message}"
    );
    let toml = format!("{MINIMAL}\n[kafka.producer]\n\"bootstrap.servers\" = \"x:1\"\n");
    let message = error_str("bootstrap.toml", &toml, &[]);
    assert!(
        message.contains("set kafka.bootstrap_servers instead"),
        "{message}"
    );
    let toml = format!("{MINIMAL}\n[kafka.producer]\npartitioner = \"random\"\n");
    let message = error_str("partitioner.toml", &toml, &[]);
    assert!(
        message.contains("kafka.producer.partitioner: sluice places keys"),
        "{message}"
    );
}

#[test]
fn producer_key_given_twice() {
    let toml = format!("{MINIMAL}\n[kafka.producer]\nlinger.ms = 1\n\"linger.ms\" = 2\n");
    let message = error_str("twice.toml", &toml, &[]);
    assert!(
        message.contains("kafka.producer.linger.ms: given twice"),
        "{message}"
    );
}

#[test]
fn other_validation() {
    let message = error_str(
        "verify.toml",
        MINIMAL,
        &[("SLUICE_POSTGRES__SSLMODE", "verify-ca")],
    );
    assert!(
        message.contains("postgres.sslrootcert: required when postgres.sslmode is verify-ca"),
        "{message}"
    );
    let message = error_str(
        "prefix.toml",
        MINIMAL,
        &[("SLUICE_KAFKA__TOPIC_PREFIX", "shop/prod")],
    );
    assert!(message.contains("kafka.topic_prefix"), "{message}");
    let message = error_str(
        "user-only.toml",
        MINIMAL,
        &[("SLUICE_REGISTRY__USERNAME", "u")],
    );
    assert!(message.contains("registry.username"), "{message}");
    let message = error_str(
        "pw-only.toml",
        MINIMAL,
        &[("SLUICE_REGISTRY__PASSWORD", "p")],
    );
    assert!(message.contains("registry.password"), "{message}");
    let message = error_str(
        "url.toml",
        MINIMAL,
        &[("SLUICE_REGISTRY__URL", "registry:8081")],
    );
    assert!(message.contains("registry.url"), "{message}");
    let message = error_str(
        "url-creds.toml",
        MINIMAL,
        &[("SLUICE_REGISTRY__URL", "http://u:p@registry:8081")],
    );
    assert!(message.contains("must not hold credentials"), "{message}");
    assert!(!message.contains("u:p@"), "{message}");
    let message = error_str(
        "parallelism.toml",
        MINIMAL,
        &[("SLUICE_SNAPSHOT__PARALLELISM", "0")],
    );
    assert!(message.contains("snapshot.parallelism"), "{message}");
    let message = error_str(
        "partitions.toml",
        MINIMAL,
        &[("SLUICE_KAFKA__PARTITIONS", "0")],
    );
    assert!(message.contains("kafka.partitions"), "{message}");
    let message = error_str(
        "empty-password.toml",
        MINIMAL,
        &[("SLUICE_POSTGRES__PASSWORD", "")],
    );
    assert!(message.contains("postgres.password"), "{message}");
}

#[test]
fn documentation_lists_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let docs = std::fs::read_to_string(path).unwrap();
    for (section, key) in every_key().filter(|&(section, key)| [section, key] != PRODUCER) {
        let row = format!(
            "| `{key}` | `{}` |",
            env_var_for(&format!("{section}.{key}"))
        );
        assert!(docs.contains(&row), "docs/configuration.md lacks {row}");
    }
}

#[test]
fn example_file_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/sluice.example.toml");
    let config = load(Some(&path), env(&[])).unwrap();
    assert_eq!(config.postgres.host, "127.0.0.1");
    assert_eq!(config.postgres.port, 15432);
    assert_eq!(config.postgres.database, "sluice");
    assert_eq!(config.postgres.user, "sluice");
    assert_eq!(
        config.postgres.password.as_ref().unwrap().expose(),
        "sluice"
    );
    assert_eq!(config.kafka.bootstrap_servers, "127.0.0.1:9092");
    assert_eq!(config.kafka.topic_prefix, "sluice");
    assert_eq!(config.registry.url, "http://127.0.0.1:8081/apis/ccompat/v7");
}
