//! An import under way: rows staged as they are read, applied many thousands at a time, set by
//! set, taking turns with other writers on SQLite.

use super::{
    ContactImport, ContactImportOutcome, DROP_STAGING, POSTGRES_ANALYZE, POSTGRES_CLEAR_STAGING,
    SQLITE_CLEAR_STAGING, STAGED_COLUMNS, STATISTICS_REFRESH_FIRST, Stage, Staging, address_key,
    copy_in, copy_row, next_apply_rows,
};

use std::time::Instant;

use sqlx::{Connection as _, QueryBuilder};

use crate::store::{BeginWrite, BulkChange, InTransaction, MAX_BIND_PARAMETERS, Pool, Result, now};

use crate::domain::{Name, NewContact, Postcode, PublicId, TopicSlug};

impl ContactImport<'_> {
    /// Stages `rows` (`keys` the caller's key for each, such as its line, which refusals
    /// name), applying what is staged whenever enough is, or before a row for an address
    /// staged already. Says what the applying did.
    pub async fn add(&mut self, rows: &[NewContact], keys: &[u64]) -> Result<ContactImportOutcome> {
        let mut outcome = ContactImportOutcome::default();
        let mut start = 0;
        while start < rows.len() {
            let room = self.apply_rows.saturating_sub(self.staged.len());
            let distinct = rows[start..]
                .iter()
                .take(room)
                .take_while(|row| self.staged.insert(address_key(&row.email)))
                .count();
            let end = start + distinct;
            self.stage(&rows[start..end], &keys[start..end]).await?;
            start = end;
            if start < rows.len() || self.staged.len() >= self.apply_rows {
                outcome.add(self.apply().await?);
            }
        }
        Ok(outcome)
    }

    /// Applies what is left staged, brings the statistics up to date after a bulk change, and
    /// closes the import's connection with its staging tables (or, for a save in one
    /// transaction, drops them and commits).
    pub async fn finish(mut self) -> Result<ContactImportOutcome> {
        let outcome = self.apply().await?;
        let own = self.own_connection();
        if !own {
            self.run(DROP_STAGING).await?;
        } else if self.applied >= STATISTICS_REFRESH_FIRST {
            self.run(self.store.bulk_change_sql(BulkChange::Done))
                .await?;
        }
        match self.connection {
            Stage::Sqlite(Staging::Own(conn)) => conn.close().await?,
            Stage::Postgres(Staging::Own(conn)) => conn.close().await?,
            Stage::Sqlite(Staging::Once(tx)) => tx.commit().await?,
            Stage::Postgres(Staging::Once(tx)) => tx.commit().await?,
        }
        if !own {
            // What the save's triggers counted is folded in once it is committed.
            self.store.fold_counts().await?;
        }
        Ok(outcome)
    }

    /// Whether the import runs on a connection of its own, not in one transaction.
    pub(super) fn own_connection(&self) -> bool {
        matches!(
            self.connection,
            Stage::Sqlite(Staging::Own(_)) | Stage::Postgres(Staging::Own(_))
        )
    }

    /// Runs statements on the import's connection: outside any transaction, or within the
    /// save's own for a save made in one.
    pub(super) async fn run(&mut self, sql: &'static str) -> Result<()> {
        match &mut self.connection {
            Stage::Sqlite(conn) => {
                sqlx::raw_sql(sql).execute(&mut **conn).await?;
            }
            Stage::Postgres(conn) => {
                sqlx::raw_sql(sql).execute(&mut **conn).await?;
            }
        }
        Ok(())
    }

    /// Writes rows into the staging tables, outside any write transaction.
    pub(super) async fn stage(&mut self, rows: &[NewContact], keys: &[u64]) -> Result<()> {
        let indexed: Vec<(u64, &NewContact)> = keys.iter().copied().zip(rows).collect();
        let topics: Vec<(u64, &TopicSlug)> = indexed
            .iter()
            .flat_map(|&(key, contact)| contact.topics.iter().map(move |topic| (key, topic)))
            .collect();
        match &mut self.connection {
            Stage::Sqlite(conn) => {
                for chunk in indexed.chunks(MAX_BIND_PARAMETERS / STAGED_COLUMNS) {
                    QueryBuilder::new(
                        "INSERT INTO import_rows (idx, public_id, email, email_hash, name, \
                         postcode, date_of_birth, guardian_consent, consent_at, consent_dated, \
                         consent_source, guardian, guardian_relationship, guardian_at, \
                         guardian_method) ",
                    )
                    .push_values(chunk, |mut row, &(key, contact)| {
                        let guardian = contact.guardian.as_ref();
                        row.push_bind(key as i64)
                            .push_bind(PublicId::generate().to_string())
                            .push_bind(contact.email.as_str())
                            .push_bind(contact.email.hash().as_str().to_owned())
                            .push_bind(contact.name.as_ref().map(Name::as_str))
                            .push_bind(contact.postcode.as_ref().map(Postcode::as_str))
                            .push_bind(contact.date_of_birth)
                            .push_bind(contact.guardian_consent)
                            .push_bind(contact.consent_at)
                            .push_bind(contact.consent_dated)
                            .push_bind(contact.consent_source.as_str())
                            .push_bind(guardian.map(|g| g.guardian.as_str()))
                            .push_bind(guardian.map(|g| g.relationship.as_str()))
                            .push_bind(guardian.map(|g| g.given_at))
                            .push_bind(guardian.map(|g| g.method.as_str()));
                    })
                    .build()
                    .persistent(false)
                    .execute(&mut **conn)
                    .await?;
                }
                for chunk in topics.chunks(MAX_BIND_PARAMETERS / 2) {
                    QueryBuilder::new("INSERT INTO import_topics (idx, slug) ")
                        .push_values(chunk, |mut row, &(key, topic)| {
                            row.push_bind(key as i64).push_bind(topic.as_str());
                        })
                        .build()
                        .persistent(false)
                        .execute(&mut **conn)
                        .await?;
                }
            }
            // PostgreSQL's own bulk path: the rows as COPY's text, sent in one stream.
            Stage::Postgres(conn) => {
                let mut text = String::new();
                for &(key, contact) in &indexed {
                    let guardian = contact.guardian.as_ref();
                    copy_row(
                        &mut text,
                        &[
                            Some(&key.to_string()),
                            Some(&PublicId::generate().to_string()),
                            Some(contact.email.as_str()),
                            Some(contact.email.hash().as_str()),
                            contact.name.as_ref().map(Name::as_str),
                            contact.postcode.as_ref().map(Postcode::as_str),
                            contact.date_of_birth.map(|d| d.to_string()).as_deref(),
                            contact.guardian_consent.map(|g| g.to_string()).as_deref(),
                            Some(&contact.consent_at.to_rfc3339()),
                            Some(&contact.consent_dated.to_string()),
                            Some(&contact.consent_source),
                            guardian.map(|g| g.guardian.as_str()),
                            guardian.map(|g| g.relationship.as_str()),
                            guardian.map(|g| g.given_at.to_rfc3339()).as_deref(),
                            guardian.map(|g| g.method.as_str()),
                        ],
                    );
                }
                copy_in(
                    conn,
                    "COPY import_rows (idx, public_id, email, email_hash, name, postcode, \
                     date_of_birth, guardian_consent, consent_at, consent_dated, consent_source, \
                     guardian, guardian_relationship, guardian_at, guardian_method) FROM STDIN",
                    text,
                )
                .await?;
                let mut text = String::new();
                for &(key, topic) in &topics {
                    copy_row(&mut text, &[Some(&key.to_string()), Some(topic.as_str())]);
                }
                copy_in(conn, "COPY import_topics (idx, slug) FROM STDIN", text).await?;
            }
        }
        Ok(())
    }

    /// Applies the staged rows in one write transaction and empties the staging tables.
    pub(super) async fn apply(&mut self) -> Result<ContactImportOutcome> {
        if self.staged.is_empty() {
            return Ok(ContactImportOutcome::default());
        }
        let staged = std::mem::take(&mut self.staged).len();
        let now = now();
        let source = self.source.as_str();
        let outcome = match (&mut self.connection, self.store.pool()) {
            (Stage::Sqlite(Staging::Own(conn)), Pool::Sqlite(pool)) => {
                let shared = self.sharing.before_apply(conn).await?;
                let turn = pool.write_turn().await?;
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                let held = Instant::now();
                let outcome = tx
                    .apply_staged(staged, source, now, SQLITE_CLEAR_STAGING)
                    .await?;
                tx.commit().await?;
                drop(turn);
                self.apply_rows = next_apply_rows(self.apply_rows, staged, held.elapsed(), shared);
                self.sharing.after_commit();
                outcome
            }
            (Stage::Sqlite(Staging::Once(tx)), _) => {
                tx.apply_staged(staged, source, now, SQLITE_CLEAR_STAGING)
                    .await?
            }
            (Stage::Postgres(held), _) => {
                sqlx::query(POSTGRES_ANALYZE).execute(&mut **held).await?;
                match held {
                    Staging::Own(conn) => {
                        let mut tx = conn.begin().await?;
                        let outcome = tx
                            .apply_staged(staged, source, now, POSTGRES_CLEAR_STAGING)
                            .await?;
                        tx.commit().await?;
                        outcome
                    }
                    Staging::Once(tx) => {
                        tx.apply_staged(staged, source, now, POSTGRES_CLEAR_STAGING)
                            .await?
                    }
                }
            }
            _ => unreachable!("an import's connection is of its store's engine"),
        };
        self.applied += staged as u64;
        if !self.own_connection() {
            // Counts are folded, and statistics refreshed, once the transaction commits.
            return Ok(outcome);
        }
        self.store.fold_counts().await?;
        self.inserted += outcome.inserted;
        if self.inserted >= self.next_statistics_refresh {
            self.run(self.store.bulk_change_sql(BulkChange::UnderWay))
                .await?;
            self.next_statistics_refresh *= 2;
        }
        Ok(outcome)
    }
}
