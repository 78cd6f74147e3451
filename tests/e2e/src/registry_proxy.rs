//! A TLS and authentication gate in front of the stack's Apicurio Registry, for the tests of
//! sluice's registry client: Apicurio itself does authentication only through an OIDC server
//! (Keycloak), so this proxy enforces what a production registry's front would. It serves
//! HTTPS on 127.0.0.1 with the stack's server certificate (signed by the stack's CA), can
//! require a client certificate signed by that CA, checks the `Authorization` header against
//! basic credentials or a bearer token (401 otherwise), and forwards what passes to Apicurio.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Command;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Stack, unique_name};

/// What the proxy demands of a request.
#[derive(Debug, Clone)]
pub enum Demand {
    /// Nothing but TLS.
    Nothing,
    /// HTTP basic authentication with these credentials.
    Basic { username: String, password: String },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

/// A running proxy; it stops when dropped.
pub struct RegistryProxy {
    /// The Confluent-compatible base URL through the proxy (`https://127.0.0.1:<port>/...`).
    pub url: String,
    task: JoinHandle<()>,
}

impl Drop for RegistryProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RegistryProxy {
    /// Starts a proxy to the stack's registry demanding `demand`, and a client certificate
    /// signed by the stack's CA when `client_certificate` is set.
    pub async fn start(stack: &Stack, demand: Demand, client_certificate: bool) -> Self {
        let tls = stack.state_dir.join("tls");
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        acceptor
            .set_certificate_chain_file(tls.join("server.crt"))
            .unwrap();
        acceptor
            .set_private_key_file(tls.join("server.key"), SslFiletype::PEM)
            .unwrap();
        if client_certificate {
            acceptor.set_ca_file(tls.join("ca.crt")).unwrap();
            acceptor.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        }
        let acceptor = acceptor.build();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let upstream = reqwest::Url::parse(&stack.registry_url).unwrap();
        let path = upstream.path().to_owned();
        let upstream_origin = upstream.origin().ascii_serialization();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let ssl = Ssl::new(acceptor.context()).unwrap();
                let (demand, http, origin) =
                    (demand.clone(), http.clone(), upstream_origin.clone());
                tokio::spawn(async move {
                    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
                    // A refused handshake (no or an unknown client certificate) ends here.
                    if Pin::new(&mut stream).accept().await.is_err() {
                        return;
                    }
                    let service = service_fn(move |request| {
                        forward(request, demand.clone(), http.clone(), origin.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RegistryProxy {
            url: format!("https://127.0.0.1:{}{path}", address.port()),
            task,
        }
    }
}

async fn forward(
    request: Request<Incoming>,
    demand: Demand,
    http: reqwest::Client,
    origin: String,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let given = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let expected = match &demand {
        Demand::Nothing => None,
        Demand::Basic { username, password } => {
            // The header as reqwest writes it (RFC 7617).
            let request = http
                .get("http://basic.invalid")
                .basic_auth(username, Some(password))
                .build()
                .unwrap();
            request
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        }
        Demand::Bearer(token) => Some(format!("Bearer {token}")),
    };
    if expected.is_some() && given != expected {
        return Ok(Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .body(Full::new(Bytes::from_static(b"{\"error_code\":401}")))
            .unwrap());
    }
    let method = request.method().clone();
    let target = format!(
        "{origin}{}",
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let content_type = request.headers().get(hyper::header::CONTENT_TYPE).cloned();
    let body = request.into_body().collect().await?.to_bytes();
    let mut upstream = http.request(method, target).body(body);
    if let Some(content_type) = content_type {
        upstream = upstream.header(hyper::header::CONTENT_TYPE, content_type);
    }
    let (status, body) = match upstream.send().await {
        Ok(answer) => (
            answer.status().as_u16(),
            answer.bytes().await.unwrap_or_default(),
        ),
        Err(_) => (502, Bytes::new()),
    };
    Ok(Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .unwrap())
}

/// A client certificate and key (PKCS#8 PEM) signed by the stack's CA, written to a new
/// directory: `(cert_file, key_file)`.
pub fn client_certificate(stack: &Stack) -> (PathBuf, PathBuf) {
    let tls = stack.state_dir.join("tls");
    let dir = std::env::temp_dir().join(unique_name("registry_client_cert"));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, request) = (
        dir.join("client.crt"),
        dir.join("client.key"),
        dir.join("client.csr"),
    );
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "rsa:2048",
            "-subj",
            "/CN=sluice",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&request));
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-CAcreateserial"])
        .arg("-in")
        .arg(&request)
        .arg("-CA")
        .arg(tls.join("ca.crt"))
        .arg("-CAkey")
        .arg(tls.join("ca.key"))
        .arg("-CAserial")
        .arg(dir.join("ca.srl"))
        .arg("-out")
        .arg(&cert));
    (cert, key)
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
