//! Connector tests against the sandbox and fixture-built wiremock answers.
