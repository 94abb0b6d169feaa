//! A minimal async IMAP4rev1 client for the commands the connector needs:
//! LOGIN, CAPABILITY, ENABLE, SELECT/EXAMINE, STATUS, UID SEARCH, UID FETCH
//! (with CONDSTORE `CHANGEDSINCE` and QRESYNC `VANISHED`), and, for tests
//! and fixtures, APPEND, CREATE, DELETE, UID STORE and EXPUNGE.
//!
//! No maintained async crate covers QRESYNC (`async-imap`'s parser,
//! `imap-proto`, has no `VANISHED (EARLIER)`), so the handful of responses
//! used here are parsed in [`crate::proto`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::proto::{self, Token};

/// Anything a session can run over (plain TCP or TLS).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (port 993).
    Tls,
    /// Plain, then `STARTTLS` before login (port 143).
    StartTls,
    /// No TLS (loopback only; checked by the config).
    Plain,
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Endpoint {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security.
    pub security: Security,
    /// Connect and per-command timeout.
    pub timeout: Duration,
}

/// An error from the IMAP session.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The host could not be reached or the connection broke.
    #[error("{0}")]
    Io(String),
    /// The host name does not resolve (a configuration mistake, not an outage).
    #[error("{0}")]
    Resolve(String),
    /// The server refused the credentials.
    #[error("login refused: {0}")]
    Login(String),
    /// The server answered `NO` or `BAD` to a command.
    #[error("{command} refused: {text}")]
    Refused {
        /// The command (without arguments that could hold secrets).
        command: String,
        /// The server's text.
        text: String,
    },
    /// The server sent something we cannot parse.
    #[error("unparsable response: {0}")]
    Protocol(String),
    /// The trusted certificates (`ca_file`) cannot be read.
    #[error("{0}")]
    Trust(String),
}

/// The untagged responses of one command and its tagged completion.
#[derive(Debug, Default)]
pub struct Reply {
    /// Untagged responses, tokenized (the leading `*` removed).
    pub untagged: Vec<Vec<Token>>,
    /// The tagged status text (`OK [READ-WRITE] Select completed`).
    pub text: String,
}

/// A logged-in (or greeting-read) session.
pub struct Session {
    stream: BufReader<Box<dyn Io>>,
    tag: u64,
    timeout: Duration,
    /// Capabilities as last announced (upper case).
    pub capabilities: Vec<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

/// The certificates a server may chain to: those of `ca_file` (PEM) when
/// given, else the system's.
fn trusted_roots(ca_file: Option<&Path>) -> Result<tokio_rustls::rustls::RootCertStore, ImapError> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::CertificateDer;

    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    let Some(path) = ca_file else {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            // A certificate the store cannot use is skipped, as browsers do.
            let _ = roots.add(cert);
        }
        return Ok(roots);
    };
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ImapError::Trust(format!("cannot read `ca_file` {shown}: {e}")))?;
    for cert in certs {
        let cert =
            cert.map_err(|e| ImapError::Trust(format!("`ca_file` {shown} is not PEM: {e}")))?;
        roots.add(cert).map_err(|e| {
            ImapError::Trust(format!(
                "`ca_file` {shown} holds an unusable certificate: {e}"
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(ImapError::Trust(format!(
            "`ca_file` {shown} holds no certificate"
        )));
    }
    Ok(roots)
}

fn tls_connector(ca_file: Option<&Path>) -> Result<tokio_rustls::TlsConnector, ImapError> {
    let roots = trusted_roots(ca_file)?;
    let config = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn start_tls(
    tcp: TcpStream,
    host: &str,
    ca_file: Option<&Path>,
) -> Result<Box<dyn Io>, ImapError> {
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| ImapError::Io(format!("`{host}` is not a valid TLS server name: {e}")))?;
    let tls = tls_connector(ca_file)?
        .connect(name, tcp)
        .await
        .map_err(|e| ImapError::Io(format!("TLS handshake failed: {e}")))?;
    Ok(Box::new(tls))
}

impl Session {
    /// Connects, reads the greeting and (for STARTTLS) upgrades; TLS
    /// trusts the system's certificates.
    pub async fn connect(ep: &Endpoint) -> Result<Session, ImapError> {
        Self::connect_trusting(ep, None).await
    }

    /// As [`Session::connect`], trusting only the certificates of `ca_file`
    /// (PEM) when one is given (a private CA, a self-signed server).
    pub async fn connect_trusting(
        ep: &Endpoint,
        ca_file: Option<&Path>,
    ) -> Result<Session, ImapError> {
        let addr = format!("{}:{}", ep.host, ep.port);
        let resolved: Vec<std::net::SocketAddr> =
            tokio::time::timeout(ep.timeout, tokio::net::lookup_host(&addr))
                .await
                .map_err(|_| ImapError::Io(format!("resolving {addr} timed out")))?
                .map_err(|e| {
                    ImapError::Resolve(format!("host `{}` does not resolve: {e}", ep.host))
                })?
                .collect();
        let tcp = tokio::time::timeout(ep.timeout, TcpStream::connect(&resolved[..]))
            .await
            .map_err(|_| ImapError::Io(format!("connecting to {addr} timed out")))?
            .map_err(|e| ImapError::Io(format!("cannot connect to {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let (io, greeted): (Box<dyn Io>, bool) = match ep.security {
            Security::Tls => (start_tls(tcp, &ep.host, ca_file).await?, false),
            Security::Plain => (Box::new(tcp), false),
            Security::StartTls => {
                let tcp = tokio::time::timeout(ep.timeout, plain_starttls(tcp))
                    .await
                    .map_err(|_| ImapError::Io(format!("STARTTLS with {addr} timed out")))??;
                (start_tls(tcp, &ep.host, ca_file).await?, true)
            }
        };
        let mut session = Session {
            stream: BufReader::with_capacity(64 * 1024, io),
            tag: 0,
            timeout: ep.timeout,
            capabilities: Vec::new(),
        };
        if !greeted {
            let greeting = session.read_response().await?;
            if !greeting.starts_with(b"* OK") && !greeting.starts_with(b"* PREAUTH") {
                return Err(ImapError::Protocol(format!(
                    "greeting was `{}`",
                    String::from_utf8_lossy(&greeting).trim_end()
                )));
            }
        }
        Ok(session)
    }

    /// Logs in with a password and records the capabilities.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), ImapError> {
        let line = format!("LOGIN {} {}", proto::quote(user), proto::quote(password));
        match self.run("LOGIN", &line).await {
            Ok(_) => {}
            Err(ImapError::Refused { text, .. }) => return Err(ImapError::Login(text)),
            Err(e) => return Err(e),
        }
        let caps = self.command("CAPABILITY").await?;
        self.capabilities = caps
            .untagged
            .iter()
            .filter(|r| r.first().and_then(Token::atom) == Some("CAPABILITY"))
            .flat_map(|r| r.iter().skip(1).filter_map(Token::atom))
            .map(|a| a.to_ascii_uppercase())
            .collect();
        Ok(())
    }

    /// The server announced `cap`.
    pub fn has(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c == cap)
    }

    /// Runs a command whose text holds no secret.
    pub async fn command(&mut self, line: &str) -> Result<Reply, ImapError> {
        let name = line.split(' ').take(2).collect::<Vec<_>>().join(" ");
        self.run(&name, line).await
    }

    /// Runs `line`; `name` is what errors show.
    async fn run(&mut self, name: &str, line: &str) -> Result<Reply, ImapError> {
        self.tag += 1;
        let tag = format!("S{}", self.tag);
        let wire = format!("{tag} {line}\r\n");
        self.write(wire.as_bytes()).await?;
        self.collect(&tag, name).await
    }

    /// Appends messages to `mailbox` in one MULTIAPPEND (RFC 3502) command
    /// when the server offers it, else one APPEND each.
    pub async fn append(&mut self, mailbox: &str, messages: &[Vec<u8>]) -> Result<(), ImapError> {
        let multi = self.has("MULTIAPPEND") && self.has("LITERAL+");
        let chunks: Vec<&[Vec<u8>]> = if multi {
            messages.chunks(500).collect()
        } else {
            messages.chunks(1).collect()
        };
        for chunk in chunks {
            self.tag += 1;
            let tag = format!("S{}", self.tag);
            let mut wire = format!("{tag} APPEND {}", proto::quote(mailbox)).into_bytes();
            for m in chunk {
                if self.has("LITERAL+") {
                    wire.extend_from_slice(format!(" {{{}+}}\r\n", m.len()).as_bytes());
                    wire.extend_from_slice(m);
                } else {
                    // Synchronising literal: wait for the continuation.
                    wire.extend_from_slice(format!(" {{{}}}\r\n", m.len()).as_bytes());
                    self.write(&wire).await?;
                    wire.clear();
                    let cont = self.read_response().await?;
                    if !cont.starts_with(b"+") {
                        return Err(ImapError::Refused {
                            command: "APPEND".into(),
                            text: String::from_utf8_lossy(&cont).trim_end().to_string(),
                        });
                    }
                    wire.extend_from_slice(m);
                }
            }
            wire.extend_from_slice(b"\r\n");
            self.write(&wire).await?;
            self.collect(&tag, "APPEND").await?;
        }
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ImapError> {
        let w = async {
            self.stream.get_mut().write_all(bytes).await?;
            self.stream.get_mut().flush().await
        };
        tokio::time::timeout(self.timeout, w)
            .await
            .map_err(|_| ImapError::Io("write timed out".into()))?
            .map_err(|e| ImapError::Io(format!("write failed: {e}")))
    }

    async fn collect(&mut self, tag: &str, name: &str) -> Result<Reply, ImapError> {
        let mut reply = Reply::default();
        loop {
            let raw = self.read_response().await?;
            if raw.starts_with(b"* ") {
                let mut toks = proto::tokenize(&raw[2..])
                    .map_err(|e| ImapError::Protocol(format!("{e} in the reply to {name}")))?;
                if !toks.is_empty() {
                    reply.untagged.push(std::mem::take(&mut toks));
                }
                continue;
            }
            if raw.starts_with(b"+") {
                // A continuation we did not ask for: the server is waiting.
                return Err(ImapError::Protocol(format!(
                    "unexpected continuation to {name}"
                )));
            }
            let text = String::from_utf8_lossy(&raw).trim_end().to_string();
            let Some(rest) = text.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) else {
                // A response for another tag cannot happen with one command
                // in flight; skip it rather than fail.
                continue;
            };
            let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
            return match status.to_ascii_uppercase().as_str() {
                "OK" => {
                    reply.text = text.to_string();
                    Ok(reply)
                }
                _ => Err(ImapError::Refused {
                    command: name.to_string(),
                    text: format!("{status} {text}"),
                }),
            };
        }
    }

    /// Reads one full response line, with any literals it announces.
    async fn read_response(&mut self) -> Result<Vec<u8>, ImapError> {
        let timeout = self.timeout;
        let read = async {
            let mut out = Vec::new();
            loop {
                let start = out.len();
                let n = self.stream.read_until(b'\n', &mut out).await?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ));
                }
                match proto::literal_len(&out[start..]) {
                    Some(len) => {
                        let at = out.len();
                        out.resize(at + len, 0);
                        tokio::io::AsyncReadExt::read_exact(&mut self.stream, &mut out[at..])
                            .await?;
                    }
                    None => return Ok(out),
                }
            }
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| ImapError::Io(format!("no answer within {} s", timeout.as_secs())))?
            .map_err(|e| ImapError::Io(format!("read failed: {e}")))
    }
}

/// Reads the greeting and asks for STARTTLS on the plain socket; returns
/// the socket, ready for the TLS handshake.
async fn plain_starttls(tcp: TcpStream) -> Result<TcpStream, ImapError> {
    let io_err = |e: std::io::Error| ImapError::Io(format!("STARTTLS failed: {e}"));
    let mut plain = BufReader::new(tcp);
    let mut line = Vec::new();
    plain.read_until(b'\n', &mut line).await.map_err(io_err)?;
    if !line.starts_with(b"* OK") {
        return Err(ImapError::Protocol(format!(
            "greeting was `{}`",
            String::from_utf8_lossy(&line).trim_end()
        )));
    }
    plain
        .get_mut()
        .write_all(b"S0 STARTTLS\r\n")
        .await
        .map_err(io_err)?;
    loop {
        line.clear();
        let n = plain.read_until(b'\n', &mut line).await.map_err(io_err)?;
        if n == 0 {
            return Err(ImapError::Io(
                "the server closed the connection during STARTTLS".into(),
            ));
        }
        if line.starts_with(b"S0 ") {
            if line.starts_with(b"S0 OK") {
                return Ok(plain.into_inner());
            }
            return Err(ImapError::Refused {
                command: "STARTTLS".into(),
                text: String::from_utf8_lossy(&line[3..]).trim_end().to_string(),
            });
        }
    }
}
