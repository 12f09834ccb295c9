//! The staff console over real HTTP, on both engines: passwords set through their link,
//! sessions, the refusals (wrong password, throttling, cross-site requests, a form without its
//! token, a dead session), and each person kept to their constituencies.

mod support;

use canvass::app::{Actor, AppError};
use canvass::store::StateChange;
use reqwest::StatusCode;
use support::app::{KEY_1, TestApp};
use support::console::{Browser, PASSWORD, add_staff, link_secret};
use support::{TestStore, on_both_backends};

on_both_backends!(
    a_request_without_a_session_is_sent_to_sign_in,
    a_constituency_s_name_needs_a_guard_only_where_the_audience_can_hold_someone_in_none,
    a_person_sets_their_password_once_through_their_link_and_signs_in,
    a_wrong_password_is_refused_alike_and_sign_in_is_throttled,
    a_burst_of_guesses_is_counted_before_any_is_checked_and_locks_no_one_out,
    a_cross_site_post_or_a_form_without_its_token_is_refused_and_changes_nothing,
    a_session_ends_when_signed_out_idle_or_disabled_and_a_new_sign_in_replaces_it,
    an_open_dashboard_lets_its_session_go_idle_and_its_live_stream_ends_with_it,
    an_organiser_sees_searches_and_opens_only_contacts_in_their_constituencies,
    a_viewer_reads_but_cannot_change_anything,
    a_campaign_the_worker_paused_is_a_banner_on_the_dashboard_until_resumed,
    a_staff_campaign_goes_out_after_another_person_approves_that_version_and_only_within_scope,
    a_campaign_is_written_approved_and_sent_through_the_console_pages,
    an_event_near_its_venue_is_composed_counted_and_kept_in_the_console,
    an_organiser_imports_a_spreadsheet_and_rows_outside_their_constituencies_are_refused,
    an_organiser_is_refused_alike_whoever_holds_an_address_or_whatever_suppressed_it,
    an_organiser_edits_withdraws_restricts_exports_and_erases_only_contacts_in_scope,
    admins_manage_the_staff_and_read_the_audit_log_and_no_one_else_does,
    topics_are_added_and_an_address_checked_against_the_suppression_list,
    a_second_factor_is_turned_on_with_a_code_and_asked_for_at_each_sign_in,
    an_organiser_walks_every_console_page_and_api_route_and_meets_no_one_outside_their_scope,
);

/// Four people: in Hertford and Stortford, Stevenage and St Albans, and one with no postcode.
const PEOPLE: &str = "email,name,postcode,topics,consent_at\n\
    amira@example.org,Amira Hassan,SG13 8EQ,news,2026-09-14T18:30:00Z\n\
    ben@example.org,Ben Okafor,SG1 2AA,news;events,2026-09-14T18:30:00Z\n\
    cara@example.org,Cara Doyle,AL1 3JE,news,2026-09-14T18:30:00Z\n\
    dev@example.org,Dev Patel,,news,2026-09-14T18:30:00Z\n";

const STEVENAGE: &str = "E14900002";

async fn console(db: TestStore) -> TestApp {
    let app = TestApp::start(db, KEY_1, PEOPLE).await;
    add_staff(&app.db, "admin@hq.example.org", "admin", &[]).await;
    add_staff(
        &app.db,
        "olu@hq.example.org",
        "organiser",
        &["Stevenage (sample)"],
    )
    .await;
    add_staff(&app.db, "vic@hq.example.org", "viewer", &[STEVENAGE]).await;
    app
}

async fn a_request_without_a_session_is_sent_to_sign_in(db: TestStore) {
    let app = console(db).await;
    let browser = Browser::new(&app);
    for path in [
        "/admin",
        "/admin/contacts",
        "/admin/campaigns",
        "/admin/anything",
    ] {
        let answer = browser.get(path).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(answer.location(), Some("/admin/login"), "{path}");
    }
    let posted = browser.post_form("/admin/logout", &[]).await;
    assert_eq!(posted.location(), Some("/admin/login"));
    // htmx is told to load the sign-in page rather than swap it into a part of a page.
    let partial = app
        .client
        .get(format!("{}/admin/contacts", app.base))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(partial.headers()["hx-redirect"], "/admin/login");
    // A made-up cookie is no session, and the browser is told to forget it.
    let forged = Browser {
        cookie: Some("__Host-canvass_session=canvass_forged".into()),
        ..Browser::new(&app)
    };
    let answer = forged.get("/admin").await;
    assert_eq!(answer.location(), Some("/admin/login"));
    assert!(
        answer.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );

    let login = browser.get("/admin/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("autocomplete=\"current-password\""));
    assert!(
        login.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
}

async fn a_person_sets_their_password_once_through_their_link_and_signs_in(db: TestStore) {
    let app = TestApp::start(db, KEY_1, PEOPLE).await;
    let added = canvass::app::staff::add(
        &app.db.app(),
        &Actor::Operator,
        "Nadia@HQ.example.org",
        "Nadia Rahman",
        "organiser",
        &[STEVENAGE.to_owned()],
    )
    .await
    .unwrap();
    assert!(
        added
            .link
            .starts_with("https://links.example.org/admin/password/")
    );
    let path = format!("/admin/password/{}", link_secret(&added.link));
    let browser = Browser::new(&app);
    let page = browser.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.main_text().contains("Hello Nadia Rahman"),
        "{}",
        page.main_text()
    );
    assert!(page.body.contains("nadia@hq.example.org"));

    // A short or repetitive password, or two that differ, is refused and nothing is set.
    let before = app.db.dump().await;
    for (password, repeat, says) in [
        ("short one", "short one", "at least 15 characters"),
        (
            "aaaaaaaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaaaaaaa",
            "more than one kind",
        ),
        (
            PASSWORD,
            "correct horse battery stapler",
            "the two passwords differ",
        ),
    ] {
        let answer = browser
            .post_form(&path, &[("password", password), ("repeat", repeat)])
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{password}"
        );
        assert!(answer.main_text().contains(says), "{}", answer.main_text());
    }
    assert_eq!(
        app.db.dump().await,
        before,
        "a refused password changes nothing"
    );

    let set = browser
        .post_form(&path, &[("password", PASSWORD), ("repeat", PASSWORD)])
        .await;
    assert_eq!(set.location(), Some("/admin/login?done=password"));
    // The link is spent.
    assert_eq!(browser.get(&path).await.status, StatusCode::NOT_FOUND);
    let again = browser
        .post_form(
            &path,
            &[
                ("password", "another long passphrase"),
                ("repeat", "another long passphrase"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    // The address is taken in any case; the cookie is the strictest a browser knows.
    let mut browser = Browser::new(&app);
    let signed = browser.sign_in("NADIA@hq.example.org", PASSWORD).await;
    assert_eq!(signed.location(), Some("/admin"));
    let cookie = signed.headers["set-cookie"].to_str().unwrap().to_owned();
    for attribute in [
        "__Host-canvass_session=",
        "Path=/",
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let home = browser.get("/admin").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Nadia Rahman (organiser)"));

    // Neither the password nor the session's secret is stored as it is.
    let dump = app.db.dump().await;
    let secret = browser.cookie.as_ref().unwrap().split_once('=').unwrap().1;
    assert!(!dump.contains(PASSWORD) && !dump.contains(secret));
    assert!(
        dump.contains("$argon2id$"),
        "the password is hashed with argon2id"
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM audit_log WHERE actor = 'staff:nadia@hq.example.org'")
            .await,
        2,
        "setting the password and signing in are audited under the person's address"
    );
}

async fn a_wrong_password_is_refused_alike_and_sign_in_is_throttled(db: TestStore) {
    let app = console(db).await;
    let mut browser = Browser::new(&app);
    let wrong = browser
        .sign_in("olu@hq.example.org", "not the password at all")
        .await;
    let nobody = browser.sign_in("nobody@hq.example.org", PASSWORD).await;
    let garbage = browser.sign_in("not an address", PASSWORD).await;
    for answer in [&wrong, &nobody, &garbage] {
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(
            answer
                .main_text()
                .contains("that address and password do not match")
        );
        assert!(!answer.headers.contains_key("set-cookie"));
    }
    assert!(
        wrong.body.contains("value=\"olu@hq.example.org\""),
        "the address is kept"
    );
    assert!(
        !wrong.body.contains("not the password at all"),
        "the password is not"
    );

    // Five failures from one IP at one address: then even the right password waits there...
    browser.ip = "198.51.100.1".into();
    for n in 0..5 {
        let answer = browser
            .sign_in("olu@hq.example.org", "still not the password")
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "try {n}");
    }
    let throttled = browser.sign_in("olu@hq.example.org", PASSWORD).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.main_text().contains("too many sign-in attempts"));
    assert!(!throttled.headers.contains_key("set-cookie"));
    // ...but whoever guesses does not lock Olu out of the office.
    browser.ip = "198.51.100.2".into();
    assert_eq!(
        browser.sign_in("olu@hq.example.org", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    // Signing in often costs nothing.
    for n in 0..8 {
        let answer = browser.sign_in("admin@hq.example.org", PASSWORD).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "sign-in {n}");
    }

    // Twenty failures from one IP, whatever the addresses.
    browser.ip = "192.0.2.99".into();
    for n in 0..20 {
        let answer = browser
            .sign_in(&format!("guess{n}@hq.example.org"), PASSWORD)
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "try {n}");
    }
    assert_eq!(
        browser.sign_in("vic@hq.example.org", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A dump without the lines of one table (`name:`).
fn without(dump: &str, table: &str) -> String {
    dump.lines()
        .filter(|line| !line.starts_with(table))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How many of `answers` were each status.
fn tally(answers: &[StatusCode]) -> std::collections::BTreeMap<u16, usize> {
    let mut tally = std::collections::BTreeMap::new();
    for answer in answers {
        *tally.entry(answer.as_u16()).or_default() += 1;
    }
    tally
}

async fn a_burst_of_guesses_is_counted_before_any_is_checked_and_locks_no_one_out(db: TestStore) {
    use futures_util::future::join_all;
    let app = console(db).await;
    let sign_in_from = |ip: String, email: &'static str, password: String, code: &'static str| {
        let mut browser = Browser::new(&app);
        browser.ip = ip;
        async move {
            browser
                .post_form(
                    "/admin/login",
                    &[("email", email), ("password", &password), ("code", code)],
                )
                .await
                .status
        }
    };

    // Sixty wrong passwords at once, for one address from one IP: five are checked.
    let burst = (0..60).map(|n| {
        sign_in_from(
            "198.51.100.60".into(),
            "olu@hq.example.org",
            format!("guess {n}"),
            "",
        )
    });
    let answers = join_all(burst).await;
    assert_eq!(
        tally(&answers),
        [(401, 5), (429, 55)].into(),
        "five checked, the rest refused unchecked"
    );
    assert_eq!(
        app.db
            .count("SELECT attempts FROM sign_in_attempts WHERE key LIKE 'account:%'")
            .await,
        5,
        "refused attempts, which cost nothing, do not slow the account down for others"
    );
    let right = sign_in_from(
        "198.51.100.60".into(),
        "olu@hq.example.org",
        PASSWORD.into(),
        "",
    );
    assert_eq!(right.await, StatusCode::TOO_MANY_REQUESTS);

    // Twenty codes at once with the right password, for someone with a second factor.
    let user = app
        .db
        .store
        .staff_user_id(&canvass::domain::Email::parse("vic@hq.example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    app.db
        .store
        .set_totp(
            user,
            Some("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"),
            &Actor::Operator,
        )
        .await
        .unwrap();
    let codes = [
        "000000", "111111", "222222", "333333", "444444", "555555", "666666", "777777", "888888",
        "999999", "012345", "123456", "234567", "345678", "456789", "567890", "678901", "789012",
        "890123", "901234",
    ];
    let burst = codes.map(|code| {
        sign_in_from(
            "198.51.100.61".into(),
            "vic@hq.example.org",
            PASSWORD.into(),
            code,
        )
    });
    let answers = join_all(burst).await;
    let refused = answers
        .iter()
        .filter(|a| **a == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(refused >= 15, "at most five codes checked: {answers:?}");

    // Forty-five failures at the admin's address from nine IPs (five each, all at once) do not
    // lock the admin out: from another IP the right password still signs in, later.
    let burst = (0..45).map(|n| {
        sign_in_from(
            format!("192.0.2.{}", n / 5),
            "admin@hq.example.org",
            format!("guess {n}"),
            "",
        )
    });
    let answers = join_all(burst).await;
    assert_eq!(tally(&answers), [(401, 45)].into());
    let fresh = sign_in_from(
        "203.0.113.200".into(),
        "admin@hq.example.org",
        PASSWORD.into(),
        "",
    );
    assert_eq!(fresh.await, StatusCode::SEE_OTHER, "slowed, not refused");
}

async fn a_cross_site_post_or_a_form_without_its_token_is_refused_and_changes_nothing(
    db: TestStore,
) {
    let app = console(db).await;
    let browser = Browser::signed_in(&app, "olu@hq.example.org").await;
    let token = browser.get("/admin").await.form_token();
    let before = app.db.dump().await;
    let post = |origin: Option<String>, site: Option<&'static str>, token: Option<String>| {
        let mut request = app
            .client
            .post(format!("{}/admin/logout", app.base))
            .header("cookie", browser.cookie.clone().unwrap());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        let fields: Vec<(&str, String)> = token.map(|t| ("form_token", t)).into_iter().collect();
        async move { request.form(&fields).send().await.unwrap().status() }
    };
    let refusals = [
        (
            Some("https://evil.example".to_owned()),
            None,
            Some(token.clone()),
        ),
        (Some("null".to_owned()), None, Some(token.clone())),
        // The console's host and port, but another scheme: another origin.
        (
            Some(app.base.replacen("http://", "https://", 1)),
            None,
            Some(token.clone()),
        ),
        (None, Some("cross-site"), Some(token.clone())),
        (None, Some("same-site"), Some(token.clone())),
        (None, None, None),
        (None, None, Some("canvass_guess".to_owned())),
    ];
    for (origin, site, token) in refusals {
        let label = format!("{origin:?} {site:?} {token:?}");
        assert_eq!(
            post(origin, site, token).await,
            StatusCode::FORBIDDEN,
            "{label}"
        );
    }
    assert_eq!(
        app.db.dump().await,
        before,
        "no refused request changed anything"
    );
    assert_eq!(
        browser.get("/admin").await.status,
        StatusCode::OK,
        "still signed in"
    );
    // A cross-site sign-in form is refused too (login CSRF).
    let forged = app
        .client
        .post(format!("{}/admin/login", app.base))
        .header("origin", "https://evil.example")
        .form(&[("email", "olu@hq.example.org"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(!forged.headers().contains_key("set-cookie"));
    // The same request from the page itself signs out.
    // Behind a TLS proxy it trusts (here 127.0.0.1), the console's origin is https, as the
    // proxy says; from a browser that sends only its Origin, the page itself signs out.
    let behind_proxy = app
        .client
        .post(format!("{}/admin/logout", app.base))
        .header("cookie", browser.cookie.clone().unwrap())
        .header("origin", app.base.replacen("http://", "https://", 1))
        .header("x-forwarded-proto", "https")
        .form(&[("form_token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(behind_proxy.status(), StatusCode::SEE_OTHER);
    assert_eq!(browser.get("/admin").await.location(), Some("/admin/login"));
}

async fn a_session_ends_when_signed_out_idle_or_disabled_and_a_new_sign_in_replaces_it(
    db: TestStore,
) {
    let app = console(db).await;
    // Signed out: the cookie opens nothing any more.
    let browser = Browser::signed_in(&app, "olu@hq.example.org").await;
    let out = browser.submit("/admin", "/admin/logout", &[]).await;
    assert_eq!(out.location(), Some("/admin/login?done=out"));
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(browser.get("/admin").await.location(), Some("/admin/login"));

    // Idle for over an hour.
    let browser = Browser::signed_in(&app, "olu@hq.example.org").await;
    assert_eq!(browser.get("/admin").await.status, StatusCode::OK);
    app.db
        .execute(match app.db.store.backend() {
            "sqlite" => "UPDATE staff_sessions SET last_seen_at = '2026-01-01T00:00:00Z'",
            _ => "UPDATE staff_sessions SET last_seen_at = '2026-01-01T00:00:00Z'::timestamptz",
        })
        .await;
    assert_eq!(browser.get("/admin").await.location(), Some("/admin/login"));
    assert_eq!(
        app.db.count("SELECT count(*) FROM staff_sessions").await,
        0,
        "a dead session is deleted"
    );

    // Signing in again opens a new session and ends the one the browser had.
    let mut browser = Browser::signed_in(&app, "olu@hq.example.org").await;
    let first = browser.cookie.clone();
    browser.sign_in("olu@hq.example.org", PASSWORD).await;
    assert_ne!(browser.cookie, first, "the session is new at each sign-in");
    let old = Browser {
        cookie: first,
        ..Browser::new(&app)
    };
    assert_eq!(old.get("/admin").await.location(), Some("/admin/login"));
    assert_eq!(browser.get("/admin").await.status, StatusCode::OK);

    // Disabled: signed out at once, and refused from then on.
    canvass::app::staff::disable(&app.db.app(), &Actor::Operator, "olu@hq.example.org")
        .await
        .unwrap();
    assert_eq!(browser.get("/admin").await.location(), Some("/admin/login"));
    let mut again = Browser::new(&app);
    assert_eq!(
        again.sign_in("olu@hq.example.org", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Sets when every session was last used, `ago` before now.
async fn last_used(db: &TestStore, ago: chrono::Duration) {
    let at = chrono::Utc::now() - ago;
    let sql = "UPDATE staff_sessions SET last_seen_at = $1";
    match db.store.pool() {
        canvass::store::Pool::Sqlite(pool) => {
            sqlx::query(sql).bind(at).execute(pool).await.map(drop)
        }
        canvass::store::Pool::Postgres(pool) => {
            sqlx::query(sql).bind(at).execute(pool).await.map(drop)
        }
    }
    .unwrap();
}

/// How long ago the session was last used, in whole minutes.
async fn minutes_since_used(db: &TestStore) -> i64 {
    let sql = "SELECT last_seen_at FROM staff_sessions";
    let at: chrono::DateTime<chrono::Utc> = match db.store.pool() {
        canvass::store::Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        canvass::store::Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .unwrap();
    (chrono::Utc::now() - at).num_minutes()
}

async fn an_open_dashboard_lets_its_session_go_idle_and_its_live_stream_ends_with_it(
    db: TestStore,
) {
    let app = console(db).await;
    let browser = Browser::signed_in(&app, "olu@hq.example.org").await;
    last_used(&app.db, chrono::Duration::minutes(50)).await;
    let mut stream = app
        .client
        .get(format!("{}/admin/events", app.base))
        .header("cookie", browser.cookie.clone().unwrap())
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(
        stream.headers()["x-accel-buffering"],
        "no",
        "a proxy is asked to pass the stream on as it comes"
    );
    let mut events = 0;
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(until, stream.chunk()).await {
        events += String::from_utf8_lossy(&chunk)
            .matches("event: progress")
            .count();
    }
    assert!(events >= 2, "the stream ticks ({events} events)");
    assert_eq!(
        minutes_since_used(&app.db).await,
        50,
        "the stream's ticks are not the person's activity"
    );
    // A page the person asks for is.
    assert_eq!(browser.get("/admin/contacts").await.status, StatusCode::OK);
    assert_eq!(minutes_since_used(&app.db).await, 0);

    // Idle past the hour, the session ends, and the open stream with it.
    last_used(&app.db, chrono::Duration::minutes(61)).await;
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ended with its session");
    assert_eq!(
        browser.get("/admin").await.status,
        StatusCode::SEE_OTHER,
        "signed out"
    );
}

async fn an_organiser_sees_searches_and_opens_only_contacts_in_their_constituencies(db: TestStore) {
    let app = console(db).await;
    let ben = app.public_id("ben@example.org").await.to_string();
    let outsiders = [
        ("amira@example.org", "Amira Hassan"),
        ("cara@example.org", "Cara Doyle"),
        ("dev@example.org", "Dev Patel"),
    ];
    let mut outsider_ids = Vec::new();
    for (email, _) in outsiders {
        outsider_ids.push(app.public_id(email).await.to_string());
    }
    let olu = Browser::signed_in(&app, "olu@hq.example.org").await;

    let home = olu.get("/admin").await;
    assert!(
        home.main_text().contains("hold 1 contacts"),
        "{}",
        home.main_text()
    );
    let mut pages = vec![home];
    for path in [
        "/admin/contacts".to_owned(),
        "/admin/contacts?q=example.org".to_owned(),
        "/admin/contacts?q=amira%40example.org".to_owned(),
        "/admin/contacts?q=SG13+8EQ".to_owned(),
        "/admin/contacts?q=a".to_owned(),
        "/admin/contacts?constituency=E14900001".to_owned(),
        "/admin/contacts?topic=news&consent=granted".to_owned(),
        "/admin/contacts?page=2".to_owned(),
        "/admin/campaigns".to_owned(),
        format!("/admin/contacts/{ben}"),
    ] {
        let mut answer = olu.get(&path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        // What was typed in the search box comes back in it, and is no leak.
        answer.body = answer
            .body
            .replace("value=\"amira@example.org\"", "value=\"\"");
        pages.push(answer);
    }
    for page in &pages {
        for (email, name) in outsiders {
            assert!(
                !page.body.contains(email) && !page.body.contains(name),
                "{email} in {}",
                page.body
            );
        }
        for id in &outsider_ids {
            assert!(!page.body.contains(id.as_str()));
        }
        assert!(
            !page.body.contains("Hertford and Stortford"),
            "no other constituency"
        );
    }
    let all = &pages[1];
    assert!(
        all.main_text().contains("Showing 1 to 1 of 1"),
        "{}",
        all.main_text()
    );
    assert!(all.body.contains("ben@example.org"));
    assert!(pages[3].main_text().contains("No contact matches"));

    for id in &outsider_ids {
        let answer = olu.get(&format!("/admin/contacts/{id}")).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        assert!(!answer.body.contains("@example.org"));
    }
    let details = olu.get(&format!("/admin/contacts/{ben}")).await;
    assert!(details.main_text().contains("Ben Okafor"));

    // An admin, kept to nothing, sees everyone.
    let admin = Browser::signed_in(&app, "admin@hq.example.org").await;
    let everyone = admin.get("/admin/contacts").await;
    assert!(everyone.main_text().contains("Showing 1 to 4 of 4"));
    assert!(!everyone.body.contains("rel=\"next\""));
    // A page past the end says so, and offers no next page.
    let past = admin.get("/admin/contacts?page=7").await;
    assert!(past.main_text().contains("4 match, none on this page."));
    assert!(!past.body.contains("rel=\"next\""), "{}", past.body);

    // The organiser's own API token is kept to the same constituencies.
    let token = canvass::app::staff::issue_token(
        &app.db.app(),
        &Actor::Operator,
        "olu script",
        false,
        Some("olu@hq.example.org"),
    )
    .await
    .unwrap();
    let api = |path: String| {
        app.client
            .get(format!("{}/api/v1{path}", app.base))
            .bearer_auth(token.expose())
    };
    let found = api("/contacts/ben@example.org".into())
        .send()
        .await
        .unwrap();
    assert_eq!(found.status(), StatusCode::OK);
    for (email, _) in outsiders {
        let hidden = api(format!("/contacts/{email}")).send().await.unwrap();
        assert_eq!(hidden.status(), StatusCode::NOT_FOUND, "{email}");
    }
    let before = app.db.dump().await;
    for (email, _) in outsiders {
        let erase = app
            .client
            .delete(format!("{}/api/v1/contacts/{email}", app.base))
            .bearer_auth(token.expose())
            .send()
            .await
            .unwrap();
        assert_eq!(erase.status(), StatusCode::NOT_FOUND, "{email}");
    }
    let outside = app
        .client
        .post(format!("{}/api/v1/contacts", app.base))
        .bearer_auth(token.expose())
        .json(&serde_json::json!({
            "email": "new@example.org", "postcode": "AL1 3JE", "topics": ["news"],
            "consent_source": "doorstep"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.db.dump().await,
        before,
        "nothing outside the scope changed"
    );
}

/// A campaign canvass paused for what needs a person shows on the dashboard as an alert, with
/// why and a link to it; one that staff paused, or resumed, does not.
async fn a_campaign_the_worker_paused_is_a_banner_on_the_dashboard_until_resumed(db: TestStore) {
    let app = console(db).await;
    let id = app
        .db
        .queue(&support::news_campaign(&[STEVENAGE], &[]))
        .await;
    let admin = Browser::signed_in(&app, "admin@hq.example.org").await;
    let banner = |page: &str| {
        page.lines()
            .find(|line| line.contains("role=\"alert\"") && line.contains("canvass paused"))
            .map(str::to_owned)
    };
    assert_eq!(banner(&admin.get("/admin").await.body), None);

    let why = "the mail server refused our login: AUTH: 535 5.7.8 credentials invalid";
    assert!(app.db.store.pause_failing_campaign(id, why).await.unwrap());
    let shown = banner(&admin.get("/admin").await.body).expect("a banner");
    assert!(
        shown.contains(&format!("href=\"/admin/campaigns/{id}\"")),
        "{shown}"
    );
    assert!(shown.contains("refused our login"), "{shown}");

    app.db
        .store
        .change_campaign_state(id, StateChange::Resume, &Actor::Operator)
        .await
        .unwrap();
    assert_eq!(banner(&admin.get("/admin").await.body), None);
    app.db
        .store
        .change_campaign_state(id, StateChange::Pause, &Actor::Operator)
        .await
        .unwrap();
    assert_eq!(
        banner(&admin.get("/admin").await.body),
        None,
        "staff's own pause"
    );
}

async fn a_viewer_reads_but_cannot_change_anything(db: TestStore) {
    let app = console(db).await;
    let vic = Browser::signed_in(&app, "vic@hq.example.org").await;
    let page = vic.get("/admin/contacts").await;
    assert!(page.body.contains("ben@example.org"));
    assert!(page.body.contains("Person at vic@hq.example.org (viewer)"));

    let app_layer = app.db.app();
    let token = canvass::app::staff::issue_token(
        &app_layer,
        &Actor::Operator,
        "vic script",
        false,
        Some("vic@hq.example.org"),
    )
    .await
    .unwrap();
    let viewer = Actor::Staff(canvass::domain::StaffMember {
        name: "vic@hq.example.org".into(),
        role: canvass::domain::Role::Viewer,
        scope: canvass::domain::Scope::Everyone,
    });
    let before = app.db.dump().await;
    let refused =
        canvass::app::contacts::restrict(&app_layer, &viewer, "ben@example.org", true).await;
    assert!(matches!(refused, Err(AppError::Denied(_))), "{refused:?}");
    let refused = canvass::app::topics::add(&app_layer, &viewer, "doors", "Door knocking").await;
    assert!(matches!(refused, Err(AppError::Denied(_))));
    let write = app
        .client
        .post(format!("{}/api/v1/topics", app.base))
        .bearer_auth(token.expose())
        .json(&serde_json::json!({"slug": "doors", "name": "Door knocking"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        write.status(),
        StatusCode::FORBIDDEN,
        "a viewer's token cannot write"
    );
    let organiser = Actor::Staff(canvass::domain::StaffMember {
        name: "olu@hq.example.org".into(),
        role: canvass::domain::Role::Organiser,
        scope: canvass::domain::Scope::Everyone,
    });
    let staff_added = canvass::app::staff::add(
        &app_layer,
        &organiser,
        "new@hq.example.org",
        "New Person",
        "admin",
        &[],
    )
    .await;
    assert!(
        matches!(staff_added, Err(AppError::Denied(_))),
        "only admins add staff"
    );
    assert_eq!(
        app.db.dump().await,
        before,
        "no refused request changed anything"
    );
}

fn staff(name: &str, role: canvass::domain::Role, codes: &[&str]) -> Actor {
    let codes = codes
        .iter()
        .map(|c| canvass::domain::ConstituencyCode::parse(c).unwrap())
        .collect();
    Actor::Staff(canvass::domain::StaffMember {
        name: name.into(),
        role,
        scope: canvass::domain::Scope::of(codes),
    })
}

async fn a_staff_campaign_goes_out_after_another_person_approves_that_version_and_only_within_scope(
    db: TestStore,
) {
    use canvass::app::campaigns;
    use canvass::domain::Role::{Admin, Organiser};
    let app = console(db).await;
    let service = app.db.app();
    let olu = staff("olu@hq.example.org", Organiser, &[STEVENAGE]);
    let hertford = staff("hana@hq.example.org", Organiser, &["E14900001"]);
    let admin = staff("admin@hq.example.org", Admin, &[]);
    // Meant for everyone who wants news: all four consent; Olu is kept to Stevenage.
    let draft = || {
        serde_json::from_value::<canvass::domain::CampaignDraft>(serde_json::json!({
            "name": "Autumn news", "topic": "news", "subject": "News",
            "html_template": "<p>Hello {{contact.name}}</p>"
        }))
        .unwrap()
    };
    let id = campaigns::create(&service, &olu, draft()).await.unwrap();
    let unapproved = |r: canvass::app::Result<u64>| {
        matches!(
            r,
            Err(AppError::Conflict {
                code: canvass::app::Conflict::Unapproved,
                ..
            })
        )
    };
    assert!(unapproved(campaigns::queue(&service, &olu, id).await));
    let scheduled = campaigns::schedule(&service, &olu, id, "2030-01-01T09:00:00Z").await;
    assert!(matches!(
        scheduled,
        Err(AppError::Conflict {
            code: canvass::app::Conflict::Unapproved,
            ..
        })
    ));
    let own = campaigns::approve(&service, &olu, id, 1).await;
    assert!(matches!(own, Err(AppError::Denied(_))), "{own:?}");

    // Hana, kept to Hertford, neither sees it nor may approve it.
    assert!(
        campaigns::list(&service, &hertford)
            .await
            .unwrap()
            .is_empty()
    );
    let unseen = campaigns::approve(&service, &hertford, id, 1).await;
    assert!(matches!(unseen, Err(AppError::NotFound(_))), "{unseen:?}");
    // Its audience is cut to Olu's constituency before anyone approves it.
    let audience = campaigns::audience(&service, &admin, id).await.unwrap();
    assert_eq!(
        audience,
        vec![(Some(STEVENAGE.into()), Some("Stevenage (sample)".into()), 1)]
    );

    campaigns::approve(&service, &admin, id, 1).await.unwrap();
    // An edit is a new version, and withdraws the approval.
    let changes = serde_json::from_value(serde_json::json!({"subject": "Autumn news"})).unwrap();
    campaigns::edit(&service, &olu, id, changes).await.unwrap();
    assert!(unapproved(campaigns::queue(&service, &olu, id).await));
    let stale = campaigns::approve(&service, &admin, id, 1).await;
    assert!(matches!(
        stale,
        Err(AppError::Conflict {
            code: canvass::app::Conflict::Edited,
            ..
        })
    ));
    campaigns::approve(&service, &admin, id, 2).await.unwrap();
    assert_eq!(
        campaigns::queue(&service, &olu, id).await.unwrap(),
        1,
        "Ben alone"
    );
    assert_eq!(
        app.db
            .count(
                "SELECT count(*) FROM deliveries d JOIN contacts c ON c.id = d.contact_id \
                    WHERE c.email = 'ben@example.org'"
            )
            .await,
        1
    );

    // An admin's campaign for everyone is approved only by someone who sees everyone it
    // would reach.
    let wide = campaigns::create(&service, &admin, draft()).await.unwrap();
    assert!(
        campaigns::list(&service, &olu)
            .await
            .unwrap()
            .iter()
            .all(|c| c.id != wide)
    );
    let narrow = staff(
        "nadia@hq.example.org",
        Organiser,
        &[STEVENAGE, "E14900001", "E14900004"],
    );
    let refused = campaigns::approve(&service, &narrow, wide, 1).await;
    assert!(
        matches!(refused, Err(AppError::NotFound(_))),
        "it is not hers to see"
    );
    add_staff(&app.db, "second@hq.example.org", "admin", &[]).await;
    let second_admin = staff("second@hq.example.org", Admin, &[]);
    campaigns::approve(&service, &second_admin, wide, 1)
        .await
        .unwrap();
    assert_eq!(campaigns::queue(&service, &admin, wide).await.unwrap(), 4);

    // The operator at the command line needs no approval; nor does staff when it is off.
    let by_olu = campaigns::create(&service, &olu, draft()).await.unwrap();
    assert_eq!(
        campaigns::queue(&service, &Actor::Operator, by_olu)
            .await
            .unwrap(),
        1
    );
    let trusting = app.db.app().with_approval(false);
    let direct = campaigns::create(&trusting, &olu, draft()).await.unwrap();
    assert_eq!(
        campaigns::queue(&trusting, &olu, direct).await.unwrap(),
        1,
        "still only Ben"
    );
}

/// `{{constituency.name}}` unguarded is refused only for an audience that can hold someone
/// in no constituency (everyone, or a postcode area), and the refusal speaks of the Markdown
/// the author wrote, not of an HTML template.
async fn a_constituency_s_name_needs_a_guard_only_where_the_audience_can_hold_someone_in_none(
    db: TestStore,
) {
    let app = console(db).await;
    let admin = Browser::signed_in(&app, "admin@hq.example.org").await;
    let olu = Browser::signed_in(&app, "olu@hq.example.org").await;
    let cases: [(&Browser, &str, &str, bool); 5] = [
        (&admin, "", "", false),
        (&admin, STEVENAGE, "", true),
        (&admin, STEVENAGE, "SG13", false),
        (&admin, "", "SG13", false),
        // An organiser's campaigns reach only their constituencies.
        (&olu, "", "", true),
    ];
    for (who, constituency, postcodes, taken) in cases {
        let mut fields = vec![
            ("name", "Canvassing"),
            ("topic", "news"),
            ("subject", "Canvassing"),
            ("format", "markdown"),
            ("body", "Canvassing in {{constituency.name}} on Saturday."),
            ("postcodes", postcodes),
        ];
        if !constituency.is_empty() {
            fields.push(("constituency", constituency));
        }
        let created = who
            .submit("/admin/campaigns/new", "/admin/campaigns", &fields)
            .await;
        let said = created.main_text();
        match taken {
            true => assert_eq!(
                created.status,
                StatusCode::SEE_OTHER,
                "{constituency} {postcodes}: {said}"
            ),
            false => {
                assert_eq!(
                    created.status,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "{constituency} {postcodes}"
                );
                assert!(
                    said.contains("Message: {{constituency.name}} would be blank"),
                    "{said}"
                );
                assert!(
                    !said.contains("HTML template"),
                    "the author wrote Markdown: {said}"
                );
            }
        }
    }
}

async fn a_campaign_is_written_approved_and_sent_through_the_console_pages(db: TestStore) {
    let app = console(db).await;
    let olu = Browser::signed_in(&app, "olu@hq.example.org").await;
    let form = olu.get("/admin/campaigns/new").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("Stevenage (sample)"));
    assert!(
        !form.body.contains("Hertford and Stortford"),
        "only Olu's constituencies"
    );
    assert!(
        form.main_text().contains("{{contact.name}}"),
        "{}",
        form.main_text()
    );

    // A mistake is named, and the form keeps what was written.
    let refused = olu
        .submit(
            "/admin/campaigns/new",
            "/admin/campaigns",
            &[
                ("name", "Autumn"),
                ("topic", "news"),
                ("subject", "News"),
                ("format", "markdown"),
                ("body", "Hello {{contact.nmae}"),
                ("postcodes", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.main_text().contains("Message:"),
        "{}",
        refused.main_text()
    );
    assert!(refused.body.contains("Hello {{contact.nmae}"));
    assert_eq!(app.db.count("SELECT count(*) FROM campaigns").await, 0);

    // The composer's live part counts and renders what is written, storing nothing.
    let tried = olu
        .submit(
            "/admin/campaigns/new",
            "/admin/campaigns/try",
            &[
                ("name", "Autumn"),
                ("topic", "news"),
                ("subject", "Autumn news"),
                ("format", "markdown"),
                ("body", "Dear {{contact.name}}, **doors** on Saturday."),
                ("constituency", "E14900001"),
            ],
        )
        .await;
    assert!(
        tried
            .body
            .contains("E14900001 is not one of your constituencies"),
        "Hertford is not Olu's: {}",
        tried.body
    );
    let tried = olu
        .submit(
            "/admin/campaigns/new",
            "/admin/campaigns/try",
            &[
                ("name", "Autumn"),
                ("topic", "news"),
                ("subject", "Autumn news"),
                ("format", "markdown"),
                ("body", "Dear {{contact.name}}, **doors** on Saturday."),
            ],
        )
        .await;
    assert!(
        tried.body.contains("<strong>1</strong> people"),
        "{}",
        tried.body
    );
    assert!(
        tried.body.contains("Everyone in Stevenage (sample)"),
        "{}",
        tried.body
    );
    // Constituencies and postcodes: everyone in either, or, chosen, only the one within the
    // other, said in words either way.
    for (combine, said) in [
        (
            "either",
            "Everyone in Stevenage (sample), and everyone in AL1 wherever they are",
        ),
        ("within", "Only people in AL1 within Stevenage (sample)"),
    ] {
        let tried = olu
            .submit(
                "/admin/campaigns/new",
                "/admin/campaigns/try",
                &[
                    ("name", "Autumn"),
                    ("topic", "news"),
                    ("subject", "Autumn news"),
                    ("format", "markdown"),
                    ("body", "Dear {{contact.name}}"),
                    ("constituency", STEVENAGE),
                    ("postcodes", "AL1"),
                    ("combine", combine),
                ],
            )
            .await;
        assert!(tried.body.contains(said), "{}", tried.body);
    }
    let marker = "/admin/campaigns/trial/";
    let at = tried.body.find(marker).unwrap();
    let frame = tried.body[at..at + tried.body[at..].find('"').unwrap()].to_owned();
    let rendered = olu.get(&frame).await;
    assert!(rendered.body.contains("<strong>doors</strong>"));
    let policy = rendered.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(policy.contains("sandbox"), "{policy}");
    assert!(
        policy.contains("img-src data:;"),
        "the preview loads nothing from elsewhere: {policy}"
    );
    let admin = Browser::signed_in(&app, "admin@hq.example.org").await;
    assert_eq!(
        admin.get(&frame).await.status,
        StatusCode::NOT_FOUND,
        "Olu's alone"
    );
    assert_eq!(app.db.count("SELECT count(*) FROM campaigns").await, 0);

    let created = olu
        .submit(
            "/admin/campaigns/new",
            "/admin/campaigns",
            &[
                ("name", "Autumn"),
                ("topic", "news"),
                ("subject", "Autumn news"),
                ("format", "markdown"),
                ("body", "Dear {{contact.name}},\n\n**Doors** on Saturday."),
                ("postcodes", ""),
            ],
        )
        .await;
    assert_eq!(
        created.status,
        StatusCode::SEE_OTHER,
        "{}",
        created.main_text()
    );
    let page_path = created.location().unwrap().to_owned();
    let page = olu.get(&page_path).await;
    let text = page.main_text();
    assert!(text.contains("1 people"), "Ben alone: {text}");
    assert!(text.contains("is not approved yet"), "{text}");
    assert!(!page.body.contains("Send now") && !page.body.contains("Approve version"));
    let message = olu.get(&format!("{page_path}/message")).await;
    assert!(
        message.body.contains("Dear Ben Okafor") && message.body.contains("<strong>Doors</strong>")
    );
    assert!(
        message.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox"),
        "the message is framed with nothing running"
    );

    // Sending before approval is refused on the page too, asked or pressed.
    let early = olu.get(&format!("{page_path}/queue")).await;
    assert_eq!(early.status, StatusCode::SEE_OTHER);
    let early = olu
        .press(
            &page_path,
            &format!("{page_path}/queue"),
            &[("confirmed", "yes")],
        )
        .await;
    assert!(
        early.main_text().contains("approval"),
        "{}",
        early.main_text()
    );
    assert_eq!(app.db.count("SELECT count(*) FROM deliveries").await, 0);
    assert!(
        olu.get("/admin/campaigns")
            .await
            .main_text()
            .contains("Autumn news draft")
    );
    let asked = olu
        .press(&page_path, &format!("{page_path}/submit"), &[])
        .await;
    assert_eq!(asked.location(), None);
    let said = asked.main_text();
    assert!(said.contains("Waiting for approval."), "{said}");
    assert!(
        said.contains("Person at admin@hq.example.org is being told by email."),
        "the admin may approve it; nobody kept elsewhere is asked: {said}"
    );
    let again = olu
        .press(&page_path, &format!("{page_path}/submit"), &[])
        .await;
    assert!(
        again.main_text().contains("has waited for approval since"),
        "asked once: {}",
        again.main_text()
    );
    assert!(said.contains("waiting for approval"), "{said}");
    let reloaded = olu.get(&page_path).await;
    assert!(
        !reloaded.main_text().contains("Waiting for approval."),
        "the message is shown once"
    );

    // The admin is told by email, finds it waiting on their dashboard, and sees the same page
    // with an approval button for this version. Olu's dashboard shows it waiting for others.
    let approvals = || -> Vec<String> {
        app.outbox()
            .into_iter()
            .filter(|(name, _)| name.starts_with("approval-"))
            .map(|(_, message)| message)
            .collect()
    };
    for _ in 0..100 {
        if !approvals().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let told = approvals();
    assert_eq!(told.len(), 1, "one person may approve it");
    assert!(told[0].contains("To: admin@hq.example.org"), "{}", told[0]);
    assert!(told[0].contains(&page_path), "{}", told[0]);
    let admin = Browser::signed_in(&app, "admin@hq.example.org").await;
    let dashboard = admin.get("/admin").await.main_text();
    assert!(
        dashboard.contains("Waiting for your approval Autumn , by olu@hq.example.org"),
        "{dashboard}"
    );
    let own = olu.get("/admin").await.main_text();
    assert!(
        own.contains("Yours, waiting for someone's approval Autumn"),
        "{own}"
    );
    assert!(!own.contains("Waiting for your approval"), "{own}");
    let listed = admin.get("/admin/campaigns").await;
    assert!(
        listed.main_text().contains("waiting for approval"),
        "{}",
        listed.main_text()
    );
    let approval_page = admin.get(&page_path).await;
    assert!(approval_page.body.contains("Approve version 1"));
    let approved = admin
        .press(
            &page_path,
            &format!("{page_path}/approve"),
            &[("version", "1")],
        )
        .await;
    assert!(
        approved.main_text().contains("Approved"),
        "{}",
        approved.main_text()
    );
    assert!(
        admin
            .get("/admin/campaigns")
            .await
            .main_text()
            .contains("Autumn news approved")
    );

    // Send now asks first, on a page of its own that says to how many.
    let page = olu.get(&page_path).await;
    assert!(page.body.contains(&format!("href=\"{page_path}/queue\"")));
    let asked = olu.get(&format!("{page_path}/queue")).await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(
        asked
            .main_text()
            .contains("Send \u{201c}Autumn\u{201d} now to 1 person?"),
        "{}",
        asked.main_text()
    );
    let unconfirmed = olu
        .submit(&page_path, &format!("{page_path}/queue"), &[])
        .await;
    assert_eq!(
        unconfirmed.location(),
        Some(format!("{page_path}/queue").as_str())
    );
    assert_eq!(app.db.count("SELECT count(*) FROM deliveries").await, 0);
    let sent = olu
        .press(
            &format!("{page_path}/queue"),
            &format!("{page_path}/queue"),
            &[("confirmed", "yes")],
        )
        .await;
    assert!(
        sent.main_text().contains("Queued for 1 person"),
        "{}",
        sent.main_text()
    );
    let report = olu.get(&page_path).await;
    assert!(report.main_text().contains("Report"));
    assert!(report.main_text().contains("Stevenage (sample)"));
    assert!(
        !report.body.contains("/copy-unsent"),
        "nothing sent yet: no copy for the rest"
    );
    // Ben's message went; a copy for those not sent it reaches no one, and says why.
    app.db.execute("UPDATE deliveries SET state = 'sent'").await;
    let report = olu.get(&page_path).await;
    assert!(report.body.contains("Copy for those not sent it"));
    let rest = olu
        .press(&page_path, &format!("{page_path}/copy-unsent"), &[])
        .await;
    let text = rest.main_text();
    assert!(
        text.contains("not those who were sent “Autumn”") && text.contains("0 people"),
        "{text}"
    );
}

/// Olu, kept to Stevenage, adds people with Stevenage postcodes at three addresses: one held in
/// Hertford (Amira's), one whose holder asked to be erased, one held by no one but unsubscribed.
/// Each is refused with the same words, by hand and in a list: whether someone is on another
/// constituency's list or asked to be erased is not Olu's to learn. An admin hears why.
async fn an_organiser_is_refused_alike_whoever_holds_an_address_or_whatever_suppressed_it(
    db: TestStore,
) {
    use canvass::app::contacts;
    let app = console(db).await;
    let service = app.db.app();
    let operator = Actor::Operator;
    app.db
        .import_people("email,name,postcode,topics\nerin@example.org,Erin,SG1 1HN,news\n")
        .await;
    contacts::erase(&service, &operator, "erin@example.org")
        .await
        .unwrap();
    contacts::withdraw(&service, &operator, "uma@example.org", &[], "phone", None)
        .await
        .unwrap();
    let olu = staff(
        "olu@hq.example.org",
        canvass::domain::Role::Organiser,
        &[STEVENAGE],
    );
    let barred = ["amira@example.org", "erin@example.org", "uma@example.org"];
    let before = app.db.dump().await;
    let mut refusals = Vec::new();
    for email in barred {
        let draft = canvass::domain::ContactDraft {
            email,
            name: "Someone",
            postcode: "SG1 2AA",
            date_of_birth: "",
            guardian_consent: None,
            topics: vec!["news"],
            consent_at: "",
            source: "street stall",
            ..Default::default()
        };
        let refused = contacts::save(&service, &olu, &draft).await.unwrap_err();
        refusals.push(format!("{refused:?}"));
    }
    assert!(
        refusals.iter().all(|r| *r == refusals[0]),
        "one refusal for all three: {refusals:?}"
    );
    assert!(refusals[0].contains("this address can't be added by you; ask an admin"));

    let csv = "email,name,postcode,topics\n\
               amira@example.org,A,SG1 2AA,news\n\
               erin@example.org,E,SG1 2AA,news\n\
               uma@example.org,U,SG1 2AA,news\n";
    // The reasons each row of the list is refused, imported by `actor`.
    let refusals_to = |actor: Actor| {
        let file = app.db.file("stall.csv", csv);
        let service = &service;
        async move {
            let mut report = support::Recorded::default();
            let file = canvass::import::CsvFile::open(&file).unwrap();
            canvass::app::imports::contacts(service, &actor, file, "stall", None, &mut report)
                .await
                .unwrap();
            report
                .rejections
                .into_iter()
                .map(|r| r.reason)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        refusals_to(olu).await,
        ["this address can't be added by you; ask an admin"; 3]
    );
    assert_eq!(
        without(&app.db.dump().await, "audit_log:"),
        without(&before, "audit_log:"),
        "nothing changed but the import's audit entry"
    );

    // An admin is told why.
    let admin = staff("admin@hq.example.org", canvass::domain::Role::Admin, &[]);
    assert_eq!(
        refusals_to(admin).await,
        ["the person asked to be erased; not imported"]
    );
}

/// An event mailing in the composer: its day and time in UK time, its venue's postcode, and
/// whom to invite by distance, counted live with those left out for want of a place; saved,
/// shown in words, and offered again as it was; a bare `{{distance_miles}}` refused where
/// someone with no place could be reached.
async fn an_event_near_its_venue_is_composed_counted_and_kept_in_the_console(db: TestStore) {
    let app = console(db).await;
    let admin = Browser::signed_in(&app, "admin@hq.example.org").await;
    let form = admin.get("/admin/campaigns/new").await;
    for offered in [
        "Only people within 1 mile of the venue",
        "Only people within 25 miles",
    ] {
        assert!(form.body.contains(offered), "{offered}");
    }
    let day = (chrono::Utc::now() + chrono::Duration::days(10))
        .with_timezone(&chrono_tz::Europe::London)
        .format("%Y-%m-%d")
        .to_string();
    let fields = |body: &'static str, miles: &'static str| {
        vec![
            ("name", "Stall"),
            ("topic", "news"),
            ("subject", "Come to the stall"),
            ("format", "markdown"),
            ("body", body),
            ("postcodes", ""),
            ("event_title", "Street stall"),
            (
                "event_date",
                Box::leak(day.clone().into_boxed_str()) as &str,
            ),
            ("event_time", "11:00"),
            ("event_venue", "The market"),
            ("event_postcode", "sg13 8eq"),
            ("within_miles", miles),
        ]
    };
    const GUARDED: &str = "{{#if distance_miles}}{{distance_miles}} miles away{{/if}}";
    // Amira lives at the venue; Ben (Stevenage, 10 miles) and Cara (St Albans, 12) further;
    // Dev has no postcode.
    for (miles, reached, unplaced) in [("5", 1, Some(1)), ("25", 3, Some(1)), ("", 4, None)] {
        let tried = admin
            .submit(
                "/admin/campaigns/new",
                "/admin/campaigns/try",
                &fields(GUARDED, miles),
            )
            .await;
        assert!(
            tried
                .body
                .contains(&format!("<strong>{reached}</strong> people")),
            "within {miles:?}: {}",
            tried.body
        );
        if miles == "5" {
            assert!(
                tried.body.contains("Everyone within 5 miles of SG13 8EQ"),
                "{}",
                tried.body
            );
        }
        let left_out = tried
            .body
            .contains("1 more would be reached but for the distance");
        assert_eq!(left_out, unplaced.is_some(), "{}", tried.body);
    }
    // Bare, the distance would be blank for Dev, whom no distance rule leaves out.
    let refused = admin
        .submit(
            "/admin/campaigns/new",
            "/admin/campaigns",
            &fields("You are {{distance_miles}} miles away", ""),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .main_text()
            .contains("{{distance_miles}} would be blank"),
        "{}",
        refused.main_text()
    );
    assert_eq!(app.db.count("SELECT count(*) FROM campaigns").await, 0);
    let created = admin
        .submit(
            "/admin/campaigns/new",
            "/admin/campaigns",
            &fields("You are {{distance_miles}} miles away", "5"),
        )
        .await;
    assert_eq!(
        created.status,
        StatusCode::SEE_OTHER,
        "{}",
        created.main_text()
    );
    let page_path = created.location().unwrap().to_owned();
    let page = admin.get(&page_path).await;
    assert!(
        page.main_text().contains("within 5 miles of SG13 8EQ"),
        "{}",
        page.main_text()
    );
    let message = admin.get(&format!("{page_path}/message")).await;
    assert!(
        message.body.contains("You are 0 miles away"),
        "{}",
        message.body
    );
    let edit = admin.get(&format!("{page_path}/edit")).await;
    for kept in [
        "value=\"Street stall\"",
        &format!("value=\"{day}\""),
        "value=\"11:00\"",
        "value=\"SG13 8EQ\"",
        "<option value=\"5\" selected>",
    ] {
        assert!(edit.body.contains(kept), "{kept}: {}", edit.body);
    }
}

async fn an_organiser_imports_a_spreadsheet_and_rows_outside_their_constituencies_are_refused(
    db: TestStore,
) {
    let app = console(db).await;
    let olu = Browser::signed_in(&app, "olu@hq.example.org").await;
    let form_page = olu.get("/admin/import").await;
    assert_eq!(form_page.status, StatusCode::OK);
    let token = form_page.form_token();
    // As Excel saves it: semicolons, CRLF, a date without a time.
    let csv = "email;name;postcode;topics;date_of_birth\r\n\
               gita@example.org;Gita Rao;SG1 1HN;news;1990-05-01\r\n\
               hal@example.org;Hal Jones;SG13 7DG;news;1990-05-01\r\n\
               amira@example.org;Amira H;SG2 8TE;news;1990-05-01\r\n\
               ivy@example.org;Ivy;;news;1990-05-01\r\n\
               not-an-address;X;SG1 1HN;news;1990-05-01\r\n\
               ben@example.org;Ben Okafor;SG1 2AA;news;1990-05-01\r\n";
    let upload = |token: String, origin: &str| {
        let form = reqwest::multipart::Form::new()
            .text("form_token", token)
            .text("source", "Street stall")
            .text("consented", "2026-11-30")
            .part(
                "file",
                reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("stall.csv"),
            );
        app.client
            .post(format!("{}/admin/import", app.base))
            .header("cookie", olu.cookie.clone().unwrap())
            .header("origin", origin)
            .multipart(form)
            .send()
    };
    // Ben withdrew from the news today; the stall list, made before, does not bring him back.
    canvass::app::contacts::withdraw(
        &app.db.app(),
        &Actor::Operator,
        "ben@example.org",
        &["news".to_owned()],
        "phone",
        None,
    )
    .await
    .unwrap();
    let before = app.db.dump().await;
    let forged = upload(token.clone(), "https://evil.example").await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let tokenless = upload("guess".into(), &app.base).await.unwrap();
    assert_eq!(tokenless.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.db.dump().await,
        before,
        "a refused upload changes nothing"
    );

    let started = upload(token, &app.base).await.unwrap();
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let job = started.headers()["location"].to_str().unwrap().to_owned();
    let mut page = olu.get(&job).await;
    for _ in 0..100 {
        if page.main_text().contains("Done:") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        page = olu.get(&job).await;
    }
    let text = page.main_text();
    assert!(
        text.contains("Done: imported 1, updated 1, rejected 4"),
        "{text}"
    );
    assert!(
        text.contains("its postcode is not in your constituencies"),
        "{text}"
    );
    assert!(
        text.contains("this address can't be added by you; ask an admin"),
        "{text}"
    );
    assert!(
        page.body.contains("max=\"100\" value=\"100\""),
        "the bar is full"
    );
    let download = olu.get(&format!("{job}/rejected.csv")).await;
    assert_eq!(download.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(download.body.lines().count(), 5, "{}", download.body);
    assert!(
        download.body.starts_with("line,reason\n3,"),
        "{}",
        download.body
    );

    let ben = app.export("ben@example.org").await;
    assert!(
        ben.consents.iter().any(|c| c.topic == "news" && !c.granted),
        "a list made before a withdrawal does not undo it"
    );
    // Only Gita was added; Amira, held in Hertford, is untouched.
    assert_eq!(
        app.export("gita@example.org").await.name.as_deref(),
        Some("Gita Rao")
    );
    assert_eq!(
        app.export("amira@example.org").await.postcode.as_deref(),
        Some("SG13 8EQ")
    );
    assert_eq!(
        app.db.count("SELECT count(*) FROM contacts WHERE email IN ('hal@example.org', 'ivy@example.org')").await,
        0
    );
    assert_eq!(
        app.db
            .count(
                "SELECT count(*) FROM audit_log WHERE actor = 'staff:olu@hq.example.org' \
                    AND action = 'contacts.imported'"
            )
            .await,
        1
    );
    // Nobody else sees the job.
    let admin = Browser::signed_in(&app, "admin@hq.example.org").await;
    assert_eq!(admin.get(&job).await.status, StatusCode::NOT_FOUND);
}

async fn an_organiser_edits_withdraws_restricts_exports_and_erases_only_contacts_in_scope(
    db: TestStore,
) {
    let app = console(db).await;
    let olu = Browser::signed_in(&app, "olu@hq.example.org").await;
    let ben = format!("/admin/contacts/{}", app.public_id("ben@example.org").await);
    let amira = format!(
        "/admin/contacts/{}",
        app.public_id("amira@example.org").await
    );

    // Nothing happens to someone outside the scope, whatever the button.
    let before = app.db.dump().await;
    for action in ["save", "withdraw", "restrict", "erase"] {
        let answer = olu
            .submit(
                "/admin",
                &format!("{amira}/{action}"),
                &[("name", "X"), ("source", "phone"), ("confirm", "yes")],
            )
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{action}");
    }
    assert_eq!(
        olu.get(&format!("{amira}/export.json")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.db.dump().await,
        before,
        "nothing outside the scope changed"
    );

    let saved = olu
        .press(
            &ben,
            &format!("{ben}/save"),
            &[
                ("name", "Ben O."),
                ("postcode", "sg2 7ab"),
                ("topic", "news"),
                ("topic", "volunteering"),
                ("source", "Phone call"),
            ],
        )
        .await;
    assert!(
        saved.main_text().contains("Saved."),
        "{}",
        saved.main_text()
    );
    assert!(
        saved.main_text().contains("Volunteering: given"),
        "topics by name: {}",
        saved.main_text()
    );
    let held = app.export("ben@example.org").await;
    assert_eq!(
        (held.name.as_deref(), held.postcode.as_deref()),
        (Some("Ben O."), Some("SG2 7AB"))
    );
    assert!(
        held.consents
            .iter()
            .any(|c| c.topic == "volunteering" && c.granted)
    );
    // A move out of the constituency is refused.
    let away = olu
        .press(
            &ben,
            &format!("{ben}/save"),
            &[("name", "Ben O."), ("postcode", "AL1 3JE")],
        )
        .await;
    assert_eq!(
        app.export("ben@example.org").await.postcode.as_deref(),
        Some("SG2 7AB")
    );
    assert!(
        away.main_text()
            .contains("give a postcode in one of your constituencies"),
        "{}",
        away.main_text()
    );

    let withdrawn = olu
        .press(
            &ben,
            &format!("{ben}/withdraw"),
            &[("topic", "events"), ("source", "Letter")],
        )
        .await;
    assert!(
        withdrawn
            .main_text()
            .contains("Withdrawal recorded for 1 topic"),
        "{}",
        withdrawn.main_text()
    );
    let restricted = olu.press(&ben, &format!("{ben}/restrict"), &[]).await;
    assert!(restricted.main_text().contains("Restricted"));
    assert!(app.export("ben@example.org").await.restricted);
    olu.press(&ben, &format!("{ben}/unrestrict"), &[]).await;
    assert!(!app.export("ben@example.org").await.restricted);

    let download = olu.get(&format!("{ben}/export.json")).await;
    assert!(
        download.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let json: serde_json::Value = serde_json::from_str(&download.body).unwrap();
    assert_eq!(json["email"], "ben@example.org");

    let unconfirmed = olu.press(&ben, &format!("{ben}/erase"), &[]).await;
    assert!(unconfirmed.main_text().contains("tick the box"));
    assert!(app.db.dump().await.contains("ben@example.org"));
    let erased = olu
        .press(&ben, &format!("{ben}/erase"), &[("confirm", "yes")])
        .await;
    assert!(
        erased.main_text().contains("Erased"),
        "{}",
        erased.main_text()
    );
    assert!(
        !app.db.dump().await.contains("ben@example.org"),
        "erased means gone"
    );
    assert_eq!(olu.get(&ben).await.status, StatusCode::NOT_FOUND);
}

async fn admins_manage_the_staff_and_read_the_audit_log_and_no_one_else_does(db: TestStore) {
    let app = console(db).await;
    let admin = Browser::signed_in(&app, "admin@hq.example.org").await;
    let olu = Browser::signed_in(&app, "olu@hq.example.org").await;
    for path in ["/admin/staff", "/admin/audit"] {
        assert_eq!(olu.get(path).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    let forbidden = olu
        .submit(
            "/admin",
            "/admin/staff/add",
            &[
                ("email", "x@hq.example.org"),
                ("name", "X"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);

    let staff = admin.get("/admin/staff").await;
    for email in [
        "admin@hq.example.org",
        "olu@hq.example.org",
        "vic@hq.example.org",
    ] {
        assert!(staff.body.contains(email));
    }
    // The password link is shown on the page that answers the form, once: never carried in
    // a cookie or a URL, never kept by a cache.
    let added = admin
        .submit(
            "/admin/staff",
            "/admin/staff/add",
            &[
                ("email", "Nadia@HQ.example.org"),
                ("name", "Nadia Rahman"),
                ("role", "organiser"),
                ("constituency", "E14900001"),
            ],
        )
        .await;
    let text = added.main_text();
    assert_eq!(added.status, StatusCode::OK);
    assert!(
        text.contains("Give this link to nadia@hq.example.org"),
        "{text}"
    );
    assert!(added.body.contains("/admin/password/canvass_"));
    assert_eq!(added.headers["cache-control"], "no-store");
    assert!(
        added.headers.get("set-cookie").is_none(),
        "no secret in a cookie"
    );
    let again = admin
        .submit(
            "/admin/staff",
            "/admin/staff/add",
            &[
                ("email", "nadia@hq.example.org"),
                ("name", "N"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    let myself = admin
        .press(
            "/admin/staff",
            "/admin/staff/disable",
            &[("email", "admin@hq.example.org")],
        )
        .await;
    assert!(myself.main_text().contains("you cannot disable yourself"));
    let disabled = admin
        .press(
            "/admin/staff",
            "/admin/staff/disable",
            &[("email", "olu@hq.example.org")],
        )
        .await;
    assert!(
        disabled
            .main_text()
            .contains("olu@hq.example.org is disabled")
    );
    assert_eq!(olu.get("/admin").await.location(), Some("/admin/login"));
    let enabled = admin
        .submit(
            "/admin/staff",
            "/admin/staff/enable",
            &[("email", "olu@hq.example.org")],
        )
        .await;
    assert!(
        enabled.main_text().contains("may sign in again"),
        "{}",
        enabled.main_text()
    );
    assert!(enabled.body.contains("/admin/password/canvass_"));

    // Olu's role and constituencies are changed; the last admin stays one.
    let form = admin
        .get("/admin/staff/person?email=olu%40hq.example.org")
        .await;
    assert!(
        form.body.contains("value=\"organiser\" selected"),
        "{}",
        form.body
    );
    let changed = admin
        .press(
            "/admin/staff",
            "/admin/staff/edit",
            &[
                ("email", "olu@hq.example.org"),
                ("role", "viewer"),
                ("constituency", "E14900001"),
                ("constituency", "E14900002"),
            ],
        )
        .await;
    let text = changed.main_text();
    assert!(
        text.contains("Changed what olu@hq.example.org may do"),
        "{text}"
    );
    assert!(
        text.contains("viewer Hertford and Stortford (sample) and Stevenage (sample)"),
        "{text}"
    );
    // None ticked is not "all": that must be chosen.
    let unticked = admin
        .press(
            "/admin/staff",
            "/admin/staff/edit",
            &[("email", "vic@hq.example.org"), ("role", "viewer")],
        )
        .await;
    assert!(
        unticked
            .main_text()
            .contains("or choose all constituencies"),
        "{}",
        unticked.main_text()
    );
    let demoted = admin
        .press(
            "/admin/staff",
            "/admin/staff/edit",
            &[
                ("email", "admin@hq.example.org"),
                ("role", "organiser"),
                ("reach", "all"),
            ],
        )
        .await;
    assert!(
        demoted.main_text().contains("that is the last admin"),
        "{}",
        demoted.main_text()
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM staff_users WHERE role = 'admin'")
            .await,
        1
    );

    let audit = admin
        .get("/admin/audit?actor=admin%40hq&action=staff_user")
        .await;
    let text = audit.main_text();
    assert!(
        text.contains("staff_user.created")
            && text.contains("staff_user.disabled")
            && text.contains("olu@hq.example.org: role organiser to viewer"),
        "{text}"
    );
    assert!(
        !text.contains("staff:olu@hq.example.org staff_user"),
        "filtered by who"
    );
}

async fn topics_are_added_and_an_address_checked_against_the_suppression_list(db: TestStore) {
    let app = console(db).await;
    let olu = Browser::signed_in(&app, "olu@hq.example.org").await;
    let added = olu
        .press(
            "/admin/topics",
            "/admin/topics",
            &[("slug", "door-knocking"), ("name", "Door knocking")],
        )
        .await;
    assert!(
        added
            .main_text()
            .contains("Added the topic 'Door knocking'"),
        "{}",
        added.main_text()
    );
    let twice = olu
        .submit(
            "/admin/topics",
            "/admin/topics",
            &[("slug", "door-knocking"), ("name", "Again")],
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    let bad = olu
        .submit(
            "/admin/topics",
            "/admin/topics",
            &[("slug", "Door Knocking!"), ("name", "X")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("value=\"Door Knocking!\""),
        "what was typed is kept"
    );

    canvass::app::contacts::withdraw(
        &app.db.app(),
        &Actor::Operator,
        "cara@example.org",
        &[],
        "phone",
        None,
    )
    .await
    .unwrap();
    let admin = Browser::signed_in(&app, "admin@hq.example.org").await;
    let found = admin
        .get("/admin/suppressions?email=Cara%40example.org")
        .await;
    assert!(
        found
            .main_text()
            .contains("is suppressed (unsubscribed) since"),
        "{}",
        found.main_text()
    );
    let clear = admin
        .get("/admin/suppressions?email=ben%40example.org")
        .await;
    assert!(clear.main_text().contains("is not suppressed"));
    let nonsense = olu.get("/admin/suppressions?email=nonsense").await;
    assert_eq!(nonsense.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Olu learns nothing of Cara (St Albans), nor of an address no one holds.
    for email in ["cara%40example.org", "nobody%40example.org"] {
        let hidden = olu.get(&format!("/admin/suppressions?email={email}")).await;
        assert_eq!(hidden.status, StatusCode::NOT_FOUND);
        assert!(
            hidden
                .main_text()
                .contains("no contact in your constituencies")
        );
    }
    let own = olu.get("/admin/suppressions?email=ben%40example.org").await;
    assert!(own.main_text().contains("is not suppressed"));
}

/// The code an authenticator app would show now for a base32 secret.
fn code_for(secret: &str) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .unwrap();
    let totp = totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        0,
        30,
        bytes,
        None,
        String::new(),
    );
    totp.generate_current().unwrap()
}

async fn a_second_factor_is_turned_on_with_a_code_and_asked_for_at_each_sign_in(db: TestStore) {
    let app = console(db).await;
    let olu = Browser::signed_in(&app, "olu@hq.example.org").await;
    let started = olu.get("/admin/account/two-factor").await;
    assert!(
        started.body.contains("data:image/svg+xml;base64,"),
        "a QR code to scan"
    );
    let marker = "name=\"secret\" value=\"";
    let at = started.body.find(marker).unwrap() + marker.len();
    let secret = started.body[at..at + started.body[at..].find('"').unwrap()].to_owned();

    let wrong = olu
        .submit(
            "/admin/account",
            "/admin/account/two-factor/confirm",
            &[
                ("secret", &secret),
                ("code", "000000"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM staff_users WHERE totp_secret IS NOT NULL")
            .await,
        0
    );
    let code = code_for(&secret);
    let no_password = olu
        .submit(
            "/admin/account",
            "/admin/account/two-factor/confirm",
            &[
                ("secret", &secret),
                ("code", &code),
                ("password", "a guess at it"),
            ],
        )
        .await;
    assert_eq!(
        no_password.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "it takes the password"
    );
    let on = olu
        .press(
            "/admin/account",
            "/admin/account/two-factor/confirm",
            &[("secret", &secret), ("code", &code), ("password", PASSWORD)],
        )
        .await;
    assert!(
        on.main_text().contains("Two-factor sign-in is on"),
        "{}",
        on.main_text()
    );

    // Someone at the open session cannot put their own phone in its place.
    let intruder = canvass::app::staff::start_totp("olu@hq.example.org").unwrap();
    let replaced = olu
        .submit(
            "/admin/account",
            "/admin/account/two-factor/confirm",
            &[
                ("secret", &intruder.secret),
                ("code", &code_for(&intruder.secret)),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(replaced.status, StatusCode::FORBIDDEN);
    assert!(replaced.main_text().contains("turn it off first"));

    // Now a sign-in needs the code, and a code is taken once.
    let mut browser = Browser::new(&app);
    let without = browser.sign_in("olu@hq.example.org", PASSWORD).await;
    assert_eq!(without.status, StatusCode::UNAUTHORIZED);
    assert!(without.main_text().contains("enter the 6-digit code"));
    let replayed = browser
        .post_form(
            "/admin/login",
            &[
                ("email", "olu@hq.example.org"),
                ("password", PASSWORD),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(
        replayed.status,
        StatusCode::UNAUTHORIZED,
        "the code that turned it on is spent"
    );
    // The next step's code (an app a little ahead), within the one step either side.
    let next = {
        let bytes = totp_rs::Secret::Encoded(secret.clone()).to_bytes().unwrap();
        let totp = totp_rs::TOTP::new_unchecked(
            totp_rs::Algorithm::SHA1,
            6,
            0,
            30,
            bytes,
            None,
            String::new(),
        );
        totp.generate(chrono::Utc::now().timestamp() as u64 + 30)
    };
    let signed = browser
        .post_form(
            "/admin/login",
            &[
                ("email", "olu@hq.example.org"),
                ("password", PASSWORD),
                ("code", &next),
            ],
        )
        .await;
    assert_eq!(
        signed.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed.main_text()
    );

    // A new password link (the phone was lost) turns it off.
    canvass::app::staff::renew_password_link(&app.db.app(), &Actor::Operator, "olu@hq.example.org")
        .await
        .unwrap();
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM staff_users WHERE totp_secret IS NOT NULL")
            .await,
        0
    );
}

/// Every route of the console, as the walk below tries it; a test checks the list against
/// the router's source, so that a route added there is walked too.
const CONSOLE_ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin"),
    ("GET", "/admin/"),
    ("GET", "/admin/events"),
    ("GET", "/admin/stats"),
    ("GET", "/admin/contacts"),
    ("GET", "/admin/contacts/{id}"),
    ("GET", "/admin/contacts/{id}/export.json"),
    ("POST", "/admin/contacts/{id}/{action}"),
    ("GET", "/admin/campaigns"),
    ("POST", "/admin/campaigns"),
    ("GET", "/admin/campaigns/new"),
    ("POST", "/admin/campaigns/try"),
    ("GET", "/admin/campaigns/trial/{key}"),
    ("GET", "/admin/campaigns/{id}"),
    ("POST", "/admin/campaigns/{id}"),
    ("GET", "/admin/campaigns/{id}/edit"),
    ("GET", "/admin/campaigns/{id}/message"),
    ("GET", "/admin/campaigns/{id}/{action}"),
    ("POST", "/admin/campaigns/{id}/{action}"),
    ("GET", "/admin/import"),
    ("POST", "/admin/import"),
    ("GET", "/admin/import/{id}"),
    ("GET", "/admin/import/{id}/rejected.csv"),
    ("GET", "/admin/topics"),
    ("POST", "/admin/topics"),
    ("GET", "/admin/suppressions"),
    ("GET", "/admin/audit"),
    ("GET", "/admin/requests"),
    ("POST", "/admin/requests"),
    ("GET", "/admin/requests/{reference}"),
    ("POST", "/admin/requests/{reference}/{action}"),
    ("GET", "/admin/complaints"),
    ("POST", "/admin/complaints"),
    ("GET", "/admin/complaints/{reference}"),
    ("POST", "/admin/complaints/{reference}/{action}"),
    ("GET", "/admin/proof"),
    ("GET", "/admin/staff"),
    ("GET", "/admin/staff/person"),
    ("POST", "/admin/staff/{action}"),
    ("GET", "/admin/account"),
    ("GET", "/admin/account/two-factor"),
    ("POST", "/admin/account/two-factor/{step}"),
    ("POST", "/admin/logout"),
    ("GET", "/admin/login"),
    ("POST", "/admin/login"),
    ("GET", "/admin/password/{token}"),
    ("POST", "/admin/password/{token}"),
    ("GET", "/admin/static/console.css"),
    ("GET", "/admin/static/htmx.min.js"),
    ("GET", "/admin/static/sse.js"),
    ("GET", "/admin/{*rest}"),
];

#[test]
fn the_walk_covers_every_route_of_the_console() {
    let source = include_str!("../src/http/console/mod.rs");
    let mut routed: Vec<&str> = source
        .split('"')
        .filter(|literal| literal.starts_with("/admin"))
        .collect();
    routed.sort_unstable();
    routed.dedup();
    let mut walked: Vec<&str> = CONSOLE_ROUTES.iter().map(|(_, path)| *path).collect();
    walked.sort_unstable();
    walked.dedup();
    assert_eq!(walked, routed, "walk every route the console answers");
}

async fn an_organiser_walks_every_console_page_and_api_route_and_meets_no_one_outside_their_scope(
    db: TestStore,
) {
    use canvass::app::campaigns;
    use canvass::domain::Role::{Admin, Organiser};
    let app = console(db).await;
    let service = app.db.app();
    // What Olu (Stevenage) must never meet: the other contacts, a campaign of the admin's for
    // everyone, one of Hertford's organiser, and the admin's import.
    let outsiders = ["amira@example.org", "cara@example.org", "dev@example.org"];
    let mut secrets: Vec<String> = vec![
        "Amira Hassan".into(),
        "Cara Doyle".into(),
        "Dev Patel".into(),
        "Members briefing".into(),
        "Hertford doorstep".into(),
        "admin-list.csv".into(),
    ];
    secrets.extend(outsiders.iter().map(|s| s.to_string()));
    let mut ids = Vec::new();
    for email in outsiders {
        let id = app.public_id(email).await.to_string();
        secrets.push(id.clone());
        ids.push(id);
    }
    let draft = |name: &str| {
        serde_json::from_value::<canvass::domain::CampaignDraft>(serde_json::json!({
            "name": name, "topic": "news", "subject": name, "html_template": "<p>Hello</p>"
        }))
        .unwrap()
    };
    let admin = staff("admin@hq.example.org", Admin, &[]);
    let hana = staff("hana@hq.example.org", Organiser, &["E14900001"]);
    let wide = campaigns::create(&service, &admin, draft("Members briefing"))
        .await
        .unwrap();
    let hertford = campaigns::create(&service, &hana, draft("Hertford doorstep"))
        .await
        .unwrap();
    // A rights request and a complaint about Amira, and a message sent to her: only admins
    // keep the registers.
    let operator = canvass::app::Actor::Operator;
    let today = chrono::Utc::now().date_naive().to_string();
    let request = canvass::app::registers::open_request(
        &service,
        &operator,
        "access",
        "amira@example.org",
        &today,
        "email",
    )
    .await
    .unwrap()
    .to_string();
    let complaint = canvass::app::registers::log_complaint(
        &service,
        &operator,
        &today,
        "email",
        "Amira Hassan complains",
        Some("amira@example.org"),
        None,
    )
    .await
    .unwrap()
    .to_string();
    let message_id = "%3Cwalk%40hertford.example.org%3E";
    // The admin's import, through the console.
    let admin_browser = Browser::signed_in(&app, "admin@hq.example.org").await;
    let token = admin_browser.get("/admin/import").await.form_token();
    let form = reqwest::multipart::Form::new()
        .text("form_token", token)
        .text("source", "HQ list")
        .text("consented", "2026-11-30")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"email\nnot-an-address\n".to_vec())
                .file_name("admin-list.csv"),
        );
    let started = app
        .client
        .post(format!("{}/admin/import", app.base))
        .header("cookie", admin_browser.cookie.clone().unwrap())
        .header("origin", app.base.clone())
        .multipart(form)
        .send()
        .await
        .unwrap();
    let job = started.headers()["location"].to_str().unwrap().to_owned();
    let job_id = job.rsplit('/').next().unwrap().to_owned();
    // The admin's draft, tried in the composer: its rendering waits for the admin's frames.
    let tried = admin_browser
        .submit(
            "/admin/campaigns/new",
            "/admin/campaigns/try",
            &[
                ("name", "Members briefing"),
                ("topic", "news"),
                ("subject", "Members briefing"),
                ("format", "markdown"),
                ("body", "Members briefing"),
            ],
        )
        .await;
    let at = tried.body.find("/admin/campaigns/trial/").unwrap();
    let trial_path = tried.body[at..at + tried.body[at..].find('"').unwrap()].to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let olu = Browser::signed_in(&app, "olu@hq.example.org").await;
    let token = canvass::app::staff::issue_token(
        &service,
        &Actor::Operator,
        "olu walk",
        false,
        Some("olu@hq.example.org"),
    )
    .await
    .unwrap();
    let before = app.db.dump().await;
    let leaks = |what: &str, body: &str| {
        // What Olu typed comes back (in the form's box, in the answer to a check), and is no
        // leak.
        let body = body
            .replace("value=\"amira@example.org\"", "")
            .replace("<strong>amira@example.org</strong>", "");
        for secret in &secrets {
            assert!(
                !body.contains(secret.as_str()),
                "{what} shows {secret}: {body}"
            );
        }
    };

    let mut walked = 0;
    for (method, pattern) in CONSOLE_ROUTES {
        let mut paths = Vec::new();
        let contact_targets: Vec<String> = ids
            .iter()
            .cloned()
            .chain(outsiders.iter().map(|s| s.to_string()))
            .collect();
        match *pattern {
            "/admin/contacts/{id}" | "/admin/contacts/{id}/export.json" => {
                for id in &contact_targets {
                    paths.push(pattern.replace("{id}", id));
                }
            }
            "/admin/contacts/{id}/{action}" => {
                for id in &contact_targets {
                    for action in ["save", "withdraw", "restrict", "unrestrict", "erase"] {
                        paths.push(pattern.replace("{id}", id).replace("{action}", action));
                    }
                }
            }
            p if p.starts_with("/admin/campaigns/{id}") => {
                let actions = [
                    "submit",
                    "approve",
                    "queue",
                    "schedule",
                    "unschedule",
                    "pause",
                    "resume",
                    "cancel",
                    "retry",
                    "test",
                    "copy",
                    "copy-unsent",
                ];
                for id in [wide, hertford] {
                    let path = p.replace("{id}", &id.to_string());
                    if p.ends_with("{action}") {
                        for action in actions {
                            paths.push(path.replace("{action}", action));
                        }
                    } else {
                        paths.push(path);
                    }
                }
            }
            p if p.starts_with("/admin/import/{id}") => paths.push(p.replace("{id}", &job_id)),
            "/admin/campaigns/trial/{key}" => paths.push(trial_path.clone()),
            "/admin/staff/person" => {
                paths.push("/admin/staff/person?email=admin%40hq.example.org".into())
            }
            "/admin/staff/{action}" => {
                for action in ["add", "edit", "link", "disable"] {
                    paths.push(pattern.replace("{action}", action));
                }
            }
            "/admin/account/two-factor/{step}" => {
                for step in ["confirm", "off"] {
                    paths.push(pattern.replace("{step}", step));
                }
            }
            p if p.contains("/{reference}") => {
                let reference = match p.starts_with("/admin/requests") {
                    true => &request,
                    false => &complaint,
                };
                let path = p.replace("{reference}", reference);
                match p.ends_with("{action}") {
                    true => {
                        for action in ["pause", "resume", "extend", "close", "acknowledge"] {
                            paths.push(path.replace("{action}", action));
                        }
                    }
                    false => paths.push(path),
                }
            }
            "/admin/proof" => paths.push(format!("/admin/proof?message_id={message_id}")),
            "/admin/password/{token}" => paths.push("/admin/password/canvass_guess".into()),
            "/admin/{*rest}" => paths.push("/admin/nothing/here".into()),
            "/admin/suppressions" => {
                paths.push("/admin/suppressions?email=amira%40example.org".into())
            }
            "/admin/contacts" => {
                for query in [
                    "",
                    "?q=example.org",
                    "?q=amira%40example.org",
                    "?q=SG13",
                    "?constituency=E14900001",
                    "?topic=news&consent=granted",
                    "?page=2",
                ] {
                    paths.push(format!("/admin/contacts{query}"));
                }
            }
            // Walked last: it ends the session.
            "/admin/logout" => continue,
            other => paths.push(other.to_owned()),
        }
        for path in paths {
            walked += 1;
            let body = match *method {
                "GET" if path == "/admin/events" => {
                    let mut events = app
                        .client
                        .get(format!("{}{path}", app.base))
                        .header("cookie", olu.cookie.clone().unwrap())
                        .send()
                        .await
                        .unwrap();
                    let first =
                        tokio::time::timeout(std::time::Duration::from_secs(5), events.chunk())
                            .await
                            .expect("a progress event")
                            .unwrap()
                            .unwrap();
                    String::from_utf8_lossy(&first).into_owned()
                }
                "GET" => olu.get(&path).await.body,
                _ => {
                    let fields = [
                        ("name", "Walked"),
                        ("email", "amira@example.org"),
                        ("source", "phone"),
                        ("confirm", "yes"),
                        ("version", "1"),
                        ("at", "2030-01-01 09:00"),
                        ("to", "olu@hq.example.org"),
                        ("role", "admin"),
                        ("code", "000000"),
                        ("postcode", "SG13 8EQ"),
                        ("topic", "news"),
                        ("password", "x"),
                        ("confirmed", "yes"),
                    ];
                    olu.submit_following("/admin", &path, &fields).await.body
                }
            };
            leaks(&format!("{method} {path}"), &body);
        }
    }
    assert!(walked > 100, "{walked} requests");

    // The staff API, every route its OpenAPI document lists, with the same outsiders.
    let document: serde_json::Value = app.openapi().await;
    let bodies = serde_json::json!({
        "email": "amira@example.org", "postcode": "SG13 8EQ", "topics": ["news"],
        "source": "phone", "restricted": true, "version": 1, "to": ["olu@hq.example.org"],
        "at": "2030-01-01 09:00", "subject": "Walked", "slug": "Not A Slug", "name": ""
    });
    for (path, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let mut concrete = vec![path.clone()];
            let substitute = |list: Vec<String>, key: &str, values: &[String]| -> Vec<String> {
                list.into_iter()
                    .flat_map(|p| values.iter().map(move |v| p.replace(key, v)))
                    .collect()
            };
            concrete = substitute(concrete, "{contact}", &contact_targets_of(&ids, &outsiders));
            concrete = substitute(concrete, "{id}", &[wide.to_string(), hertford.to_string()]);
            concrete = substitute(concrete, "{postcode}", &["SG13%208EQ".to_owned()]);
            concrete = substitute(
                concrete,
                "{kind}",
                &["bounce".to_owned(), "complaint".to_owned()],
            );
            concrete = substitute(
                concrete,
                "{action}",
                &["queue", "pause", "resume", "cancel", "retry", "submit"].map(String::from),
            );
            for path in concrete {
                let request = app
                    .client
                    .request(
                        method.to_uppercase().parse().unwrap(),
                        format!("{}{path}", app.base),
                    )
                    .bearer_auth(token.expose());
                let request = match method.as_str() {
                    "get" | "delete" => request,
                    _ => request.json(&bodies),
                };
                let response = request.send().await.unwrap();
                let status = response.status();
                let body = response.text().await.unwrap();
                leaks(&format!("{method} {path} ({status})"), &body);
                walked += 1;
            }
        }
    }
    assert!(walked > 150, "{walked} requests");
    // Posting the sign-in form with an address is a failed attempt, counted as such.
    assert_eq!(
        without(&app.db.dump().await, "sign_in_attempts:"),
        without(&before, "sign_in_attempts:"),
        "nothing outside the scope changed"
    );

    let out = olu.submit("/admin", "/admin/logout", &[]).await;
    assert_eq!(out.location(), Some("/admin/login?done=out"));
}

fn contact_targets_of(ids: &[String], outsiders: &[&str]) -> Vec<String> {
    ids.iter()
        .cloned()
        .chain(outsiders.iter().map(|s| s.to_string()))
        .collect()
}
