//! Contacts as staff find them: searched, filtered, counted and paged, never beyond the
//! constituencies the member of staff is kept to.
//!
//! Every statement here takes the [`Scope`] and adds it to its `WHERE` clause: the console and
//! the API show what these return and nothing else, so that a page cannot forget the scope.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{MAX_BIND_PARAMETERS, Result, Store, decode_error, on_pool};
use crate::domain::{
    ConstituencyCode, Email, NewContact, Postcode, PostcodePrefix, PublicId, Scope, TopicSlug,
};

/// `$1, $2, ... $n`.
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Contacts on a page of the console.
pub const CONTACTS_PAGE: u32 = 50;

/// What staff typed in the search box, read as what it looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactSearch {
    /// A whole address: that person.
    Email(Email),
    /// A whole postcode.
    Postcode(Postcode),
    /// A postcode district or sector (`SG13`, `SG13 8`).
    PostcodePrefix(PostcodePrefix),
    /// Part of a name or address, in any case.
    Text(String),
}

impl ContactSearch {
    /// `None` for a blank search. Letters alone (`Jo`) are a name, not a postcode area.
    pub fn parse(input: &str) -> Option<Self> {
        let input = input.trim();
        if input.is_empty() {
            return None;
        }
        if let Ok(email) = Email::parse(input) {
            return Some(Self::Email(email));
        }
        if let Ok(postcode) = Postcode::parse(input) {
            return Some(Self::Postcode(postcode));
        }
        match PostcodePrefix::parse(input) {
            Ok(prefix @ (PostcodePrefix::District(_) | PostcodePrefix::Sector(_))) => {
                Some(Self::PostcodePrefix(prefix))
            }
            // Control characters (a NUL ends an FTS5 query early) are never part of a name.
            _ => Some(Self::Text(
                input
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(100)
                    .collect(),
            )),
        }
    }
}

/// The consent a filter asks for, on a topic or (without one) on any topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentFilter {
    /// Consent in force.
    Granted,
    /// Consent withdrawn, and not given again.
    Withdrawn,
}

/// A search of the contacts, with its filters and page (from 1).
#[derive(Debug, Clone, Default)]
pub struct ContactQuery {
    pub search: Option<ContactSearch>,
    pub constituency: Option<ConstituencyCode>,
    pub topic: Option<TopicSlug>,
    pub consent: Option<ConsentFilter>,
    pub page: u32,
}

/// A contact as a line of the list.
#[derive(Debug, Clone)]
pub struct ContactLine {
    pub public_id: PublicId,
    pub email: String,
    pub name: Option<String>,
    pub postcode: Option<String>,
    /// The constituency's name (or code, without one); `None` outside the directory.
    pub constituency: Option<String>,
    pub restricted: bool,
    pub suppressed: bool,
    pub created_at: DateTime<Utc>,
}

/// Why a member of staff kept to some constituencies may not save a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsavable {
    /// Its postcode is not in their constituencies, or it has none.
    Postcode,
    /// Its address is held by someone outside their constituencies, or held by no one and
    /// suppressed (an unsubscribe, a bounce, an erasure). Which of these it is, is not theirs to
    /// learn: that someone asked a party to erase them, or is on another constituency's list,
    /// is itself personal data about their politics.
    Address,
}

impl Unsavable {
    /// The refusal, the same for every reason an address is barred.
    pub fn message(self) -> &'static str {
        match self {
            Self::Postcode => "its postcode is not in your constituencies",
            Self::Address => "this address can't be added by you; ask an admin",
        }
    }
}

/// A contact lately suppressed.
#[derive(Debug, Clone)]
pub struct RecentSuppression {
    pub at: DateTime<Utc>,
    /// `unsubscribed`, `bounced` or `complaint`.
    pub reason: String,
    pub public_id: PublicId,
    pub email: String,
    pub name: Option<String>,
}

/// A page of contacts, and how many match in all.
#[derive(Debug, Clone)]
pub struct ContactPage {
    pub contacts: Vec<ContactLine>,
    pub total: Matches,
}

/// How many contacts match a query: every one counted, or, for a search for part of a name
/// or an address, counted only so far past the page ([`SEARCH_COUNTED`]). A surname that
/// tens of thousands share is not counted to its end for each page of it: the list says
/// "more than".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matches {
    Exactly(u64),
    MoreThan(u64),
}

impl Matches {
    /// How many were counted: all of them, or the bound they pass.
    pub fn counted(self) -> u64 {
        match self {
            Matches::Exactly(n) | Matches::MoreThan(n) => n,
        }
    }

    /// Whether more match than the first `shown`.
    pub fn beyond(self, shown: u64) -> bool {
        match self {
            Matches::Exactly(n) => n > shown,
            Matches::MoreThan(n) => n >= shown,
        }
    }
}

/// How far past the start of its page a search for part of a name or an address is counted.
pub const SEARCH_COUNTED: u64 = 1_000;

/// A value bound to a statement built here.
enum Bind {
    Text(String),
    Int(i64),
}

/// `$query` with each of `$binds` bound in order (a macro: each engine's query is its own type).
macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                Bind::Text(text) => query.bind(text.clone()),
                Bind::Int(int) => query.bind(*int),
            };
        }
        query
    }};
}

/// A `WHERE` clause over `contacts c`, and its values in order.
#[derive(Default)]
struct Clause {
    sql: String,
    binds: Vec<Bind>,
}

impl Clause {
    fn push(&mut self, condition: &str) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(condition);
    }

    /// The next placeholder, for `value`.
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// Only contacts in `scope`: those whose postcode the directory places in one of its
    /// constituencies (the contact's `constituency_code`, kept from its postcode).
    fn scope(&mut self, scope: &Scope) {
        let Some(codes) = scope.constituencies() else {
            return;
        };
        if codes.is_empty() {
            return self.push("1 = 0");
        }
        let placeholders: Vec<String> = codes
            .iter()
            .map(|code| self.bind(Bind::Text(code.as_str().to_owned())))
            .collect();
        self.push(&format!(
            "c.constituency_code IN ({})",
            placeholders.join(", ")
        ));
    }

    /// `store` says how its engine compares postcodes in byte order.
    fn query(&mut self, query: &ContactQuery, store: &Store) {
        match &query.search {
            None => {}
            Some(ContactSearch::Email(email)) => {
                let p = self.bind(Bind::Text(email.hash().as_str().to_owned()));
                self.push(&format!("c.email_hash = {p}"));
            }
            Some(ContactSearch::Postcode(postcode)) => {
                let p = self.bind(Bind::Text(postcode.as_str().to_owned()));
                self.push(&format!("c.postcode = {p}"));
            }
            Some(ContactSearch::PostcodePrefix(prefix)) => {
                let start = match prefix {
                    PostcodePrefix::District(district) => format!("{district} "),
                    PostcodePrefix::Sector(sector) => sector.clone(),
                    PostcodePrefix::Area(area) => {
                        // "S" is Sheffield's area, not every postcode that starts with an S.
                        let after = area.len() + 1;
                        self.push(&format!(
                            "substr(c.postcode, {after}, 1) BETWEEN '0' AND '9'"
                        ));
                        area.clone()
                    }
                };
                // A range of the postcode index: postcodes are ASCII, and everything that
                // starts with the prefix sorts before it followed by DEL.
                let postcode = store.postcode_bytes();
                let end = format!("{start}\u{7f}");
                let start = self.bind(Bind::Text(start));
                let end = self.bind(Bind::Text(end));
                self.push(&format!("{postcode} >= {start} AND {postcode} < {end}"));
            }
            Some(ContactSearch::Text(text)) => {
                // Three characters or more are found in the trigram index: SQLite's FTS5 table
                // as a phrase (a run of trigrams, so a substring), PostgreSQL's pg_trgm index
                // under the same LIKE that reads every name for one or two.
                if store.searches_in_fts5(text) {
                    let p = self.bind(Bind::Text(format!("\"{}\"", text.replace('"', "\"\""))));
                    self.push(&format!(
                        "c.id IN (SELECT rowid FROM contacts_search WHERE contacts_search MATCH {p})"
                    ));
                } else {
                    let escaped = text
                        .to_lowercase()
                        .replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_");
                    let p = self.bind(Bind::Text(format!("%{escaped}%")));
                    // One or two characters: no trigram index can find them, and PostgreSQL's
                    // planner, seeing its pg_trgm index, would read all of it (3 s on a
                    // million); written `lower(..) || ''`, they read the table instead.
                    let (name, email) = if searches_in_trigrams(text) {
                        ("lower(c.name)", "lower(c.email)")
                    } else {
                        ("(lower(c.name) || '')", "(lower(c.email) || '')")
                    };
                    self.push(&format!(
                        "({name} LIKE {p} ESCAPE '\\' OR {email} LIKE {p} ESCAPE '\\')"
                    ));
                }
            }
        }
        if let Some(code) = &query.constituency {
            let p = self.bind(Bind::Text(code.as_str().to_owned()));
            self.push(&format!("c.constituency_code = {p}"));
        }
        let wanted = consent_wanted(query.consent);
        match (&query.topic, query.consent) {
            (Some(topic), _) => {
                let p = self.bind(Bind::Text(topic.as_str().to_owned()));
                self.push(&format!(
                    "EXISTS (SELECT 1 FROM consents k WHERE k.contact_id = c.id \
                     AND k.topic_id = (SELECT t.id FROM topics t WHERE t.slug = {p}) \
                     AND k.granted = {wanted})"
                ));
            }
            (None, Some(_)) => self.push(&format!(
                "EXISTS (SELECT 1 FROM consents k WHERE k.contact_id = c.id AND k.granted = {wanted})"
            )),
            (None, None) => {}
        }
    }
}

/// The SQL truth a consent filter asks for (a topic alone asks for its consent in force).
fn consent_wanted(filter: Option<ConsentFilter>) -> &'static str {
    match filter {
        Some(ConsentFilter::Withdrawn) => "FALSE",
        Some(ConsentFilter::Granted) | None => "TRUE",
    }
}

impl Store {
    /// Whether a search for part of a name or an address goes to SQLite's FTS5 table
    /// (`contacts_search`), which finds runs of three characters or more.
    fn searches_in_fts5(&self, text: &str) -> bool {
        matches!(self.pool(), super::Pool::Sqlite(_)) && searches_in_trigrams(text)
    }
}

/// Whether a search for part of a name or an address is found in a trigram index (SQLite's
/// FTS5 table, PostgreSQL's `pg_trgm` one): three characters or more.
fn searches_in_trigrams(text: &str) -> bool {
    text.chars().count() >= 3
}

/// The table every statement here reads.
const FROM: &str = " FROM contacts c";

impl Store {
    /// A page of the contacts `scope` holds that match `query`, newest first, and how many
    /// match in all.
    pub async fn find_contacts(&self, scope: &Scope, query: &ContactQuery) -> Result<ContactPage> {
        let mut clause = Clause::default();
        clause.scope(scope);
        clause.query(query, self);
        let offset = i64::from(query.page.max(1) - 1) * i64::from(CONTACTS_PAGE);
        let limit = clause.bind(Bind::Int(i64::from(CONTACTS_PAGE)));
        let skip = clause.bind(Bind::Int(offset));
        // The page's ids first, from the contacts (and the conditions' tables) alone; then the
        // fifty rows, with their constituencies: a deep page skips ids, not joined rows.
        // A postcode district or sector is a few thousand contacts at most, found in the
        // postcode index and sorted; walking the ids newest first instead, as both planners
        // like to for a LIMIT, reads every contact when few of them match (an organiser's
        // search for a district outside their constituency: 324 ms on a million, 13 ms
        // sorted). `+ 0` keeps the id index out of the order.
        // The same holds for a substring found in a trigram index.
        let order = match &query.search {
            Some(ContactSearch::PostcodePrefix(_)) => "c.id + 0",
            Some(ContactSearch::Text(text)) if searches_in_trigrams(text) => "c.id + 0",
            _ => "c.id",
        };
        let list = format!(
            "SELECT c.public_id, c.email, c.name, c.postcode, \
                    COALESCE(k.name, c.constituency_code), c.restricted_at IS NOT NULL, \
                    EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash), \
                    c.created_at \
             {FROM} LEFT JOIN constituencies k ON k.code = c.constituency_code \
             WHERE c.id IN (SELECT c.id{FROM}{} ORDER BY {order} DESC LIMIT {limit} OFFSET {skip}) \
             ORDER BY c.id DESC",
            clause.sql
        );
        // A filter by a topic's consent alone, for someone who sees everyone, is counted in
        // the consents' index.
        let consent_only = scope.constituencies().is_none()
            && query.search.is_none()
            && query.constituency.is_none()
            && query.topic.is_some();
        // A search is counted to a bound past the page, one more than it to know it passes.
        let bound = match query.search {
            Some(ContactSearch::Text(_)) => Some(offset as u64 + SEARCH_COUNTED),
            _ => None,
        };
        let count = match (consent_only, bound) {
            (true, _) => format!(
                "SELECT count(*) FROM consents k JOIN topics t ON t.id = k.topic_id \
                 WHERE t.slug = $1 AND k.granted = {}",
                consent_wanted(query.consent)
            ),
            (false, Some(bound)) => format!(
                "SELECT count(*) FROM (SELECT 1{FROM}{} LIMIT {}) found",
                clause.sql,
                bound + 1
            ),
            (false, None) => format!("SELECT count(*){FROM}{}", clause.sql),
        };
        type Row = (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            bool,
            bool,
            DateTime<Utc>,
        );
        let counted = clause.binds.len() - 2;
        let (rows, total): (Vec<Row>, i64) = on_pool!(self, |pool| {
            let rows = bind_all!(
                sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(list)),
                &clause.binds
            );
            let total = bind_all!(
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count)),
                &clause.binds[..counted]
            );
            (rows.fetch_all(pool).await?, total.fetch_one(pool).await?)
        });
        let contacts = rows
            .into_iter()
            .map(
                |(public_id, email, name, postcode, constituency, restricted, suppressed, at)| {
                    Ok(ContactLine {
                        public_id: public_id
                            .parse()
                            .map_err(|e| decode_error("contact public id", e))?,
                        email,
                        name,
                        postcode,
                        constituency,
                        restricted,
                        suppressed,
                        created_at: at,
                    })
                },
            )
            .collect::<Result<_>>()?;
        Ok(ContactPage {
            contacts,
            total: match bound {
                Some(bound) if total as u64 > bound => Matches::MoreThan(bound),
                _ => Matches::Exactly(total as u64),
            },
        })
    }

    /// Which of `contacts` a member of staff kept to `scope` may not save, each with why: a
    /// postcode outside the scope (or none), or an address they may not add. The same queries
    /// run whatever the rows hold, so that how long it takes tells nothing either.
    pub async fn outside_scope(
        &self,
        contacts: &[NewContact],
        scope: &Scope,
    ) -> Result<Vec<(usize, Unsavable)>> {
        if scope.constituencies().is_none() || contacts.is_empty() {
            return Ok(Vec::new());
        }
        let postcodes: Vec<&str> = contacts
            .iter()
            .filter_map(|c| c.postcode.as_ref().map(Postcode::as_str))
            .collect();
        let hashes: Vec<String> = contacts
            .iter()
            .map(|c| c.email.hash().as_str().to_owned())
            .collect();
        let mut placed: HashMap<String, String> = HashMap::new();
        let mut held: HashMap<String, Option<String>> = HashMap::new();
        let mut suppressed: HashSet<String> = HashSet::new();
        for chunk in postcodes.chunks(MAX_BIND_PARAMETERS) {
            let sql = format!(
                "SELECT postcode, constituency_code FROM postcodes WHERE postcode IN ({})",
                placeholders(chunk.len())
            );
            let rows: Vec<(String, String)> = on_pool!(self, |pool| {
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for postcode in chunk {
                    query = query.bind(*postcode);
                }
                query.fetch_all(pool).await?
            });
            placed.extend(rows);
        }
        for chunk in hashes.chunks(MAX_BIND_PARAMETERS) {
            let sql = format!(
                "SELECT c.email_hash, c.constituency_code{FROM} WHERE c.email_hash IN ({})",
                placeholders(chunk.len())
            );
            let rows: Vec<(String, Option<String>)> = on_pool!(self, |pool| {
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for hash in chunk {
                    query = query.bind(hash.as_str());
                }
                query.fetch_all(pool).await?
            });
            held.extend(rows);
            let sql = format!(
                "SELECT email_hash FROM suppressions WHERE email_hash IN ({})",
                placeholders(chunk.len())
            );
            let rows: Vec<String> = on_pool!(self, |pool| {
                let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
                for hash in chunk {
                    query = query.bind(hash.as_str());
                }
                query.fetch_all(pool).await?
            });
            suppressed.extend(rows);
        }
        let mut outside = Vec::new();
        for (i, contact) in contacts.iter().enumerate() {
            let constituency = contact
                .postcode
                .as_ref()
                .and_then(|p| placed.get(p.as_str()));
            let barred = match held.get(&hashes[i]) {
                Some(theirs) => !scope.covers(theirs.as_deref()),
                None => suppressed.contains(&hashes[i]),
            };
            if !scope.covers(constituency.map(String::as_str)) {
                outside.push((i, Unsavable::Postcode));
            } else if barred {
                outside.push((i, Unsavable::Address));
            }
        }
        Ok(outside)
    }

    /// The latest suppressions of contacts `scope` holds (unsubscribes, bounces, complaints),
    /// newest first: when, why, and who.
    pub async fn recent_suppressions(
        &self,
        scope: &Scope,
        limit: u32,
    ) -> Result<Vec<RecentSuppression>> {
        let mut clause = Clause::default();
        clause.scope(scope);
        clause.push("s.reason <> 'erased'");
        let limit = clause.bind(Bind::Int(i64::from(limit)));
        // From the newest suppression back (`suppressions_recent`), each to its contact: on
        // SQLite the `CROSS JOIN` keeps that order, where its planner would walk every contact.
        clause.push("c.email_hash = s.email_hash");
        let sql = format!(
            "SELECT s.updated_at, s.reason, c.public_id, c.email, c.name \
             FROM suppressions s CROSS JOIN contacts c{} \
             ORDER BY s.updated_at DESC LIMIT {limit}",
            clause.sql
        );
        type Row = (DateTime<Utc>, String, String, String, Option<String>);
        let rows: Vec<Row> = on_pool!(self, |pool| {
            bind_all!(
                sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql)),
                &clause.binds
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(at, reason, public_id, email, name)| {
                Ok(RecentSuppression {
                    at,
                    reason,
                    public_id: public_id
                        .parse()
                        .map_err(|e| decode_error("contact public id", e))?,
                    email,
                    name,
                })
            })
            .collect()
    }

    /// Whether a contact is held at `email` within `scope`.
    pub async fn contact_in_scope(&self, email: &Email, scope: &Scope) -> Result<bool> {
        let query = ContactQuery {
            search: Some(ContactSearch::Email(email.clone())),
            ..ContactQuery::default()
        };
        Ok(self.find_contacts(scope, &query).await?.total.counted() > 0)
    }
}

#[cfg(test)]
mod tests;
