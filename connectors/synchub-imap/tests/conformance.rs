//! The connector conformance suite (`synchub_testkit::conformance`) against
//! the real Dovecot started by `deploy/peers/dovecot.sh` (127.0.0.1:10143),
//! mail as the stream, the connector built through its factory.
//!
//! The suite owns the Dovecot user `heidi` (no other test uses it) and one
//! folder of it, `Conformance`, which it empties or recreates for every
//! check. Remote changes are made over IMAP as a mail client would: APPEND,
//! a flag set (a CONDSTORE change), an expunge, and deleting and recreating
//! the folder (a new UIDVALIDITY). Revocation rewrites `heidi`'s entry in
//! Dovecot's passwd-file, which Dovecot re-reads on every login.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use synchub_core::{ObjectKind, Record};
use synchub_http::{Built, ConnectorFactory, Deps};
use synchub_imap::client::{Endpoint, Security, Session};
use synchub_imap::proto::Token;
use synchub_imap::{ImapConfig, ImapFactory};
use synchub_testkit::conformance::{self, Check, Fault, Harness, Outcome};

const PORT: u16 = 10143;
const USER: &str = "heidi";
const PASSWORD: &str = "secret-heidi";
const FOLDER: &str = "Conformance";
const PAGE: usize = 3;

/// Dovecot's passwd-file, as `deploy/peers/dovecot.sh` writes it.
fn users_file() -> PathBuf {
    let dir = std::env::var("SYNCHUB_DOVECOT_DIR")
        .unwrap_or_else(|_| format!("/tmp/synchub-dovecot-{PORT}"));
    PathBuf::from(dir).join("users")
}

/// Sets `heidi`'s password in the passwd-file (written whole, then renamed,
/// so Dovecot never reads half a file). Dovecot re-reads the file when its
/// modification time changes: each write moves it at least a second on.
fn set_password(password: &str) -> Result<(), String> {
    let path = users_file();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let wanted = format!("{USER}:{{PLAIN}}{password}");
    if text.lines().any(|l| l == wanted) {
        return Ok(());
    }
    let before = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .map_err(|e| e.to_string())?;
    #[allow(clippy::disallowed_methods)]
    let stamp = std::time::SystemTime::now().max(before + Duration::from_secs(1));
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{USER}:")) {
                found = true;
                format!("{USER}:{{PLAIN}}{password}")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        return Err(format!("no {USER} in {}", path.display()));
    }
    let tmp = path.with_extension("conformance-tmp");
    std::fs::write(&tmp, lines.join("\n") + "\n").map_err(|e| e.to_string())?;
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .and_then(|f| f.set_modified(stamp))
        .map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, &path).map_err(|e| e.to_string())
}

async fn admin() -> Result<Session, String> {
    let ep = Endpoint {
        host: "127.0.0.1".into(),
        port: PORT,
        security: Security::Plain,
        timeout: Duration::from_secs(60),
    };
    let mut s = Session::connect(&ep).await.map_err(|e| {
        format!("Dovecot is not answering on 127.0.0.1:{PORT} ({e}): run deploy/peers/dovecot.sh")
    })?;
    s.login(USER, PASSWORD)
        .await
        .map_err(|e| format!("login {USER}: {e}"))?;
    Ok(s)
}

async fn run(s: &mut Session, line: &str) -> Result<synchub_imap::client::Reply, String> {
    s.command(line).await.map_err(|e| format!("{line}: {e}"))
}

fn message(i: usize) -> (String, Vec<u8>) {
    let id = format!("<c{i}.{USER}@conformance.synchub.test>");
    let m = format!(
        "From: =?UTF-8?B?6Zmz5aSn5paH?= <Tai.Man.{i}@Example.com.HK>\r\nTo: {USER}@synchub.test\r\n\
         Subject: Conformance {i}\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: {id}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello {i}.\r\n"
    );
    (id, m.into_bytes())
}

struct ImapHarness {
    dir: tempfile::TempDir,
    /// The messages the folder should hold: Message-ID and bytes.
    live: Vec<(String, Vec<u8>)>,
    seq: usize,
}

impl ImapHarness {
    fn build(&self) -> Result<Built, String> {
        let cfg: ImapConfig = serde_json::from_value(serde_json::json!({
            "host": "127.0.0.1", "port": PORT, "user": USER, "password": PASSWORD,
            "tls": false, "folders": [FOLDER], "page_size": PAGE,
            "state_dir": self.dir.path().join("state").to_string_lossy(),
        }))
        .map_err(|e| e.to_string())?;
        let deps = Deps::new("mail", self.dir.path());
        ImapFactory::build(cfg, &deps).map_err(|e| e.to_string())
    }

    /// The UID of the message with `message_id` in the folder.
    async fn uid_of(s: &mut Session, message_id: &str) -> Result<String, String> {
        run(s, &format!("SELECT {FOLDER}")).await?;
        let reply = run(s, &format!("UID SEARCH HEADER Message-ID \"{message_id}\"")).await?;
        let uid = reply
            .untagged
            .iter()
            .find(|t| t.first().and_then(Token::atom) == Some("SEARCH"))
            .and_then(|t| t.get(1).and_then(Token::atom).map(str::to_string))
            .ok_or_else(|| format!("no message {message_id} in {FOLDER}"))?;
        Ok(uid)
    }
}

#[async_trait]
impl Harness for ImapHarness {
    fn name(&self) -> String {
        "imap (real Dovecot)".into()
    }

    fn object(&self) -> ObjectKind {
        ObjectKind::Activity
    }

    fn page_size(&self) -> usize {
        PAGE
    }

    fn lacks(&self, check: Check) -> Option<String> {
        let read_only = "mail is read-only for the connector: it never APPENDs or STOREs";
        match check {
            Check::Throttle => {
                Some("IMAP has no rate-limit answer (no 429, no Retry-After in RFC 9051)".into())
            }
            Check::Refresh => Some(
                "the connector logs in with a password per session (LOGIN): no access token \
                 to expire or refresh"
                    .into(),
            ),
            Check::IdempotentPush | Check::EchoSuppression | Check::Refusals => {
                Some(read_only.into())
            }
            Check::Webhooks => {
                Some("IMAP has no webhooks (IDLE is a held session, not a signed delivery)".into())
            }
            _ => None,
        }
    }

    async fn fresh(&mut self) -> Result<Built, String> {
        set_password(PASSWORD)?;
        self.dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        self.live.clear();
        let mut s = admin().await?;
        let _ = s.command(&format!("DELETE {FOLDER}")).await;
        run(&mut s, &format!("CREATE {FOLDER}")).await?;
        let _ = s.command("LOGOUT").await;
        self.build()
    }

    async fn rebuild(&mut self) -> Result<Built, String> {
        self.build()
    }

    async fn seed(&mut self, n: usize) -> Result<Vec<String>, String> {
        let batch: Vec<(String, Vec<u8>)> = (0..n)
            .map(|_| {
                self.seq += 1;
                message(self.seq)
            })
            .collect();
        let mut s = admin().await?;
        let bytes: Vec<Vec<u8>> = batch.iter().map(|(_, b)| b.clone()).collect();
        s.append(FOLDER, &bytes).await.map_err(|e| e.to_string())?;
        let _ = s.command("LOGOUT").await;
        let ids = batch.iter().map(|(id, _)| id.clone()).collect();
        self.live.extend(batch);
        Ok(ids)
    }

    async fn modify(&mut self, external_id: &str) -> Result<(), String> {
        let mut s = admin().await?;
        let uid = Self::uid_of(&mut s, external_id).await?;
        run(
            &mut s,
            &format!("UID STORE {uid} +FLAGS.SILENT (\\Flagged)"),
        )
        .await?;
        let _ = s.command("LOGOUT").await;
        Ok(())
    }

    async fn delete(&mut self, external_id: &str) -> Result<(), String> {
        let mut s = admin().await?;
        let uid = Self::uid_of(&mut s, external_id).await?;
        run(
            &mut s,
            &format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
        )
        .await?;
        run(&mut s, &format!("UID EXPUNGE {uid}")).await?;
        let _ = s.command("LOGOUT").await;
        self.live.retain(|(id, _)| id != external_id);
        Ok(())
    }

    async fn inject(&mut self, fault: Fault) -> Result<(), String> {
        match fault {
            Fault::RevokeCredentials => set_password("revoked-by-the-conformance-suite")?,
            Fault::Clear => set_password(PASSWORD)?,
            other => return Err(format!("{other:?} has no IMAP equivalent")),
        }
        // Dovecot looks at the passwd-file at most once a second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        Ok(())
    }

    /// The folder is deleted and made again (a new UIDVALIDITY), holding
    /// the same messages: every stored position names the old folder.
    async fn expire_positions(&mut self) -> Result<(), String> {
        let mut s = admin().await?;
        run(&mut s, &format!("DELETE {FOLDER}")).await?;
        run(&mut s, &format!("CREATE {FOLDER}")).await?;
        let bytes: Vec<Vec<u8>> = self.live.iter().map(|(_, b)| b.clone()).collect();
        if !bytes.is_empty() {
            s.append(FOLDER, &bytes).await.map_err(|e| e.to_string())?;
        }
        let _ = s.command("LOGOUT").await;
        Ok(())
    }

    async fn count(&mut self) -> Result<usize, String> {
        Ok(self.live.len())
    }

    fn new_record(&self, _i: usize) -> Record {
        Record::Activity(synchub_core::model::Activity::default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_passes_the_conformance_suite_against_dovecot() {
    let mut h = ImapHarness {
        dir: tempfile::tempdir().unwrap(),
        live: Vec::new(),
        seq: 0,
    };
    let report = conformance::run(&mut h).await;
    println!("{report}");
    set_password(PASSWORD).unwrap();
    report.assert_passed();
    assert_eq!(report.passed(), Check::ALL.len() - 6, "{report}");
    assert!(matches!(
        report.outcome(Check::Unauthorized),
        Some(Outcome::Passed)
    ));
}
