//! The `config` table of an `odoo` connection.

use secrecy::SecretString;
use serde::Deserialize;

/// Settings of one Odoo connection.
///
/// ```toml
/// [[connections]]
/// name = "erp"
/// kind = "odoo"
/// [connections.config]
/// url = "https://erp.example.com.tw"
/// database = "prod"
/// login = "sync@example.com.tw"
/// api_key = "${ODOO_API_KEY}"
/// push_orders = true
/// ```
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OdooConfig {
    /// The server's base URL.
    pub url: String,
    /// The database name.
    pub database: String,
    /// The user's login.
    pub login: String,
    /// `jsonrpc` (default: `/jsonrpc` and `execute_kw`, every release) or
    /// `json2` (Odoo 19+: `/json/2/<model>/<method>`, needs `api_key`).
    #[serde(default)]
    pub api: crate::rpc::Api,
    /// The user's password (`${VAR}` references are expanded).
    #[serde(default)]
    pub password: Option<SecretString>,
    /// An API key (Odoo 14+), used in place of the password.
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// Records per request (1–1000).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// How far each incremental pass looks back before the watermark, in
    /// seconds (covers clock skew and transactions committed late).
    #[serde(default = "default_overlap")]
    pub overlap_seconds: u32,
    /// Shop orders are written to Odoo as sale orders.
    #[serde(default)]
    pub push_orders: bool,
    /// Create a product for an order line whose SKU matches no
    /// `default_code` (otherwise such an order is refused, naming the SKU).
    #[serde(default)]
    pub create_products: bool,
    /// The `res.partner` field that carries the CRM id of partners created
    /// from the CRM, looked up before every create so a retried create
    /// makes one partner.
    #[serde(default = "default_crm_id_field")]
    pub crm_id_field: String,
}

fn default_page_size() -> u32 {
    200
}

fn default_overlap() -> u32 {
    300
}

fn default_crm_id_field() -> String {
    "ref".into()
}

impl std::fmt::Debug for OdooConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OdooConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("login", &self.login)
            .field("api", &self.api)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}
