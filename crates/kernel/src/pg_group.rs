//! A PostgreSQL group of writes as one statement's text (see
//! `db::pg_group_statement`). Inserts of the same shape — the same table,
//! columns and row expressions, whoever made them — are sent as one
//! `INSERT … SELECT … FROM unnest($1::…[], …)`, their rows as arrays: a
//! group's text then depends on which kinds of write it holds, not on how
//! many, so the server parses and plans a handful of parts instead of one
//! per write, and the driver's statement cache finds the text again.

use std::borrow::Cow;

use crate::db::{Stmt, Val};

/// One part of the statement: its text, placeholders numbered from `$1`.
pub(crate) struct Part<'a> {
    pub sql: Cow<'a, str>,
    pub args: Args<'a>,
}

impl<'a> Part<'a> {
    /// A statement as it is.
    pub fn of(st: &'a Stmt) -> Part<'a> {
        Part {
            sql: Cow::Borrowed(st.sql()),
            args: Args::Vals(st.args()),
        }
    }
}

pub(crate) enum Args<'a> {
    /// A statement's own arguments.
    Vals(&'a [Val]),
    /// One array an argument of the merged rows' shape.
    Columns(Vec<Column>),
}

impl Args<'_> {
    pub fn len(&self) -> usize {
        match self {
            Args::Vals(v) => v.len(),
            Args::Columns(c) => c.len(),
        }
    }
}

pub(crate) enum Column {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Vec<u8>>),
    Uuid(Vec<Option<uuid::Uuid>>),
}

impl Column {
    fn of(v: &Val) -> Column {
        match v {
            Val::Int(_) => Column::Int(Vec::new()),
            Val::Text(_) => Column::Text(Vec::new()),
            Val::Bytes(_) => Column::Bytes(Vec::new()),
            Val::Uuid(_) => Column::Uuid(Vec::new()),
        }
    }

    fn sql_type(&self) -> &'static str {
        match self {
            Column::Int(_) => "int8",
            Column::Text(_) => "text",
            Column::Bytes(_) => "bytea",
            Column::Uuid(_) => "uuid",
        }
    }

    /// False when `v` is of another type than the column.
    fn push(&mut self, v: &Val) -> bool {
        match (self, v) {
            (Column::Int(c), Val::Int(v)) => c.push(*v),
            (Column::Text(c), Val::Text(v)) => c.push(v.clone()),
            (Column::Bytes(c), Val::Bytes(v)) => c.push(v.clone()),
            (Column::Uuid(c), Val::Uuid(v)) => c.push(*v),
            _ => return false,
        }
        true
    }
}

/// An `INSERT … VALUES (…), (…) [tail]` seen as rows of one shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Up to `VALUES`: `INSERT INTO t (a, b)`.
    head: String,
    /// One row's expressions, its placeholders numbered from `$1`.
    row: String,
    /// After the rows (`ON CONFLICT DO NOTHING`); no placeholder in it.
    tail: String,
    /// Arguments a row takes.
    width: usize,
}

/// The shape of `sql` taking `args` arguments and its number of rows, when
/// it is a plain `INSERT … VALUES` whose rows all have the same
/// expressions, each row taking its own run of `width` arguments.
pub(crate) fn shape(sql: &str, args: usize) -> Option<(Shape, usize)> {
    let upper = sql.to_ascii_uppercase();
    if !upper.trim_start().starts_with("INSERT") || upper.contains("RETURNING") {
        return None;
    }
    let at = find_word(&upper, "VALUES")?;
    let head = sql[..at].trim_end();
    if head.contains(['\'', '$', '"']) {
        return None;
    }
    let mut rest = &sql[at + "VALUES".len()..];
    let mut rows = Vec::new();
    loop {
        rest = rest.trim_start();
        let inner = rest.strip_prefix('(')?;
        let end = closing(inner)?;
        rows.push(&inner[..end]);
        rest = inner[end + 1..].trim_start();
        match rest.strip_prefix(',') {
            Some(more) => rest = more,
            None => break,
        }
    }
    let tail = rest.trim_end();
    if tail.contains(['$', '\'', ';']) || rows.is_empty() || !args.is_multiple_of(rows.len()) {
        return None;
    }
    let width = args / rows.len();
    let mut template: Option<String> = None;
    for (j, row) in rows.iter().enumerate() {
        let low = j * width;
        let renumbered = renumber(row, |n| (n > low && n <= low + width).then(|| n - low))?;
        match &template {
            None => template = Some(renumbered),
            Some(t) if *t == renumbered => {}
            Some(_) => return None,
        }
    }
    Some((
        Shape {
            head: head.to_string(),
            row: template?,
            tail: tail.to_string(),
            width,
        },
        rows.len(),
    ))
}

/// Where `word` (upper case) stands alone in `upper`, outside quotes.
fn find_word(upper: &str, word: &str) -> Option<usize> {
    let bytes = upper.as_bytes();
    let mut quoted = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\'' {
            quoted = !quoted;
        }
        if quoted || !upper[i..].starts_with(word) {
            continue;
        }
        let before = i == 0 || bytes[i - 1].is_ascii_whitespace();
        let after = bytes
            .get(i + word.len())
            .is_none_or(|c| c.is_ascii_whitespace() || *c == b'(');
        if before && after {
            return Some(i);
        }
    }
    None
}

/// The index of the `)` closing a parenthesis opened just before `s`.
fn closing(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    None
}

/// `$n` → `$f(n)` outside quotes; `None` when `f` refuses a placeholder.
fn renumber(sql: &str, f: impl Fn(usize) -> Option<usize>) -> Option<String> {
    replace_placeholders(sql, |n| f(n).map(|m| format!("${m}")))
}

/// Each `$n` outside quotes → `f(n)`; `None` when `f` refuses one.
fn replace_placeholders(sql: &str, f: impl Fn(usize) -> Option<String>) -> Option<String> {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c != '$' || quoted {
            out.push(c);
            continue;
        }
        let mut n = None::<usize>;
        while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
            n = Some(n.unwrap_or(0) * 10 + d as usize);
            chars.next();
        }
        match n {
            Some(n) => out.push_str(&f(n)?),
            None => out.push('$'),
        }
    }
    Some(out)
}

/// The group's writes as parts: inserts of one shape with two or more rows
/// between them merged into one `unnest` part (at the place of the first),
/// everything else as it is.
pub(crate) fn merge<'a>(writes: &[&'a Stmt]) -> Vec<Part<'a>> {
    /// The inserts of one shape; `columns` is `None` once one of them
    /// brought arguments of other types under the same text.
    struct Merged<'a> {
        shape: Shape,
        columns: Option<Vec<Column>>,
        rows: usize,
        members: Vec<&'a Stmt>,
    }
    enum Slot<'a> {
        Plain(&'a Stmt),
        Merged(Merged<'a>),
    }
    let mut slots: Vec<Slot<'a>> = Vec::new();
    for st in writes {
        let Some((shape, rows)) = shape(st.sql(), st.args().len()) else {
            slots.push(Slot::Plain(st));
            continue;
        };
        let at = slots
            .iter()
            .position(|slot| matches!(slot, Slot::Merged(m) if m.shape == shape));
        let i = match at {
            Some(i) => i,
            None => {
                slots.push(Slot::Merged(Merged {
                    columns: Some(st.args()[..shape.width].iter().map(Column::of).collect()),
                    shape,
                    rows: 0,
                    members: Vec::new(),
                }));
                slots.len() - 1
            }
        };
        let Slot::Merged(m) = &mut slots[i] else {
            slots.push(Slot::Plain(st));
            continue;
        };
        let width = m.shape.width;
        let fits = m.columns.as_mut().is_some_and(|cols| {
            st.args()
                .iter()
                .enumerate()
                .all(|(k, v)| cols[k % width].push(v))
        });
        if !fits {
            m.columns = None;
        }
        m.rows += rows;
        m.members.push(st);
    }
    let mut parts = Vec::with_capacity(slots.len());
    for slot in slots {
        match slot {
            Slot::Plain(st) => parts.push(Part::of(st)),
            Slot::Merged(m) => match m.columns {
                Some(columns) if m.rows >= 2 => parts.push(unnest(&m.shape, columns)),
                // One row, or not mergeable: each statement as it is.
                _ => parts.extend(m.members.into_iter().map(Part::of)),
            },
        }
    }
    parts
}

/// What a condition of the group must find for the group to commit.
pub(crate) enum Expect {
    /// A row (a guard).
    Row,
    /// This many rows changed (takes of one text, merged).
    Changed(usize),
}

/// The group's takes as parts: takes of one text (the same conditional
/// update from many callers) with two or more between them as one `UPDATE
/// … FROM unnest(…)`, which must change as many rows as there were takes
/// (two takes of one row change it once: the group then fails and each
/// runs alone). Anything else as it is.
pub(crate) fn merge_takes<'a>(takes: &[&'a Stmt]) -> Vec<(Part<'a>, Expect)> {
    let mut texts: Vec<(&str, Vec<&'a Stmt>)> = Vec::new();
    for st in takes {
        match texts.iter_mut().find(|(sql, _)| *sql == st.sql()) {
            Some((_, same)) => same.push(st),
            None => texts.push((st.sql(), vec![st])),
        }
    }
    let mut parts = Vec::new();
    for (sql, same) in texts {
        match (same.len() >= 2)
            .then(|| merged_update(sql, &same))
            .flatten()
        {
            Some(part) => parts.push((part, Expect::Changed(same.len()))),
            None => parts.extend(same.into_iter().map(|st| (Part::of(st), Expect::Row))),
        }
    }
    parts
}

/// `UPDATE t SET … WHERE …` over the rows of `same` (of that one text).
fn merged_update(sql: &str, same: &[&Stmt]) -> Option<Part<'static>> {
    let upper = sql.to_ascii_uppercase();
    if !upper.trim_start().starts_with("UPDATE")
        || find_word(&upper, "FROM").is_some()
        || find_word(&upper, "RETURNING").is_none()
    {
        return None;
    }
    let width = same[0].args().len();
    let mut columns: Vec<Column> = same[0].args().iter().map(Column::of).collect();
    for st in same {
        if st.args().len() != width
            || !st
                .args()
                .iter()
                .enumerate()
                .all(|(k, v)| columns[k].push(v))
        {
            return None;
        }
    }
    let text = replace_placeholders(sql, |n| (n >= 1 && n <= width).then(|| format!("u.a{n}")))?;
    let at = find_word(&text.to_ascii_uppercase(), "WHERE")?;
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(k, c)| format!("${}::{}[]", k + 1, c.sql_type()))
        .collect();
    let names: Vec<String> = (1..=width).map(|k| format!("a{k}")).collect();
    let sql = format!(
        "{} FROM unnest({}) AS u({}) {}",
        text[..at].trim_end(),
        arrays.join(", "),
        names.join(", "),
        &text[at..]
    );
    Some(Part {
        sql: Cow::Owned(sql),
        args: Args::Columns(columns),
    })
}

fn unnest(shape: &Shape, columns: Vec<Column>) -> Part<'static> {
    let row = replace_placeholders(&shape.row, |n| Some(format!("u.a{n}"))).unwrap_or_default();
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(k, c)| format!("${}::{}[]", k + 1, c.sql_type()))
        .collect();
    let names: Vec<String> = (1..=columns.len()).map(|k| format!("a{k}")).collect();
    let mut sql = format!(
        "{} SELECT {row} FROM unnest({}) AS u({})",
        shape.head,
        arrays.join(", "),
        names.join(", ")
    );
    if !shape.tail.is_empty() {
        sql.push(' ');
        sql.push_str(&shape.tail);
    }
    Part {
        sql: Cow::Owned(sql),
        args: Args::Columns(columns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_one_shape_are_recognised() {
        let (s, rows) = shape(
            "INSERT INTO t (a, b, c) VALUES ($1, 'x', $2), ($3, 'x', $4) ON CONFLICT DO NOTHING",
            4,
        )
        .unwrap();
        assert_eq!(rows, 2);
        assert_eq!(s.row, "$1, 'x', $2");
        assert_eq!(s.tail, "ON CONFLICT DO NOTHING");
        assert_eq!(s.width, 2);
        let (one, _) = shape("INSERT INTO t (a, b, c)\n VALUES ($1, 'x', $2)", 2).unwrap();
        assert_eq!(one, s.clone().with_tail(""));
        // Rows of different expressions, placeholders out of their run, a
        // tail with an argument, an update: not merged.
        assert!(shape("INSERT INTO t (a) VALUES ($1), ($1)", 2).is_none());
        assert!(shape("INSERT INTO t (a, b) VALUES ($1, 1), ($2, 2)", 2).is_none());
        assert!(
            shape(
                "INSERT INTO t (a) VALUES ($1) ON CONFLICT (a) DO UPDATE SET a = $2",
                2
            )
            .is_none()
        );
        assert!(shape("UPDATE t SET a = $1", 1).is_none());
        assert!(shape("INSERT INTO t (a) VALUES ($1) RETURNING a", 1).is_none());
        // A row reusing its own argument is one shape.
        let (r, _) = shape("INSERT INTO t (a, b) VALUES ($1, $1), ($2, $2)", 2).unwrap();
        assert_eq!(r.row, "$1, $1");
    }

    #[test]
    fn inserts_of_one_shape_become_one_unnest_part() {
        let a = Stmt::new("INSERT INTO t (a, b) VALUES ($1, $2)")
            .bind(1i64)
            .bind("one");
        let b = Stmt::new("UPDATE u SET x = 1 WHERE id = $1").bind(7i64);
        let c = Stmt::insert_rows(
            "INSERT INTO t (a, b)",
            vec![
                vec![2i64.into(), "two".into()],
                vec![3i64.into(), "three".into()],
            ],
        );
        let parts = merge(&[&a, &b, &c]);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].sql,
            "INSERT INTO t (a, b) SELECT u.a1, u.a2 FROM unnest($1::int8[], $2::text[]) AS u(a1, a2)"
        );
        match &parts[0].args {
            Args::Columns(cols) => match (&cols[0], &cols[1]) {
                (Column::Int(i), Column::Text(t)) => {
                    assert_eq!(i, &vec![Some(1), Some(2), Some(3)]);
                    assert_eq!(t.len(), 3);
                }
                _ => panic!("columns of the wrong types"),
            },
            Args::Vals(_) => panic!("not merged"),
        }
        assert_eq!(parts[1].sql, "UPDATE u SET x = 1 WHERE id = $1");
        // One row alone stays as it is.
        let parts = merge(&[&a, &b]);
        assert_eq!(parts[0].sql, "INSERT INTO t (a, b) VALUES ($1, $2)");
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn takes_of_one_text_become_one_update() {
        let take = |id: i64| {
            Stmt::new("UPDATE h SET s = 'used' WHERE id = $1 AND s = 'free' RETURNING id").bind(id)
        };
        let other = Stmt::new("UPDATE k SET s = 'x' WHERE id = $1 RETURNING id").bind(9i64);
        let (a, b) = (take(1), take(2));
        let parts = merge_takes(&[&a, &other, &b]);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].0.sql,
            "UPDATE h SET s = 'used' FROM unnest($1::int8[]) AS u(a1) WHERE id = u.a1 AND s = 'free' RETURNING id"
        );
        assert!(matches!(parts[0].1, Expect::Changed(2)));
        assert!(matches!(parts[1].1, Expect::Row));
        assert_eq!(parts[1].0.sql, other.sql());
    }

    impl Shape {
        fn with_tail(mut self, tail: &str) -> Shape {
            self.tail = tail.into();
            self
        }
    }
}
