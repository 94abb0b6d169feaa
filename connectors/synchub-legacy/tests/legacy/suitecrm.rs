//! SuiteCRM on MariaDB.
