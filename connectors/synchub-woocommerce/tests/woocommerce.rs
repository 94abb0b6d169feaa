//! Connector tests.
