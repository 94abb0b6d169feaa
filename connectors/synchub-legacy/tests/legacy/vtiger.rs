//! vtiger on MariaDB.
