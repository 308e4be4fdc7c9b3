//! Statements built piece by piece (a row of values per item), numbered
//! `$1, $2, ...` for both databases. sqlx's `QueryBuilder` numbers them
//! `?` under the `Any` driver, which PostgreSQL refuses.

use std::fmt::Write;

use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, Encode, Type};

/// A statement under construction: its text and the values bound so far.
pub struct Statement<'q> {
    sql: String,
    args: AnyArguments<'q>,
    bound: usize,
}

/// One row of values of [`Statement::values`] or item of
/// [`Statement::list`].
pub struct Values<'s, 'q> {
    statement: &'s mut Statement<'q>,
    first: bool,
}

impl<'q> Statement<'q> {
    /// A statement starting with `sql`.
    pub fn new(sql: &str) -> Self {
        Statement {
            sql: sql.to_string(),
            args: AnyArguments::default(),
            bound: 0,
        }
    }

    /// Appends text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind<T: Encode<'q, Any> + Type<Any> + 'q>(&mut self, value: T) -> &mut Self {
        self.bound += 1;
        let _ = write!(self.sql, "${}", self.bound);
        // Encoding into `Any`'s buffer only records the value: it cannot
        // fail for the types the store binds.
        self.args
            .add(value)
            .expect("a value the metadata store binds encodes");
        self
    }

    /// Appends `VALUES (...), (...)`: a row per item, filled by `row`.
    pub fn values<I: IntoIterator>(
        &mut self,
        items: I,
        mut row: impl FnMut(&mut Values<'_, 'q>, I::Item),
    ) -> &mut Self {
        self.sql.push_str("VALUES ");
        for (i, item) in items.into_iter().enumerate() {
            self.sql.push_str(if i == 0 { "(" } else { ", (" });
            row(
                &mut Values {
                    statement: self,
                    first: true,
                },
                item,
            );
            self.sql.push(')');
        }
        self
    }

    /// Appends `(...)` with a value per item (for `IN`).
    pub fn list<T: Encode<'q, Any> + Type<Any> + 'q>(
        &mut self,
        items: impl IntoIterator<Item = T>,
    ) -> &mut Self {
        self.sql.push('(');
        let mut list = Values {
            statement: self,
            first: true,
        };
        for item in items {
            list.bind(item);
        }
        self.sql.push(')');
        self
    }

    /// The statement, ready to run.
    pub fn query(&mut self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        sqlx::query_with(&self.sql, std::mem::take(&mut self.args))
    }
}

impl<'q> Values<'_, 'q> {
    /// The next value of the row.
    pub fn bind<T: Encode<'q, Any> + Type<Any> + 'q>(&mut self, value: T) -> &mut Self {
        if !self.first {
            self.statement.sql.push_str(", ");
        }
        self.first = false;
        self.statement.bind(value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_across_pieces() {
        let mut s = Statement::new("UPDATE t SET a = v.column2 FROM (");
        s.values([(1, "x"), (2, "y")], |row, (n, name)| {
            row.bind(n).bind(name);
        });
        s.push(") AS v WHERE t.k = ")
            .bind(7)
            .push(" AND t.p IN ")
            .list(["a", "b"]);
        assert_eq!(
            s.sql,
            "UPDATE t SET a = v.column2 FROM (VALUES ($1, $2), ($3, $4)) AS v WHERE t.k = $5 AND t.p IN ($6, $7)"
        );
        assert_eq!(s.bound, 7);
    }
}
