//! A small statement builder that numbers placeholders `$1, $2, …`, which
//! both SQLite and PostgreSQL accept (sqlx's `QueryBuilder` emits `?` for the
//! `Any` driver, which PostgreSQL rejects).

/// The connection speaks PostgreSQL.
pub(crate) fn is_postgres(conn: &sqlx::AnyConnection) -> bool {
    conn.backend_name().eq_ignore_ascii_case("postgresql")
}

use std::fmt::Write;

/// Separates the values of a column packed by [`pack`].
const SEP: char = '\u{1f}';
/// Stands for NULL in a packed column.
const NULL_MARK: char = '\u{1e}';

/// One column of many rows as one text parameter, for PostgreSQL to unpack
/// with [`unpacked`]: a whole page's rows in one statement with a fixed
/// text (prepared once per connection), a handful of parameters, and no
/// per-row placeholders to bind and parse. `None` when a value holds one of
/// the two control characters the packing uses (the caller then falls back
/// to a multi-row `VALUES` statement).
pub(crate) fn pack<'a, I>(values: I) -> Option<String>
where
    I: IntoIterator<Item = Option<&'a str>>,
{
    let mut out = String::new();
    for v in values {
        // Every value, the first too, starts with a separator, so one empty
        // string is not read back as no value at all (`unpacked` drops the
        // empty element before the first separator).
        out.push(SEP);
        match v {
            Some(v) if v.contains([SEP, NULL_MARK]) => return None,
            Some(v) => out.push_str(v),
            None => out.push(NULL_MARK),
        }
    }
    Some(out)
}

/// The PostgreSQL array of the column packed into parameter `$n`, cast to
/// `ty[]` (`text`, `bigint`).
pub(crate) fn unpacked(n: usize, ty: &str) -> String {
    format!("((string_to_array(${n}, chr(31), chr(30)))[2:])::{ty}[]")
}

use sqlx::any::{AnyArguments, AnyQueryResult, AnyRow};
use sqlx::{Any, AnyConnection, Arguments, Encode, Type};

pub(crate) struct Sql {
    text: String,
    args: AnyArguments<'static>,
    n: usize,
    first_in_tuple: bool,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            args: AnyArguments::default(),
            n: 0,
            first_in_tuple: true,
        }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder and binds `value` to it.
    pub(crate) fn bind<T>(&mut self, value: T) -> &mut Sql
    where
        T: 'static + Send + Encode<'static, Any> + Type<Any>,
    {
        self.n += 1;
        let _ = write!(self.text, "${}", self.n);
        // Encoding into AnyArguments only fails for types Any cannot carry,
        // which the signatures of this crate rule out.
        let _ = self.args.add(value);
        self
    }

    /// Starts a parenthesised tuple of values.
    pub(crate) fn open(&mut self) -> &mut Sql {
        self.text.push('(');
        self.first_in_tuple = true;
        self
    }

    /// Adds one value to the open tuple.
    pub(crate) fn item<T>(&mut self, value: T) -> &mut Sql
    where
        T: 'static + Send + Encode<'static, Any> + Type<Any>,
    {
        if !self.first_in_tuple {
            self.text.push_str(", ");
        }
        self.first_in_tuple = false;
        self.bind(value)
    }

    /// Closes the tuple.
    pub(crate) fn close(&mut self) -> &mut Sql {
        self.text.push(')');
        self
    }

    /// `($1, $2, …)` for every value.
    pub(crate) fn list<T, I>(&mut self, values: I) -> &mut Sql
    where
        I: IntoIterator<Item = T>,
        T: 'static + Send + Encode<'static, Any> + Type<Any>,
    {
        self.open();
        for v in values {
            self.item(v);
        }
        self.close()
    }

    /// ` IN ($1, $2, …)`; on PostgreSQL ` = ANY(string_to_array($1, chr(31)))`
    /// instead: one parameter, so the statement is planned once with the
    /// index whatever the page's size (a 500-item IN list re-planned per
    /// page cost more than the lookup itself).
    pub(crate) fn in_set(&mut self, postgres: bool, values: &[String]) -> &mut Sql {
        const SEP: char = '\u{1f}';
        if postgres && !values.iter().any(|v| v.contains(SEP)) {
            self.text.push_str(" = ANY(string_to_array(");
            self.bind(values.join(&SEP.to_string()));
            self.text.push_str(", chr(31)))");
            self
        } else {
            self.text.push_str(" IN ");
            self.list(values.iter().cloned())
        }
    }

    pub(crate) async fn execute(
        self,
        conn: &mut AnyConnection,
    ) -> Result<AnyQueryResult, sqlx::Error> {
        sqlx::query_with(&self.text, self.args).execute(conn).await
    }

    pub(crate) async fn fetch_all(
        self,
        conn: &mut AnyConnection,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        sqlx::query_with(&self.text, self.args)
            .fetch_all(conn)
            .await
    }
}
