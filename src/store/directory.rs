//! The postcode directory: which constituency each postcode lies in.
//!
//! It is replaced whole from the ONS files, inside one transaction, so that readers see the old
//! directory or the new one and never a mixture.

use std::collections::BTreeMap;

use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::counts::{POSTGRES_BEFORE_RECOUNT, RECOUNT_MAILABLE};
use super::{
    BeginWrite, Change, MAX_BIND_PARAMETERS, Pool, Result, Store, WriteTransaction, latest_consent,
    on_pool,
};
use crate::domain::{Actor, AuditAction, ConstituencyCode, Coordinates, Postcode};
use crate::store::{Audit, InTransaction};

/// Each contact's constituency (`contacts.constituency_code`, which the contact lists filter
/// by) as the new directory places its postcode.
const PLACE_CONTACTS: &str = "UPDATE contacts \
     SET constituency_code = (SELECT p.constituency_code FROM postcodes p \
                              WHERE p.postcode = contacts.postcode) \
     WHERE constituency_code IS DISTINCT FROM (SELECT p.constituency_code FROM postcodes p \
                                               WHERE p.postcode = contacts.postcode)";

/// One line of the directory.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryEntry {
    pub postcode: Postcode,
    pub constituency: ConstituencyCode,
    /// Where it lies, where the directory says.
    pub place: Option<Coordinates>,
}

/// A constituency of the directory, as `constituencies list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstituencySummary {
    pub code: String,
    pub name: Option<String>,
    /// Contacts in it who may be mailed something.
    pub mailable: u64,
}

/// What the directory says of a postcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostcodeLookup {
    pub constituency: ConstituencyCode,
    pub constituency_name: Option<String>,
}

/// A directory replacement under way. Nothing is visible until [`DirectoryImport::commit`];
/// dropping it abandons the import and leaves the old directory in place.
pub enum DirectoryImport {
    Sqlite(WriteTransaction<Sqlite>),
    Postgres(WriteTransaction<Postgres>),
}

macro_rules! on_transaction {
    ($import:expr, |$tx:ident| $body:expr) => {
        match $import {
            DirectoryImport::Sqlite($tx) => $body,
            DirectoryImport::Postgres($tx) => $body,
        }
    };
}

impl Store {
    /// Starts replacing the directory.
    pub async fn begin_directory_import(&self) -> Result<DirectoryImport> {
        Ok(match self.pool() {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_write().await?;
                sqlx::query("DELETE FROM postcodes")
                    .execute(&mut *tx)
                    .await?;
                DirectoryImport::Sqlite(tx)
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin_write().await?;
                sqlx::query("DELETE FROM postcodes")
                    .execute(&mut *tx)
                    .await?;
                DirectoryImport::Postgres(tx)
            }
        })
    }

    pub async fn lookup_postcode(&self, postcode: &Postcode) -> Result<Option<PostcodeLookup>> {
        let row: Option<(String, Option<String>)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT p.constituency_code, c.name FROM postcodes p \
                 LEFT JOIN constituencies c ON c.code = p.constituency_code \
                 WHERE p.postcode = $1",
            )
            .bind(postcode.as_str())
            .fetch_optional(pool)
            .await?
        });
        Ok(row.and_then(|(code, constituency_name)| {
            Some(PostcodeLookup {
                constituency: ConstituencyCode::parse(&code).ok()?,
                constituency_name,
            })
        }))
    }

    /// The constituencies of the directory, by name (those without one, by code), each with
    /// how many contacts in it may be mailed something (not suppressed or restricted, holding
    /// some consent); only those whose name holds `search` (any case) or whose code is it.
    pub async fn constituencies(&self, search: Option<&str>) -> Result<Vec<ConstituencySummary>> {
        let pattern = search.map(|s| format!("%{}%", s.trim().to_lowercase()));
        let code = search.map(|s| s.trim().to_uppercase());
        let rows: Vec<(String, Option<String>, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT k.code, k.name, COALESCE(m.n, 0) FROM constituencies k \
                 LEFT JOIN (SELECT p.constituency_code AS code, count(*) AS n \
                            FROM contacts c JOIN postcodes p ON p.postcode = c.postcode \
                            WHERE c.restricted_at IS NULL \
                              AND NOT EXISTS (SELECT 1 FROM suppressions s \
                                              WHERE s.email_hash = c.email_hash) \
                              AND EXISTS (SELECT 1 FROM topics t WHERE COALESCE(",
                latest_consent!("c.id", "t.id"),
                ", FALSE)) \
                            GROUP BY p.constituency_code) m ON m.code = k.code \
                 WHERE EXISTS (SELECT 1 FROM postcodes p WHERE p.constituency_code = k.code) \
                   AND ($1 IS NULL OR lower(k.name) LIKE $1 OR k.code = $2) \
                 ORDER BY COALESCE(k.name, k.code)"
            ))
            .bind(pattern)
            .bind(code)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(code, name, mailable)| ConstituencySummary {
                code,
                name,
                mailable: mailable as u64,
            })
            .collect())
    }

    /// Every constituency the directory names, as (code, name), by name.
    pub async fn constituency_names(&self) -> Result<Vec<(String, Option<String>)>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as("SELECT code, name FROM constituencies ORDER BY COALESCE(name, code)")
                .fetch_all(pool)
                .await?
        }))
    }

    /// The codes of constituencies given by code or by name (any case), each once; a name that
    /// no constituency has, or that several share, is an error naming it.
    pub async fn constituency_codes(
        &self,
        given: &[String],
    ) -> Result<std::result::Result<Vec<String>, String>> {
        let mut codes = Vec::new();
        for value in given {
            if ConstituencyCode::parse(value).is_ok() {
                codes.push(value.trim().to_uppercase());
                continue;
            }
            let found: Vec<String> = on_pool!(self, |pool| {
                sqlx::query_scalar("SELECT code FROM constituencies WHERE lower(name) = $1")
                    .bind(value.trim().to_lowercase())
                    .fetch_all(pool)
                    .await?
            });
            match found.as_slice() {
                [code] => codes.push(code.clone()),
                [] => {
                    return Ok(Err(format!(
                        "no constituency is called '{value}'; see `canvass constituencies list`"
                    )));
                }
                several => {
                    return Ok(Err(format!(
                        "'{value}' names {} constituencies ({}); give the code",
                        several.len(),
                        several.join(", ")
                    )));
                }
            }
        }
        Ok(Ok(codes))
    }

    /// Contacts whose postcode the directory places in a constituency.
    pub async fn located_contacts(&self) -> Result<u64> {
        let count: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(LOCATED_CONTACTS).fetch_one(pool).await?
        });
        Ok(count as u64)
    }

    pub async fn directory_size(&self) -> Result<u64> {
        let count: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT count(*) FROM postcodes")
                .fetch_one(pool)
                .await?
        });
        Ok(count as u64)
    }
}

/// Counts the contacts whose postcode the directory holds.
const LOCATED_CONTACTS: &str =
    "SELECT count(*) FROM contacts c JOIN postcodes p ON p.postcode = c.postcode";

impl DirectoryImport {
    /// Contacts whose postcode the new directory, as loaded so far, places.
    pub async fn located_contacts(&mut self) -> Result<u64> {
        let count: i64 = on_transaction!(self, |tx| {
            sqlx::query_scalar(LOCATED_CONTACTS)
                .fetch_one(&mut **tx)
                .await?
        });
        Ok(count as u64)
    }

    /// Adds entries. A postcode already added keeps its first constituency.
    pub async fn insert(&mut self, entries: &[DirectoryEntry]) -> Result<()> {
        match self {
            DirectoryImport::Sqlite(tx) => {
                for chunk in entries.chunks(MAX_BIND_PARAMETERS / 4) {
                    QueryBuilder::new(
                        "INSERT INTO postcodes (postcode, constituency_code, latitude, longitude) ",
                    )
                    .push_values(chunk, |mut row, entry| {
                        row.push_bind(entry.postcode.as_str())
                            .push_bind(entry.constituency.as_str())
                            .push_bind(entry.place.map(|p| p.latitude))
                            .push_bind(entry.place.map(|p| p.longitude));
                    })
                    .push(" ON CONFLICT (postcode) DO NOTHING")
                    .build()
                    .execute(&mut **tx)
                    .await?;
                }
            }
            // PostgreSQL takes a whole batch as two arrays, several times faster than a VALUES
            // list of the same rows.
            DirectoryImport::Postgres(tx) => {
                let postcodes: Vec<&str> = entries.iter().map(|e| e.postcode.as_str()).collect();
                let constituencies: Vec<&str> =
                    entries.iter().map(|e| e.constituency.as_str()).collect();
                let latitudes: Vec<Option<f64>> = entries
                    .iter()
                    .map(|e| e.place.map(|p| p.latitude))
                    .collect();
                let longitudes: Vec<Option<f64>> = entries
                    .iter()
                    .map(|e| e.place.map(|p| p.longitude))
                    .collect();
                sqlx::query(
                    "INSERT INTO postcodes (postcode, constituency_code, latitude, longitude) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::float8[], $4::float8[]) \
                     ON CONFLICT (postcode) DO NOTHING",
                )
                .bind(postcodes)
                .bind(constituencies)
                .bind(latitudes)
                .bind(longitudes)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }

    /// Records constituency names (a `None` keeps a name already known) and makes the new
    /// directory visible.
    pub async fn commit(
        mut self,
        names: &BTreeMap<ConstituencyCode, Option<String>>,
        actor: &Actor,
    ) -> Result<()> {
        let entries: Vec<_> = names.iter().collect();
        for chunk in entries.chunks(MAX_BIND_PARAMETERS / 2) {
            on_transaction!(&mut self, |tx| {
                QueryBuilder::new("INSERT INTO constituencies (code, name) ")
                    .push_values(chunk, |mut row, (code, name)| {
                        row.push_bind(code.as_str()).push_bind(name.as_deref());
                    })
                    .push(
                        " ON CONFLICT (code) DO UPDATE \
                         SET name = COALESCE(excluded.name, constituencies.name)",
                    )
                    .build()
                    .execute(&mut **tx)
                    .await?;
            });
        }
        // Before PostgreSQL's lock on the counts' changes: a writer of changes holds its
        // contact first, and this takes contacts.
        on_transaction!(&mut self, |tx| {
            sqlx::query(PLACE_CONTACTS).execute(&mut **tx).await?;
        });
        if let DirectoryImport::Postgres(tx) = &mut self {
            for statement in POSTGRES_BEFORE_RECOUNT {
                sqlx::query(statement).execute(&mut **tx).await?;
            }
        }
        for statement in RECOUNT_MAILABLE {
            on_transaction!(&mut self, |tx| {
                sqlx::query(statement).execute(&mut **tx).await?;
            });
        }
        on_transaction!(&mut self, |tx| {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM postcodes")
                .fetch_one(&mut **tx)
                .await?;
            let detail = format!("{count} postcodes");
            tx.audit(Audit::of(actor, AuditAction::PostcodesReplaced, detail))
                .await?;
            // Any contact's constituency may have changed with it.
            tx.note_changes(&[Change::Anyone]).await?;
        });
        on_transaction!(self, |tx| tx.commit().await?);
        Ok(())
    }
}
