//! The QuickBooks connector and its factory (`kind = "quickbooks"`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use synchub_core::{
    Change, Connector, ConnectorError, Cursor, ErrorClass, ObjectKind, ObjectSpec, Page,
    PushOutcome, Refusal,
};
use synchub_http::oauth::SharedClock;
use synchub_http::{
    Auth, Built, ConnectorFactory, Deps, HttpClient, OAuthConfig, RetryPolicy, SignIn, TokenManager,
};

use crate::client::Api;
use crate::config::{QuickBooksConfig, OAUTH};
use crate::map;
use crate::policy::{default_quota, QuickBooksPolicy};
use crate::pull::{self, Stream};
use crate::push::{self, WriteResult};
use crate::webhook::QuickBooksWebhooks;

/// The factory registered under `quickbooks`.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuickBooksFactory;

/// One QuickBooks company.
#[derive(Debug)]
pub struct QuickBooks {
    cfg: QuickBooksConfig,
    api: Api,
    clock: SharedClock,
    tokens: Option<Arc<TokenManager>>,
}

/// The OAuth settings of a configuration (the token manager's and
/// `synchub auth`'s).
pub fn oauth_config(cfg: &QuickBooksConfig) -> Result<OAuthConfig, ConnectorError> {
    cfg.oauth_config()
}

impl ConnectorFactory for QuickBooksFactory {
    const KIND: &'static str = "quickbooks";
    type Config = QuickBooksConfig;

    fn build(config: QuickBooksConfig, deps: &Deps) -> Result<Built, ConnectorError> {
        let qb = Arc::new(QuickBooks::new(config, deps)?);
        let webhooks = qb
            .cfg
            .webhook_verifier_token
            .clone()
            .map(|t| Arc::new(QuickBooksWebhooks::new(qb.cfg.realm_id.clone(), t)) as _);
        Ok(Built {
            connector: qb,
            webhooks,
        })
    }

    fn sign_in(config: &QuickBooksConfig) -> Result<Option<SignIn>, ConnectorError> {
        config
            .oauth_settings()
            .sign_in(&OAUTH)
            .map(Some)
            .map_err(ConnectorError::Config)
    }
}

impl QuickBooks {
    /// Builds the connector (no IO).
    pub fn new(cfg: QuickBooksConfig, deps: &Deps) -> Result<Self, ConnectorError> {
        cfg.validate()?;
        if let Some(t) = &cfg.webhook_verifier_token {
            synchub_http::secret::register(t);
        }
        let tokens = match &deps.tokens {
            Some(vault) => {
                let http = synchub_http::new_reqwest_client().map_err(ConnectorError::from)?;
                Some(Arc::new(
                    TokenManager::new(&deps.connection, oauth_config(&cfg)?, vault.clone(), http)
                        .with_clock(deps.clock.clone()),
                ))
            }
            None => None,
        };
        let auth = tokens.clone().map_or(Auth::None, Auth::OAuth);
        let retry = RetryPolicy {
            default_throttle_wait: Some(Duration::from_secs(cfg.throttle_wait_seconds)),
            ..RetryPolicy::default()
        };
        let http: HttpClient = deps
            .http(
                HttpClient::builder(cfg.api_base())
                    .credential(format!("quickbooks:{}", cfg.realm_id))
                    .quota(cfg.quota.clone().unwrap_or_else(default_quota))
                    .retry(retry)
                    .policy(Arc::new(QuickBooksPolicy {
                        throttle_wait: Duration::from_secs(cfg.throttle_wait_seconds),
                    }))
                    .auth(auth)
                    .default_header("accept", "application/json")
                    .map_err(ConnectorError::from)?,
            )
            .map_err(ConnectorError::from)?;
        let api = Api {
            http,
            realm: cfg.realm_id.clone(),
            minor_version: cfg.minor_version.to_string(),
            connection: deps.connection.clone(),
            no_tokens: deps.tokens.is_none(),
        };
        Ok(QuickBooks {
            cfg,
            api,
            clock: deps.clock.clone(),
            tokens,
        })
    }

    /// The token manager, when a token store is open.
    pub fn tokens(&self) -> Option<&Arc<TokenManager>> {
        self.tokens.as_ref()
    }

    fn stream(object: ObjectKind) -> Option<Stream> {
        match object {
            ObjectKind::Contact => Some(Stream {
                entities: &["Customer"],
                map: |_, v| map::customer_to_remote(v),
            }),
            ObjectKind::Invoice => Some(Stream {
                entities: &["Invoice", "SalesReceipt"],
                map: map::txn_to_remote,
            }),
            _ => None,
        }
    }
}

async fn each<'a, F, Fut>(
    changes: &'a [Change],
    mut write: F,
) -> Result<Vec<PushOutcome>, ConnectorError>
where
    F: FnMut(&'a Change) -> Fut,
    Fut: std::future::Future<Output = WriteResult>,
{
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        match write(c).await {
            Ok(Ok(w)) => out.push(PushOutcome::written(&c.crm_id, w)),
            Ok(Err(r)) => out.push(PushOutcome::refused(&c.crm_id, r)),
            Err(e) => match e.class() {
                ErrorClass::Reauth | ErrorClass::Config => return Err(e),
                _ if matches!(e, ConnectorError::Cancelled(_)) => return Err(e),
                _ => out.push(PushOutcome::refused(&c.crm_id, Refusal::from_error(&e))),
            },
        }
    }
    Ok(out)
}

#[async_trait]
impl Connector for QuickBooks {
    fn kind(&self) -> &'static str {
        "quickbooks"
    }

    fn objects(&self) -> Vec<ObjectSpec> {
        vec![
            ObjectSpec {
                kind: ObjectKind::Contact,
                can_read: true,
                incremental: true,
                can_write: true,
            },
            ObjectSpec {
                kind: ObjectKind::Order,
                can_read: false,
                incremental: false,
                can_write: true,
            },
            ObjectSpec {
                kind: ObjectKind::Invoice,
                can_read: true,
                incremental: true,
                can_write: false,
            },
        ]
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.api
            .query("select count(*) from Customer")
            .await
            .map(|_| ())
            .map_err(|e| self.api.fault_error(e))
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        let stream = Self::stream(object).ok_or_else(|| {
            ConnectorError::Unsupported(format!("quickbooks cannot read {object}"))
        })?;
        pull::pull(
            &self.api,
            stream,
            from,
            self.clock.now(),
            self.cfg.page_size,
            chrono::Duration::seconds(i64::from(self.cfg.overlap_seconds)),
        )
        .await
    }

    async fn estimate(&self, object: ObjectKind) -> Option<u64> {
        let stream = Self::stream(object)?;
        let mut total = 0;
        for e in stream.entities {
            let (qr, _) = self
                .api
                .query(&format!("select count(*) from {e}"))
                .await
                .ok()?;
            total += qr.get("totalCount")?.as_u64()?;
        }
        Some(total)
    }

    async fn push(
        &self,
        object: ObjectKind,
        changes: &[Change],
    ) -> Result<Vec<PushOutcome>, ConnectorError> {
        match object {
            ObjectKind::Contact => each(changes, |c| push::write_contact(&self.api, c)).await,
            ObjectKind::Order => {
                each(changes, |c| push::write_order(&self.api, &self.cfg, c)).await
            }
            other => Err(ConnectorError::Unsupported(format!(
                "quickbooks cannot write {other}"
            ))),
        }
    }
}
