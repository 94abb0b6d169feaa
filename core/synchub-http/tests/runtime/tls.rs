//! TLS trust: a private CA generated at test time, a TLS server on
//! 127.0.0.1 with a certificate it signed, and clients with and without
//! `ca_file`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use synchub_http::{HttpClient, HttpError, QuotaRegistry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A private CA's PEM and a TLS server on 127.0.0.1 whose certificate it
/// signed; the counter counts accepted TCP connections.
async fn private_ca_server() -> (String, String, Arc<AtomicUsize>) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "synchub test private CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"ok\":true}";
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (ca.pem(), url, accepted)
}

#[tokio::test]
async fn ca_file_trusts_a_private_ca() {
    // GIVEN a server whose certificate a private CA signed, and that CA in a file
    let (ca_pem, url, _) = private_ca_server().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("private-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let client = HttpClient::builder(url)
        .ca_file(&ca_file)
        .retry(crate::fast_retry(3))
        .build_in(&QuotaRegistry::new())
        .unwrap();
    // WHEN a request is sent THEN the handshake succeeds and the answer arrives
    let r = client.get("/health").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "{\"ok\":true}");
}

#[tokio::test]
async fn untrusted_certificate_fails_at_once_as_a_config_error_naming_the_host() {
    // GIVEN the same kind of server and a client that does not know its CA
    let (_, url, accepted) = private_ca_server().await;
    let host = url.trim_start_matches("https://").to_string();
    let client = HttpClient::builder(url)
        .retry(crate::fast_retry(5))
        .build_in(&QuotaRegistry::new())
        .unwrap();
    // WHEN a request is sent
    let err = client.get("/health").send().await.unwrap_err();
    // THEN it is a configuration error naming the host and the fix, not retried
    assert!(matches!(err, HttpError::Config(_)), "{err:?}");
    assert_eq!(err.class(), synchub_core::error::ErrorClass::Config);
    let text = err.to_string();
    assert!(text.contains(&host), "{text}");
    assert!(
        text.contains("ca_file") && text.contains("certificate"),
        "{text}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "retried: {text}");
}

#[test]
fn unreadable_ca_file_is_a_config_error_naming_the_file() {
    let err = HttpClient::builder("https://127.0.0.1:1")
        .ca_file("/nonexistent/synchub-ca.pem")
        .build_in(&QuotaRegistry::new())
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/synchub-ca.pem"),
        "{err}"
    );
}
