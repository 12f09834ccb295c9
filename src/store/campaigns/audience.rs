//! Who a campaign reaches: the live counts by constituency (from the kept counts, by postcode
//! for a distance rule), the people it leaves out, and a sample recipient for a preview.

use super::drafts::audience_rows;
use super::{ELIGIBLE, Recipient, SQUARED_MILES_OF_CONTACT};
use std::collections::HashMap;

use chrono::NaiveDate;

use crate::domain::{
    Audience, ConstituencyCode, Coordinates, Email, NewCampaign, Postcode, Scope,
    latest_birth_date_to_mail,
};
use crate::store::{CONSTITUENCY_OF_CONTACT, Result, Store, decode_error, latest_consent, on_pool};

/// Where the people [`Store::placed_audience`] counts live.
#[derive(Debug, Clone, Copy)]
enum Area<'a> {
    /// Within so many miles of the venue at this place, from the counts kept by postcode:
    /// everyone the kept counts count there, whatever their age.
    Near(Coordinates, u32),
    /// Within so many miles of the venue at this place, those of [`Area::Near`] whom the age
    /// rule keeps from mail on the day.
    UnderAgeNear(Coordinates, u32),
    /// In postcodes the directory holds with no place.
    Unplaced,
    /// Wherever they are, those these campaigns were sent to (within the campaign's own
    /// distance rule, given with its venue's place).
    SentBy(&'a [i64], Option<(Coordinates, u32)>),
}

/// A `campaign_exclusions` standing in for a campaign not saved: none, for statements that
/// count whom a campaign reaches before taking out whom its exclusions leave out.
const NO_EXCLUSIONS: &str = "campaign_exclusions (campaign_id, excluded_campaign_id) AS \
     (SELECT CAST(0 AS BIGINT), CAST(0 AS BIGINT) WHERE 1 = 0)";

/// The rows of a table standing in for one of a saved campaign's (`campaign_audience`,
/// `campaign_limits`) in a statement about a campaign not saved: `n` rows of campaign 0 and
/// `width` values each, bound from `$next` on (which it moves past them); none at all (of
/// the right width) when `n` is 0.
fn stand_in_rows(n: usize, width: usize, next: &mut usize) -> String {
    let mut rows = vec![format!(
        "SELECT CAST(0 AS BIGINT){} WHERE 1 = 0",
        ", ''".repeat(width)
    )];
    for _ in 0..n {
        let values: Vec<String> = (*next..*next + width).map(|i| format!("${i}")).collect();
        rows.push(format!("SELECT CAST(0 AS BIGINT), {}", values.join(", ")));
        *next += width;
    }
    rows.join(" UNION ALL ")
}

/// Takes `people`, counted by constituency code, out of `counts`.
fn take_out(counts: &mut HashMap<String, u64>, people: Vec<(String, u64)>) {
    for (code, n) in people {
        let held = counts.entry(code).or_default();
        *held = held.saturating_sub(n);
    }
}

impl Store {
    /// Who a campaign, saved or not, would reach on `on`, by constituency (code and name;
    /// `None` for those the directory places nowhere), largest first, read from the counts the
    /// database keeps rather than by reading every contact: the people who may be mailed its
    /// topic in the constituencies it names (in all, when it names none) within `limit`; then,
    /// for its postcode prefixes, those [`ELIGIBLE`] finds there outside those constituencies.
    /// The same people as [`Store::audience_size`] counts one by one, and as queueing takes.
    pub async fn audience_counts(
        &self,
        campaign: &NewCampaign,
        limit: &Scope,
        on: NaiveDate,
    ) -> Result<Vec<(Option<String>, Option<String>, u64)>> {
        let audience = &campaign.audience;
        let named: Vec<&str> = audience
            .constituencies
            .iter()
            .map(ConstituencyCode::as_str)
            .collect();
        let chosen = |code: &str| {
            (audience.is_everyone() || named.contains(&code))
                && limit.covers((!code.is_empty()).then_some(code))
        };
        // The venue's place, for a distance rule: looked up once, for whom it reaches and for
        // whom its exclusions leave out.
        let rule = match &audience.near {
            Some(near) => self.place_of(&near.venue).await?.map(|v| (v, near.miles)),
            None => None,
        };
        let mut counts: HashMap<String, u64> = match rule {
            Some((venue, miles)) => {
                self.near_audience(campaign, venue, miles, limit, on)
                    .await?
            }
            None => HashMap::new(),
        };
        // Narrowed, only the prefixes count, within the constituencies named.
        if audience.near.is_none() && !audience.postcodes_within {
            for ((code, _), n) in self.mailable(Some(&campaign.topic), on).await? {
                if chosen(&code) {
                    *counts.entry(code).or_default() += n;
                }
            }
        }
        if audience.near.is_none() && !audience.postcodes.is_empty() {
            let prefixes = self
                .prefix_audience(campaign, limit, on, &named, audience.postcodes_within)
                .await?;
            for (code, n) in prefixes {
                *counts.entry(code).or_default() += n;
            }
        }
        // Those its exclusions leave out, counted as the rest are, then taken out.
        if !audience.excluding.is_empty() {
            let area = Area::SentBy(&audience.excluding, rule);
            take_out(
                &mut counts,
                self.placed_audience(campaign, limit, on, &area).await?,
            );
        }
        let names: HashMap<String, Option<String>> =
            self.constituency_names().await?.into_iter().collect();
        let mut rows: Vec<(Option<String>, Option<String>, u64)> = counts
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(code, n)| {
                let name = names.get(&code).cloned().flatten();
                ((!code.is_empty()).then_some(code), name, n)
            })
            .collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        Ok(rows)
    }

    /// Who a campaign with a distance rule reaches on `on`, by constituency code ('' for none):
    /// the counts kept for the postcodes in the box around the venue that the rule reaches
    /// ([`Area::Near`]), less the people there under the age of consent
    /// ([`Area::UnderAgeNear`]). The same people as [`ELIGIBLE`] finds one by one there.
    async fn near_audience(
        &self,
        campaign: &NewCampaign,
        venue: Coordinates,
        miles: u32,
        limit: &Scope,
        on: NaiveDate,
    ) -> Result<HashMap<String, u64>> {
        // The counts by postcode are read as folded (PostgreSQL), not with the changes.
        self.fold_counts_now().await?;
        let area = Area::Near(venue, miles);
        let mut counts: HashMap<String, u64> = self
            .placed_audience(campaign, limit, on, &area)
            .await?
            .into_iter()
            .collect();
        let area = Area::UnderAgeNear(venue, miles);
        take_out(
            &mut counts,
            self.placed_audience(campaign, limit, on, &area).await?,
        );
        Ok(counts)
    }

    /// How many people a campaign would reach on `on` but for its distance rule, whose
    /// postcode has no place on the map, so that the rule leaves them out: those whose
    /// postcode the directory does not hold (or who have none), from the counts kept, and
    /// those in postcodes it holds without a place.
    pub async fn unplaced_audience(
        &self,
        campaign: &NewCampaign,
        limit: &Scope,
        on: NaiveDate,
    ) -> Result<u64> {
        let mut anywhere = campaign.clone();
        anywhere.audience.near = None;
        let outside: u64 = self
            .audience_counts(&anywhere, limit, on)
            .await?
            .iter()
            .filter(|(code, _, _)| code.is_none())
            .map(|(_, _, n)| n)
            .sum();
        let unplaced: u64 = self
            .placed_audience(&anywhere, limit, on, &Area::Unplaced)
            .await?
            .iter()
            .map(|(_, n)| n)
            .sum();
        Ok(outside + unplaced)
    }

    /// Whom a campaign, saved or not, reaches on `on` among the people whose postcode lies in
    /// `area`, by constituency code ('' for none): the rule ([`ELIGIBLE`]) over the campaign
    /// as it is written, given to the statement as common table expressions standing in for
    /// the tables of a saved campaign, read from the postcodes in the area (a range of the
    /// index of their places), then their contacts.
    async fn placed_audience(
        &self,
        campaign: &NewCampaign,
        limit: &Scope,
        on: NaiveDate,
        area: &Area<'_>,
    ) -> Result<Vec<(String, u64)>> {
        let rows = audience_rows(&campaign.audience);
        // Only the people left out for want of a place are counted less the campaign's
        // exclusions in the statement; every other area's are taken out by its caller (or,
        // for `SentBy`, are what it counts).
        let excluding: &[i64] = match area {
            Area::Unplaced => &campaign.audience.excluding,
            Area::Near(..) | Area::UnderAgeNear(..) | Area::SentBy(..) => &[],
        };
        let limits = limit.codes();
        // $1 the campaign (0), $2 the birth date, $3 the topic, $4 limited, $5 narrowed,
        // $6 the miles, $7 to $9 the venue; then the values, then the box.
        let mut next = 10;
        let audience = stand_in_rows(rows.len(), 2, &mut next);
        let limit_rows = stand_in_rows(limits.len(), 1, &mut next);
        let mut exclusions =
            vec!["SELECT CAST(0 AS BIGINT), CAST(0 AS BIGINT) WHERE 1 = 0".to_owned()];
        for _ in excluding {
            exclusions.push(format!("SELECT CAST(0 AS BIGINT), CAST(${next} AS BIGINT)"));
            next += 1;
        }
        let exclusions = exclusions.join(" UNION ALL ");
        let (near, venue) = match *area {
            Area::Near(venue, miles)
            | Area::UnderAgeNear(venue, miles)
            | Area::SentBy(_, Some((venue, miles))) => (Some(i64::from(miles)), Some(venue)),
            Area::Unplaced | Area::SentBy(_, None) => (None, None),
        };
        const PLACED: &str = "postcodes b JOIN contacts c ON c.postcode = b.postcode";
        const PEOPLE: &str = "count(*)";
        // The box around the venue, on the postcodes named `postcodes`.
        let in_box = |postcodes: &str| {
            format!(
                "{postcodes}.latitude BETWEEN ${} AND ${} AND {postcodes}.longitude BETWEEN ${} AND ${}",
                next,
                next + 1,
                next + 2,
                next + 3
            )
        };
        let (counted, from, within, rule) = match area {
            // The counts stand in for their people: `c` is a count of the people in one
            // postcode with one constituency kept on them.
            Area::Near(..) => (
                "CAST(sum(c.contacts) AS BIGINT)",
                "postcodes b JOIN mailable_postcode_counts c ON c.postcode = b.postcode",
                format!("{} AND c.topic_id = k.topic_id", in_box("b")),
                reached_where_they_live!(),
            ),
            Area::UnderAgeNear(..) => (
                PEOPLE,
                PLACED,
                format!(
                    "{} AND c.date_of_birth > $2 AND NOT COALESCE(c.guardian_consent, FALSE)",
                    in_box("b")
                ),
                concat!(counted!(), " AND ", reached_where_they_live!()),
            ),
            Area::Unplaced => (PEOPLE, PLACED, "b.latitude IS NULL".to_owned(), ELIGIBLE),
            Area::SentBy(campaigns, _) => {
                let ids: Vec<String> = (next..next + campaigns.len())
                    .map(|i| format!("${i}"))
                    .collect();
                (
                    PEOPLE,
                    "contacts c",
                    format!(
                        "c.id IN (SELECT x.contact_id FROM deliveries x \
                                  WHERE x.state = 'sent' AND x.campaign_id IN ({}))",
                        ids.join(", ")
                    ),
                    ELIGIBLE,
                )
            }
        };
        let sql = format!(
            "WITH campaign_audience (campaign_id, kind, value) AS ({audience}), \
                  campaign_limits (campaign_id, constituency_code) AS ({limit_rows}), \
                  campaign_exclusions (campaign_id, excluded_campaign_id) AS ({exclusions}), \
                  campaigns (id, topic_id, limited, postcodes_within, within_miles, \
                             venue_latitude, venue_longitude, venue_miles_east) AS \
                      (SELECT CAST($1 AS BIGINT), t.id, $4, $5, CAST($6 AS BIGINT), \
                              CAST($7 AS DOUBLE PRECISION), CAST($8 AS DOUBLE PRECISION), \
                              CAST($9 AS DOUBLE PRECISION) \
                       FROM topics t WHERE t.slug = $3) \
             SELECT COALESCE(c.constituency_code, ''), {counted} \
             FROM campaigns k, {from} \
             WHERE k.id = $1 AND {within} AND {rule} \
             GROUP BY c.constituency_code"
        );
        let found: Vec<(String, i64)> = on_pool!(self, |pool| {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(0_i64)
                .bind(latest_birth_date_to_mail(on))
                .bind(campaign.topic.as_str())
                .bind(limit.constituencies().is_some())
                .bind(campaign.audience.postcodes_within)
                .bind(near)
                .bind(venue.map(|v| v.latitude))
                .bind(venue.map(|v| v.longitude))
                .bind(venue.map(|v| v.miles_per_degree_east()));
            for (kind, value) in &rows {
                query = query.bind(*kind).bind(*value);
            }
            for code in &limits {
                query = query.bind(*code);
            }
            for excluded in excluding {
                query = query.bind(*excluded);
            }
            if let Area::SentBy(campaigns, _) = area {
                for campaign in campaigns.iter() {
                    query = query.bind(*campaign);
                }
            }
            if let Area::Near(venue, miles) | Area::UnderAgeNear(venue, miles) = *area {
                // A hair wider than the circle: the box only narrows, the exact rule decides.
                let miles = f64::from(miles) * 1.001;
                let north = miles / crate::domain::MILES_PER_DEGREE_NORTH;
                let east = miles / venue.miles_per_degree_east();
                query = query
                    .bind(venue.latitude - north)
                    .bind(venue.latitude + north)
                    .bind(venue.longitude - east)
                    .bind(venue.longitude + east);
            }
            query.fetch_all(pool).await?
        });
        Ok(found
            .into_iter()
            .map(|(code, n)| (code, n.max(0) as u64))
            .collect())
    }

    /// Where the directory places `postcode`, if it does.
    pub async fn place_of(&self, postcode: &Postcode) -> Result<Option<Coordinates>> {
        let place: Option<(Option<f64>, Option<f64>)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT latitude, longitude FROM postcodes WHERE postcode = $1")
                .bind(postcode.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(match place {
            Some((Some(latitude), Some(longitude))) => Some(Coordinates {
                latitude,
                longitude,
            }),
            _ => None,
        })
    }

    /// Who a campaign's postcode prefixes reach on `on` outside the constituencies `named` (or,
    /// `within`, inside them only), by constituency code ('' for none): the rule
    /// ([`ELIGIBLE`]) over the campaign's topic,
    /// prefixes and limit, given to the statement as common table expressions that stand in for
    /// the tables of a saved campaign, and read through the contacts' postcode index, one range
    /// of it per prefix.
    async fn prefix_audience(
        &self,
        campaign: &NewCampaign,
        limit: &Scope,
        on: NaiveDate,
        named: &[&str],
        within: bool,
    ) -> Result<Vec<(String, u64)>> {
        let prefixes = Audience {
            constituencies: Vec::new(),
            postcodes: campaign.audience.postcodes.clone(),
            postcodes_within: false,
            near: None,
            excluding: Vec::new(),
        };
        let audience = audience_rows(&prefixes);
        let limits = limit.codes();
        let postcode = self.postcode_bytes();
        // $1 the campaign (0), $2 the birth date, $3 the topic, $4 limited; then the values.
        let mut next = 5;
        let rows = stand_in_rows(audience.len(), 2, &mut next);
        let mut ranges = Vec::new();
        for _ in &audience {
            ranges.push(format!(
                "({postcode} >= ${} AND {postcode} < ${})",
                next,
                next + 1
            ));
            next += 2;
        }
        let limit_rows = stand_in_rows(limits.len(), 1, &mut next);
        let mut outside = vec!["''".to_owned()];
        for _ in named {
            outside.push(format!("${next}"));
            next += 1;
        }
        let placed = if within {
            format!("p.constituency_code IN ({})", outside.join(", "))
        } else {
            format!(
                "(p.constituency_code IS NULL OR p.constituency_code NOT IN ({}))",
                outside.join(", ")
            )
        };
        let sql = format!(
            "WITH campaign_audience (campaign_id, kind, value) AS ({}), \
                  campaign_limits (campaign_id, constituency_code) AS ({}), \
                  {NO_EXCLUSIONS}, \
                  campaigns (id, topic_id, limited, postcodes_within, within_miles, \
                             venue_latitude, venue_longitude, venue_miles_east) AS \
                      (SELECT CAST($1 AS BIGINT), t.id, $4, FALSE, CAST(NULL AS BIGINT), \
                              CAST(NULL AS DOUBLE PRECISION), CAST(NULL AS DOUBLE PRECISION), \
                              CAST(NULL AS DOUBLE PRECISION) \
                       FROM topics t WHERE t.slug = $3) \
             SELECT COALESCE(p.constituency_code, ''), count(*) \
             FROM campaigns k, contacts c \
             LEFT JOIN postcodes p ON p.postcode = c.postcode \
             WHERE k.id = $1 AND ({}) \
               AND {placed} \
               AND {ELIGIBLE} \
             GROUP BY p.constituency_code",
            rows,
            limit_rows,
            ranges.join(" OR "),
        );
        let found: Vec<(String, i64)> = on_pool!(self, |pool| {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(0_i64)
                .bind(latest_birth_date_to_mail(on))
                .bind(campaign.topic.as_str())
                .bind(limit.constituencies().is_some());
            for (kind, value) in &audience {
                query = query.bind(*kind).bind(*value);
            }
            // Postcodes are ASCII: everything that starts with the prefix sorts before it
            // followed by DEL.
            for (_, value) in &audience {
                query = query.bind(*value).bind(format!("{value}\u{7f}"));
            }
            for code in &limits {
                query = query.bind(*code);
            }
            for code in named {
                query = query.bind(*code);
            }
            query.fetch_all(pool).await?
        });
        Ok(found
            .into_iter()
            .map(|(code, n)| (code, n as u64))
            .collect())
    }

    /// How many people would receive the campaign if it were sent on `on`.
    pub async fn audience_size(&self, id: i64, on: NaiveDate) -> Result<u64> {
        let count: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM campaigns k, contacts c WHERE k.id = $1 AND {ELIGIBLE}"
            )))
            .bind(id)
            .bind(latest_birth_date_to_mail(on))
            .fetch_one(pool)
            .await?
        });
        Ok(count as u64)
    }

    /// Whose values a preview or a test send shows: the contact at `address`, or else the first
    /// person (by id); either way someone the campaign would reach on `on`, so that a test never
    /// shows the details of a person it could not be sent to.
    pub async fn sample_recipient(
        &self,
        id: i64,
        address: Option<&Email>,
        on: NaiveDate,
    ) -> Result<Option<Recipient>> {
        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<f64>,
        );
        let row: Option<Row> = on_pool!(self, |pool| {
            match address {
                Some(address) => {
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT c.public_id, c.name, c.postcode, {CONSTITUENCY_OF_CONTACT}, \
                                {SQUARED_MILES_OF_CONTACT} \
                         FROM campaigns k, contacts c \
                         WHERE k.id = $1 AND c.email_hash = $3 AND {ELIGIBLE}"
                    )))
                    .bind(id)
                    .bind(latest_birth_date_to_mail(on))
                    .bind(address.hash().as_str().to_owned())
                    .fetch_optional(pool)
                    .await?
                }
                None => {
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT c.public_id, c.name, c.postcode, {CONSTITUENCY_OF_CONTACT}, \
                                {SQUARED_MILES_OF_CONTACT} \
                         FROM campaigns k, contacts c WHERE k.id = $1 AND {ELIGIBLE} \
                         ORDER BY c.id LIMIT 1"
                    )))
                    .bind(id)
                    .bind(latest_birth_date_to_mail(on))
                    .fetch_optional(pool)
                    .await?
                }
            }
        });
        row.map(|(public_id, name, postcode, constituency, squared)| {
            Ok(Recipient {
                public_id: public_id
                    .parse()
                    .map_err(|e| decode_error("public id", e))?,
                name,
                postcode,
                constituency,
                miles_from_venue: Recipient::miles(squared),
            })
        })
        .transpose()
    }
}
