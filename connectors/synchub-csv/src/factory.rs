//! The csv connector on the typed contract: [`CsvFactory`] builds a
//! source from its checked `config` table ([`CsvConfig`]), resolving a
//! relative `path` against the pipeline file's folder (`Deps::base_dir`).
//! [`CsvKind`] is the erased form the registry holds: the typed factory,
//! with the column map's fields checked first so that every misspelled
//! field is reported at once, by its key path, with a suggestion.

use std::sync::Arc;

use synchub_core::ConnectorError;
use synchub_http::connect::{Built, ConnectorFactory, Deps, DynFactory, Factory};

use crate::{ContactField, CsvConfig, CsvSource, FIELDS};

/// The `csv` connector kind.
pub struct CsvFactory;

impl ConnectorFactory for CsvFactory {
    const KIND: &'static str = "csv";
    type Config = CsvConfig;

    fn build(config: CsvConfig, deps: &Deps) -> Result<Built, ConnectorError> {
        let source = CsvSource::build(config, Some(deps.base_dir.as_path()))?;
        Ok(Built::connector(Arc::new(source)))
    }
}

/// The registry's entry for [`CsvFactory`].
pub struct CsvKind;

impl DynFactory for CsvKind {
    fn kind(&self) -> &'static str {
        CsvFactory::KIND
    }

    fn build(
        &self,
        key: &str,
        settings: &serde_json::Value,
        deps: &Deps,
    ) -> Result<Built, ConnectorError> {
        check_map(key, settings)?;
        TYPED.build(key, settings, deps)
    }

    fn sign_in(
        &self,
        key: &str,
        settings: &serde_json::Value,
        deps: &Deps,
    ) -> Result<Option<synchub_http::SignIn>, ConnectorError> {
        check_map(key, settings)?;
        TYPED.sign_in(key, settings, deps)
    }
}

static TYPED: Factory<CsvFactory> = Factory::new();

/// Every field the column map names is one of [`FIELDS`]; the problems
/// name `{key}.map."{column}"` and the field meant, when it is a plausible
/// misspelling.
fn check_map(key: &str, settings: &serde_json::Value) -> Result<(), ConnectorError> {
    let Some(map) = settings.get("map").and_then(serde_json::Value::as_object) else {
        // absent, or not a table: the typed parse says so
        return Ok(());
    };
    let problems: Vec<String> = map
        .iter()
        .filter_map(|(column, field)| {
            let field = field.as_str()?;
            if ContactField::parse(field).is_some() {
                return None;
            }
            let hint = match did_you_mean(field) {
                Some(f) => format!("did you mean `{f}`?"),
                None => format!("expected one of {}", FIELDS.join(", ")),
            };
            Some(format!(
                "key `{key}.map.\"{column}\"`: unknown field `{field}`; {hint}"
            ))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConnectorError::Config(problems.join("; ")))
    }
}

/// The field closest to `word` when it is a plausible misspelling (edit
/// distance at most a third of the word, and at least 1).
fn did_you_mean(word: &str) -> Option<&'static str> {
    let word = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    FIELDS
        .iter()
        .map(|f| (strsim::osa_distance(&word, f), *f))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn misspelled_map_fields_are_named_with_their_key_and_a_suggestion() {
        let settings =
            json!({"path": "a.csv", "map": {"Mail": "emial", "Co": "compnay", "X": "zzz"}});
        let e = CsvKind
            .build("connections[0].config", &settings, &Deps::new("c", "."))
            .err()
            .expect("refused");
        let text = e.to_string();
        assert!(
            text.contains("key `connections[0].config.map.\"Co\"`: unknown field `compnay`; did you mean `company`?"),
            "{text}"
        );
        assert!(text.contains("did you mean `email`?"), "{text}");
        assert!(
            text.contains("unknown field `zzz`; expected one of"),
            "{text}"
        );
    }

    #[test]
    fn a_relative_path_is_read_from_the_pipeline_folder() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("people.csv"),
            "name,email\nAmy,amy@example.com\n",
        )
        .expect("write");
        let settings = json!({"path": "people.csv", "map": {"email": "email"}});
        let built = CsvKind
            .build(
                "connections[0].config",
                &settings,
                &Deps::new("c", dir.path()),
            )
            .expect("built");
        assert_eq!(built.connector.kind(), "csv");
        assert!(built.webhooks.is_none());
        let unknown = json!({"path": "people.csv", "paht": 1});
        let e = CsvKind
            .build(
                "connections[0].config",
                &unknown,
                &Deps::new("c", dir.path()),
            )
            .err()
            .expect("unknown key");
        assert!(e.to_string().contains("unknown field `paht`"), "{e}");
    }
}
