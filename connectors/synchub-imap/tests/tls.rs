//! IMAP over TLS and STARTTLS against a real Dovecot that this test starts
//! itself (`deploy/peers/dovecot/dovecot.conf.tmpl` with TLS switched on,
//! IMAPS on 127.0.0.1:10148, STARTTLS on 10147) with a CA and a server
//! certificate for `localhost` generated at test time (rcgen).
//!
//! GIVEN a message in the TLS server's INBOX
//! WHEN the connector reads it with `tls = true` (and then with
//!      `starttls = true`) and `ca_file` naming the generated CA
//! THEN it gets the message both ways;
//! AND without `ca_file` (the system's roots) the handshake is refused, and
//!     an unreadable `ca_file` is a configuration error naming the key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use synchub_core::{Connector, ConnectorError, ObjectKind, Record};
use synchub_imap::client::{Endpoint, Security, Session};
use synchub_imap::{ImapConfig, ImapConnector};

const STARTTLS_PORT: u16 = 10147;
const TLS_PORT: u16 = 10148;
const USER: &str = "tls";
const PASSWORD: &str = "secret-tls";

struct Dovecot {
    dir: PathBuf,
    ca: PathBuf,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("run/master.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Starts a TLS Dovecot under a fresh directory; the CA's PEM is `ca.pem`.
async fn start(dir: &Path) -> Dovecot {
    assert!(
        Command::new("sh")
            .args(["-c", "command -v dovecot"])
            .status()
            .unwrap()
            .success(),
        "dovecot is not installed: run deploy/peers/dovecot.sh first"
    );
    // Left by a run that was killed before its Drop.
    let stale = PathBuf::from(format!("/tmp/synchub-imap-tls-{TLS_PORT}/run/master.pid"));
    if let Ok(pid) = std::fs::read_to_string(&stale) {
        let _ = Command::new("kill").arg(pid.trim()).status();
        for _ in 0..100 {
            if !listening(TLS_PORT) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // A CA and a server certificate for localhost / 127.0.0.1 it signed.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "synchub test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();

    let root = PathBuf::from(format!("/tmp/synchub-imap-tls-{TLS_PORT}"));
    let _ = std::fs::remove_dir_all(&root);
    for d in ["run", "state", "mail"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(root.join(format!("mail/{USER}/Maildir/{d}"))).unwrap();
    }
    std::fs::write(root.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(root.join("key.pem"), key.serialize_pem()).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(root.join("users"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/peers/dovecot/dovecot.conf.tmpl"),
    )
    .unwrap();
    let r = root.display().to_string();
    let conf = template
        .replace("@ROOT@", &r)
        .replace("@PORT@", &STARTTLS_PORT.to_string())
        .replace(
            "ssl = no",
            &format!("ssl = yes\nssl_cert = <{r}/cert.pem\nssl_key = <{r}/key.pem"),
        )
        .replace(
            "    port = 0",
            &format!("    address = 127.0.0.1\n    port = {TLS_PORT}"),
        );
    assert!(conf.contains("ssl = yes") && conf.contains(&format!("port = {TLS_PORT}")));
    std::fs::write(root.join("dovecot.conf"), conf).unwrap();
    let ok = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(root.join("mail"))
        .status()
        .unwrap()
        .success();
    assert!(ok);
    // The daemon must not hold the test's output open.
    let st = Command::new("dovecot")
        .arg("-c")
        .arg(root.join("dovecot.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "dovecot did not start");
    let server = Dovecot {
        dir: root.clone(),
        ca: ca_path,
    };
    for _ in 0..200 {
        if listening(TLS_PORT) && listening(STARTTLS_PORT) {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the TLS dovecot did not listen: {}",
        std::fs::read_to_string(root.join("dovecot.log")).unwrap_or_default()
    );
}

fn endpoint(port: u16, security: Security) -> Endpoint {
    Endpoint {
        host: "localhost".into(),
        port,
        security,
        timeout: Duration::from_secs(30),
    }
}

fn connector(dir: &Path, extra: serde_json::Value) -> Result<ImapConnector, ConnectorError> {
    let mut cfg = serde_json::json!({
        "host": "localhost",
        "user": USER,
        "password": PASSWORD,
        "folders": ["INBOX"],
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let cfg: ImapConfig = serde_json::from_value(cfg).unwrap();
    let settings = cfg.check(dir)?;
    Ok(ImapConnector::new(settings, dir.join("index")))
}

async fn subjects(c: &ImapConnector) -> Result<Vec<String>, ConnectorError> {
    let mut cursor = None;
    let mut out = Vec::new();
    for _ in 0..10 {
        let page = c.pull(ObjectKind::Activity, cursor.as_ref()).await?;
        for r in &page.records {
            if let Some(Record::Activity(a)) = &r.record {
                out.push(a.subject.clone().unwrap_or_default());
            }
        }
        if page.done {
            break;
        }
        cursor = page.next;
    }
    let _ = c.close().await;
    Ok(out)
}

#[tokio::test]
async fn tls_and_starttls_with_a_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;

    // GIVEN a message in INBOX, appended over IMAPS trusting the CA
    let mut s = Session::connect_trusting(&endpoint(TLS_PORT, Security::Tls), Some(&server.ca))
        .await
        .unwrap();
    s.login(USER, PASSWORD).await.unwrap();
    let msg = b"From: =?UTF-8?B?6Zmz5aSn5paH?= <chen@example.com>\r\nTo: tls@synchub.test\r\nSubject: over TLS\r\nDate: Mon, 1 Jan 2024 09:00:00 +0000\r\nMessage-ID: <tls1@gen.synchub.test>\r\n\r\nhello\r\n".to_vec();
    s.append("INBOX", &[msg]).await.unwrap();
    s.command("LOGOUT").await.unwrap();

    // WHEN the connector reads it over TLS and over STARTTLS with `ca_file`
    let tls = connector(
        dir.path(),
        serde_json::json!({"port": TLS_PORT, "ca_file": "ca.pem"}),
    )
    .unwrap();
    assert_eq!(subjects(&tls).await.unwrap(), vec!["over TLS"]);
    let starttls = connector(
        dir.path(),
        serde_json::json!({"port": STARTTLS_PORT, "tls": false, "starttls": true, "ca_file": "ca.pem"}),
    )
    .unwrap();
    assert_eq!(subjects(&starttls).await.unwrap(), vec!["over TLS"]);

    // THEN without the CA the server's certificate is not trusted
    let err = Session::connect(&endpoint(TLS_PORT, Security::Tls))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TLS handshake failed"), "{err}");
    let system_roots = connector(dir.path(), serde_json::json!({"port": TLS_PORT})).unwrap();
    let err = subjects(&system_roots).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Unavailable { .. }) && err.to_string().contains("TLS"),
        "{err}"
    );
    // AND a missing ca_file is a configuration error naming the key
    let missing = connector(
        dir.path(),
        serde_json::json!({"port": TLS_PORT, "ca_file": "nowhere.pem"}),
    )
    .unwrap();
    let err = subjects(&missing).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Config(_)) && err.to_string().contains("ca_file"),
        "{err}"
    );
    drop(server);
}
