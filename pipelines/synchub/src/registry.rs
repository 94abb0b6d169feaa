//! The connector registry: one explicit line per connector kind.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use synchub_core::Connector;
use synchub_engine::config::ConnectionConfig;

/// Connector kinds this build knows.
pub const KINDS: &[&str] = &["csv", "shopify", "woocommerce"];

/// Builds the connector of one `[[connections]]` entry (no IO).
pub fn build(
    index: usize,
    cfg: &ConnectionConfig,
    base_dir: &Path,
) -> anyhow::Result<Arc<dyn Connector>> {
    let key = format!("connections[{index}].config");
    let settings = cfg.config.clone();
    match cfg.kind.as_str() {
        "csv" => {
            let parsed: synchub_csv::CsvConfig = serde_path_to_error::deserialize(settings)
                .map_err(|e| anyhow!("key `{key}.{}`: {}", e.path(), e.inner()))?;
            let source = synchub_csv::CsvSource::build(parsed, Some(base_dir))
                .map_err(|e| anyhow!("key `{key}`: {e}"))?;
            Ok(Arc::new(source))
        }
        "shopify" => {
            let parsed: synchub_shopify::ShopifyConfig = serde_path_to_error::deserialize(settings)
                .map_err(|e| anyhow!("key `{key}.{}`: {}", e.path(), e.inner()))?;
            let connector = synchub_shopify::ShopifyConnector::new(parsed)
                .map_err(|e| anyhow!("key `{key}`: {e}"))?;
            Ok(Arc::new(connector))
        }
        "woocommerce" => {
            let parsed: synchub_woocommerce::WooConfig = serde_path_to_error::deserialize(settings)
                .map_err(|e| anyhow!("key `{key}.{}`: {}", e.path(), e.inner()))?;
            let connector = synchub_woocommerce::WooConnector::new(parsed)
                .map_err(|e| anyhow!("key `{key}`: {e}"))?;
            Ok(Arc::new(connector))
        }
        other => bail!(
            "key `connections[{index}].kind`: unknown connector `{other}`; this build has: {}",
            KINDS.join(", ")
        ),
    }
}
