//! synchub connector for WooCommerce (REST API v3).
