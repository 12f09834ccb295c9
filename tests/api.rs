//! The staff API over real HTTP, on both engines: tokens, validation, and the OpenAPI document
//! against the routes the service really answers.

mod support;

use canvass::domain::{Actor, StaffName, StaffSecret};
use canvass::mail::token::Purpose;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::app::{KEY_1, TestApp};
use support::smtp::SmtpSink;
use support::{TestStore, news_campaign, on_both_backends};

on_both_backends!(
    requests_without_a_live_token_are_refused_and_change_nothing,
    a_read_only_token_reads_but_cannot_write,
    topics_are_listed_and_added_with_validation_named_by_field,
    the_openapi_document_describes_every_route_the_api_answers,
    postcodes_are_looked_up_in_the_directory,
    a_contact_is_exported_restricted_and_erased_by_address_or_public_id,
    a_withdrawal_by_phone_is_recorded_through_the_api,
    a_contact_is_created_then_updated_with_its_consents_and_their_source,
    a_campaign_is_created_previewed_queued_steered_and_counted,
    bounces_and_complaints_suppress_the_address_or_the_message_recipient,
    contact_details_are_checked_alike_through_the_api_a_contacts_file_and_the_sign_up_form,
    a_test_send_reaches_only_the_tester_with_inert_links_and_never_the_ledger,
    the_report_counts_what_each_constituency_did_with_an_unsubscribe_through_the_campaign,
    a_campaign_written_in_markdown_is_laid_out_edited_copied_and_sent_from_its_own_address,
);

const PEOPLE: &str = "email,name,postcode,topics,consent_at\n\
    amira@example.org,Amira Hassan,SG13 8EQ,news,2026-09-14T18:30:00Z\n\
    ben@example.org,Ben Okafor,SG14 1AA,events,2026-09-14T18:30:00Z\n";

/// The service, with a read-write token "website" and a read-only token "Press Office".
async fn app(db: TestStore) -> (TestApp, String, String) {
    let writer = staff_token(&db, "website", false).await;
    let reader = staff_token(&db, "Press Office", true).await;
    let app = TestApp::start(db, KEY_1, PEOPLE).await;
    (app, writer, reader)
}

/// A staff token of that name for the store; its secret.
async fn staff_token(db: &TestStore, name: &str, read_only: bool) -> String {
    token_of(db, name, read_only, None).await
}

/// A new token named `name`, belonging to person `user` (none: to no one).
async fn token_of(db: &TestStore, name: &str, read_only: bool, user: Option<i64>) -> String {
    let secret = StaffSecret::generate();
    let name = StaffName::parse(name).unwrap();
    assert!(
        db.store
            .create_staff_token(&name, &secret.hash(), read_only, user, &Actor::Operator)
            .await
            .unwrap()
    );
    secret.expose().to_owned()
}

/// The token of a new admin at `email`, a person of the staff.
async fn person_token(db: &TestStore, email: &str) -> String {
    support::console::add_staff(db, email, "admin", &[]).await;
    let user = db
        .store
        .staff_user_id(&canvass::domain::Email::parse(email).unwrap())
        .await
        .unwrap();
    token_of(db, &email.replace('@', " at "), false, user).await
}

/// GETs `url` with `token`; the JSON answer, which must be a success.
async fn get_json(app: &TestApp, url: &str, token: &str) -> Value {
    let response = app.client.get(url).bearer_auth(token).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

async fn error_code(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "errors are JSON"
    );
    (status, response.json().await.unwrap())
}

async fn requests_without_a_live_token_are_refused_and_change_nothing(db: TestStore) {
    let (app, writer, _) = app(db).await;
    let url = format!("{}/api/v1/topics", app.base);
    let before = app.db.dump().await;
    let new_topic = json!({"slug": "canvassing", "name": "Canvassing"});

    let missing = app.client.post(&url).json(&new_topic).send().await.unwrap();
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"canvass\""
    );
    let (status, body) = error_code(missing).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    for token in [
        "canvass_guess",
        &writer[..writer.len() - 1],
        "",
        &format!("{writer} x"),
    ] {
        let response = app
            .client
            .post(&url)
            .bearer_auth(token)
            .json(&new_topic)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:?}");
    }
    // The scheme's name is case-insensitive (RFC 9110 §11.1).
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let response = app
            .client
            .get(&url)
            .header("Authorization", format!("{scheme} {writer}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
    let basic = app
        .client
        .get(&url)
        .basic_auth("website", Some(&writer))
        .send()
        .await
        .unwrap();
    assert_eq!(
        basic.status(),
        StatusCode::UNAUTHORIZED,
        "only bearer tokens"
    );
    assert_eq!(app.db.dump().await, before, "nothing changed");

    app.db
        .store
        .revoke_staff_token(&StaffName::parse("website").unwrap(), &Actor::Operator)
        .await
        .unwrap();
    let revoked = app
        .client
        .get(&url)
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap();
    assert_eq!(
        revoked.status(),
        StatusCode::UNAUTHORIZED,
        "a revoked token is refused at once"
    );
}

async fn a_read_only_token_reads_but_cannot_write(db: TestStore) {
    let (app, _, reader) = app(db).await;
    let url = format!("{}/api/v1/topics", app.base);
    let listed = app
        .client
        .get(&url)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    let topics: Vec<Value> = listed.json().await.unwrap();
    assert!(topics.iter().any(|t| t["slug"] == "news"), "{topics:?}");

    let before = app.db.dump().await;
    let write = app
        .client
        .post(&url)
        .bearer_auth(&reader)
        .json(&json!({"slug": "canvassing", "name": "Canvassing"}))
        .send()
        .await
        .unwrap();
    let (status, body) = error_code(write).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("read_only"))
    );
    assert_eq!(app.db.dump().await, before);
}

async fn topics_are_listed_and_added_with_validation_named_by_field(db: TestStore) {
    let (app, writer, _) = app(db).await;
    let url = format!("{}/api/v1/topics", app.base);
    let post = |body: Value| {
        app.client
            .post(&url)
            .bearer_auth(&writer)
            .json(&body)
            .send()
    };

    let created = post(json!({"slug": "canvassing", "name": " Canvassing "}))
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body, json!({"slug": "canvassing", "name": "Canvassing"}));
    let audited = app
        .db
        .count("SELECT COUNT(*) FROM audit_log WHERE actor = 'staff:website' AND action = 'topic.added'")
        .await;
    assert_eq!(audited, 1, "the write is audited under the token's name");

    let before = app.db.dump().await;
    let (status, body) = error_code(
        post(json!({"slug": "canvassing", "name": "Again"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("exists"))
    );
    for (bad, field) in [
        (json!({"slug": "Not A Slug!", "name": "X"}), "slug"),
        (json!({"slug": "fine", "name": ""}), "name"),
        (json!({"slug": "fine", "name": "two\nlines"}), "name"),
    ] {
        let (status, body) = error_code(post(bad.clone()).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(body["code"], "invalid");
        assert_eq!(body["field"], field, "{bad}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let malformed = app
        .client
        .post(&url)
        .bearer_auth(&writer)
        .header("content-type", "application/json")
        .body("{\"slug\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = error_code(malformed).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let (status, _) = error_code(post(json!({"slug": "fine"})).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a missing field");
    assert_eq!(
        app.db.dump().await,
        before,
        "no refused request changed anything"
    );
}

async fn the_openapi_document_describes_every_route_the_api_answers(db: TestStore) {
    let (app, writer, _) = app(db).await;
    let document: Value = app.openapi().await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Every reference resolves.
    fn references(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target.clone());
                }
                map.values().for_each(|v| references(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }
    let mut targets = Vec::new();
    references(&document, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let name = target.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            document["components"]["schemas"][name].is_object(),
            "{target} is not in the document"
        );
    }
    let paths = document["paths"].as_object().unwrap();
    // Each operation has an id of its own: generators name their functions after them.
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|operation| operation["operationId"].as_str().unwrap())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate operationIds: {ids:?}");
    validate_openapi(&document);
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations.push((method.to_uppercase(), path.clone()));
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            ("DELETE", "/api/v1/campaigns/{id}/schedule"),
            ("DELETE", "/api/v1/contacts/{contact}"),
            ("GET", "/api/v1/campaigns"),
            ("GET", "/api/v1/campaigns/{id}"),
            ("GET", "/api/v1/campaigns/{id}/preview"),
            ("GET", "/api/v1/campaigns/{id}/report"),
            ("GET", "/api/v1/contacts/{contact}"),
            ("GET", "/api/v1/postcodes/{postcode}"),
            ("GET", "/api/v1/topics"),
            ("PATCH", "/api/v1/campaigns/{id}"),
            ("POST", "/api/v1/campaigns"),
            ("POST", "/api/v1/campaigns/{id}/approval"),
            ("POST", "/api/v1/campaigns/{id}/copy"),
            ("POST", "/api/v1/campaigns/{id}/test"),
            ("POST", "/api/v1/campaigns/{id}/{action}"),
            ("POST", "/api/v1/contacts"),
            ("POST", "/api/v1/contacts/{contact}/withdrawal"),
            ("POST", "/api/v1/events/{kind}"),
            ("POST", "/api/v1/topics"),
            ("PUT", "/api/v1/campaigns/{id}/schedule"),
            ("PUT", "/api/v1/contacts/{contact}/restriction"),
        ]
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
    );
    // Every operation documents its refusals: 401 always, 403 on writes.
    for (method, path) in &operations {
        let responses = &document["paths"][path][method.to_lowercase()]["responses"];
        assert!(responses["401"].is_object(), "{method} {path}");
        assert_eq!(
            responses["403"].is_object(),
            method != "GET",
            "{method} {path}"
        );
    }
    // Every documented operation is routed (whatever it answers, not 404 or 405)...
    for (method, path) in &operations {
        let path = path
            .replace("{contact}", "nobody@example.org")
            .replace("{postcode}", "SG13 8EQ")
            .replace("{id}", "999")
            .replace("{action}", "pause")
            .replace("{kind}", "bounce");
        let response = app
            .client
            .request(method.parse().unwrap(), format!("{}{path}", app.base))
            .bearer_auth(&writer)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let routed = status != StatusCode::METHOD_NOT_ALLOWED
            && (status != StatusCode::NOT_FOUND
                || response.json::<Value>().await.unwrap()["code"] == "not_found");
        assert!(routed, "{method} {path}: {status}");
    }
    // ... and what is not documented is not there.
    for (method, path) in [("DELETE", "/api/v1/topics"), ("GET", "/api/v1/contacts")] {
        let response = app
            .client
            .request(method.parse().unwrap(), format!("{}{path}", app.base))
            .bearer_auth(&writer)
            .send()
            .await
            .unwrap();
        assert!(
            [StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&response.status()),
            "{method} {path}: {}",
            response.status()
        );
    }
}

/// Checks the document with openapi-spec-validator, as a client generator would read it.
/// `.ci/run` installs it in a virtualenv and names it in `CANVASS_OPENAPI_VALIDATOR`.
fn validate_openapi(document: &Value) {
    let Some(validator) = std::env::var_os("CANVASS_OPENAPI_VALIDATOR") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no openapi-spec-validator under CI: .ci/run installs it"
        );
        eprintln!("SKIPPED: openapi-spec-validator (set CANVASS_OPENAPI_VALIDATOR)");
        return;
    };
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(document).unwrap()).unwrap();
    let checked = std::process::Command::new(validator)
        .arg(file.path())
        .output()
        .expect("openapi-spec-validator runs");
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

async fn postcodes_are_looked_up_in_the_directory(db: TestStore) {
    let (app, _, reader) = app(db).await;
    let get = |postcode: &str| {
        app.client
            .get(format!("{}/api/v1/postcodes/{postcode}", app.base))
            .bearer_auth(&reader)
            .send()
    };
    let found: Value = get("sg138eq").await.unwrap().json().await.unwrap();
    assert_eq!(found["postcode"], "SG13 8EQ");
    assert_eq!(found["constituency_code"], "E14900001");
    assert_eq!(
        found["constituency_name"],
        "Hertford and Stortford (sample)"
    );
    let (status, body) = error_code(get("ZZ99 9ZZ").await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body) = error_code(get("not-a-postcode").await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "postcode");
}

async fn a_withdrawal_by_phone_is_recorded_through_the_api(db: TestStore) {
    let (app, writer, reader) = app(db).await;
    let url = |contact: &str| format!("{}/api/v1/contacts/{contact}/withdrawal", app.base);
    let post = |token: &str, contact: &str, body: Value| {
        app.client
            .post(url(contact))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let (status, _) = error_code(
        post(&reader, "amira@example.org", json!({"source": "phone"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) = error_code(
        post(&writer, "amira@example.org", json!({"source": " "}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("source"))
    );

    let answer: Value = post(
        &writer,
        "amira@example.org",
        json!({"source": "letter", "note": "dated 1 December"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(answer["outcome"], "unsubscribed");
    let held = app.export("amira@example.org").await;
    assert_eq!(
        held.suppression.map(|s| s.reason.as_str()),
        Some("unsubscribed")
    );
    assert!(
        held.audit
            .iter()
            .any(|a| a.actor == "staff:website" && a.action == "contact.unsubscribed")
    );
}

async fn a_contact_is_exported_restricted_and_erased_by_address_or_public_id(db: TestStore) {
    let (app, writer, reader) = app(db).await;
    let url = |rest: &str| format!("{}/api/v1/contacts/{rest}", app.base);
    let public_id = app.public_id("amira@example.org").await.to_string();

    let get = |contact: String| app.client.get(url(&contact)).bearer_auth(&reader).send();
    let by_address: Value = get("amira@example.org".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut by_id: Value = get(public_id.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(by_address["email"], "amira@example.org");
    // Each download by staff is audited on the person's record: the second shows the first.
    assert_eq!(by_id["audit"][0]["action"], "contact.exported");
    assert_eq!(by_id["audit"][0]["actor"], "staff:Press Office");
    by_id["audit"] = by_address["audit"].clone();
    assert_eq!(by_address, by_id, "the same person either way");
    for unknown in [
        "nobody@example.org".to_owned(),
        uuid::Uuid::new_v4().to_string(),
    ] {
        let (status, body) = error_code(get(unknown).await.unwrap()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
    }
    let (status, body) = error_code(get("neither".into()).await.unwrap()).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("contact"))
    );

    let restrict = |contact: String, restricted: bool| {
        app.client
            .put(url(&format!("{contact}/restriction")))
            .bearer_auth(&writer)
            .json(&json!({ "restricted": restricted }))
            .send()
    };
    let outcome = |response: reqwest::Response| async move {
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()["outcome"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        outcome(restrict(public_id.clone(), true).await.unwrap()).await,
        "restricted"
    );
    assert!(app.export("amira@example.org").await.restricted);
    assert_eq!(
        outcome(restrict("amira@example.org".into(), true).await.unwrap()).await,
        "already_restricted"
    );
    assert_eq!(
        outcome(restrict("amira@example.org".into(), false).await.unwrap()).await,
        "unrestricted"
    );
    assert!(!app.export("amira@example.org").await.restricted);
    let audited = app
        .db
        .count("SELECT COUNT(*) FROM audit_log WHERE actor = 'staff:website'")
        .await;
    assert_eq!(audited, 2, "each change audited under the token's name");

    let refused = app
        .client
        .delete(url(&public_id))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let erased = app
        .client
        .delete(url(&public_id))
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(erased).await, "erased");
    let gone = app
        .client
        .get(url("amira@example.org"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(
        gone.status(),
        StatusCode::NOT_FOUND,
        "nothing is held after erasure"
    );
    assert!(!app.db.dump().await.contains("amira@example.org"));
}

async fn a_contact_is_created_then_updated_with_its_consents_and_their_source(db: TestStore) {
    let (app, writer, reader) = app(db).await;
    let url = format!("{}/api/v1/contacts", app.base);
    let post =
        |token: &str, body: Value| app.client.post(&url).bearer_auth(token).json(&body).send();
    let chloe = json!({
        "email": "Chloe@Example.org", "name": "Chloe", "postcode": "sg13 7dg",
        "topics": ["news"], "consent_at": "2026-11-01T10:00:00Z", "source": "website-form"
    });

    let created = post(&writer, chloe.clone()).await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let held: Value = created.json().await.unwrap();
    assert_eq!(
        held["email"], "Chloe@Example.org",
        "kept as typed; matched case-blind"
    );
    assert_eq!(held["postcode"], "SG13 7DG");
    let news = held["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["topic"] == "news")
        .unwrap();
    assert_eq!(news["granted"], true);
    assert_eq!(news["source"], "website-form");

    let updated = post(&writer, json!({
        "email": "chloe@example.org", "name": "Chloe Adams", "topics": ["events"], "source": "hustings-sheet"
    }))
    .await
    .unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    let held: Value = updated.json().await.unwrap();
    assert_eq!(held["name"], "Chloe Adams");
    assert_eq!(held["postcode"], "SG13 7DG", "what is not given is kept");
    let mut granted: Vec<&str> = held["consents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["granted"] == true)
        .map(|c| c["topic"].as_str().unwrap())
        .collect();
    granted.sort();
    assert_eq!(granted, ["events", "news"]);
    let audited = app.db.count(
        "SELECT COUNT(*) FROM audit_log WHERE actor = 'staff:website' AND action IN ('contact.created', 'contact.updated')",
    ).await;
    assert_eq!(audited, 2);

    let before = app.db.dump().await;
    for (change, field) in [
        (json!({"email": "not an address"}), "email"),
        (json!({"postcode": "nowhere"}), "postcode"),
        (json!({"topics": ["no-such-topic"]}), "topics"),
        (json!({"date_of_birth": "2999-01-01"}), "date_of_birth"),
        (json!({"consent_at": "2999-01-01T00:00:00Z"}), "consent_at"),
        (json!({"source": " "}), "source"),
    ] {
        let mut body = chloe.clone();
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let (status, answer) = error_code(post(&writer, body).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{change}");
        assert_eq!(answer["field"], field, "{change}");
    }
    let (status, _) = error_code(post(&reader, chloe.clone()).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.db.dump().await,
        before,
        "refused requests change nothing"
    );

    // An erased person is not brought back by staff.
    let erased = app
        .client
        .delete(format!("{url}/chloe@example.org"))
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), StatusCode::OK);
    let (status, answer) = error_code(post(&writer, chloe).await.unwrap()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::CONFLICT, Some("erased"))
    );
    assert!(
        !app.db
            .dump()
            .await
            .to_lowercase()
            .contains("chloe@example.org")
    );
}

async fn a_campaign_is_created_previewed_queued_steered_and_counted(db: TestStore) {
    let (app, writer, reader) = app(db).await;
    let url = |rest: &str| format!("{}/api/v1/campaigns{rest}", app.base);
    let draft = json!({
        "name": "Winter", "topic": "news", "subject": "Winter news",
        "html_template": "<p>Dear {{contact.name}} in {{#if constituency.name}}{{constituency.name}}{{else}}your area{{/if}}</p>",
        "constituencies": ["E14900001"]
    });
    let create = |token: &str, body: Value| {
        app.client
            .post(url(""))
            .bearer_auth(token)
            .json(&body)
            .send()
    };

    let before = app.db.dump().await;
    for (change, field) in [
        (json!({"topic": "no-such-topic"}), "topic"),
        (json!({"constituencies": ["nowhere"]}), "constituencies"),
        (
            json!({"html_template": "<p>{{contact.nmae}}</p>"}),
            "html_template",
        ),
        (json!({"html_template": "<p>{{#if}}</p>"}), "html_template"),
        (json!({"event_title": "Hustings"}), "event_title"),
        (
            json!({"event_title": "Hustings", "event_starts_at": "soon", "event_venue": "Hall"}),
            "event_starts_at",
        ),
        (
            json!({"event_title": "Hustings", "event_starts_at": "2020-05-01T19:00:00Z", "event_venue": "Hall"}),
            "event_starts_at",
        ),
        (json!({"subject": "two\nlines"}), "subject"),
        // Partials can call themselves: this one aborted the whole service.
        (
            json!({"html_template": "{{#*inline \"x\"}}a{{> x}}{{/inline}}{{> x}}"}),
            "html_template",
        ),
        (
            json!({"html_template": "x".repeat(1024 * 1024 + 1)}),
            "html_template",
        ),
    ] {
        let mut body = draft.clone();
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let (status, answer) = error_code(create(&writer, body).await.unwrap()).await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{change}"
        );
    }
    let (status, _) = error_code(create(&reader, draft.clone()).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut huge = draft.clone();
    huge["html_template"] = json!("x".repeat(5 * 1024 * 1024));
    let (status, answer) = error_code(create(&writer, huge).await.unwrap()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    assert_eq!(app.db.dump().await, before, "nothing refused was stored");

    let draft_again = draft.clone();
    let created = create(&writer, draft).await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let campaign: Value = created.json().await.unwrap();
    assert_eq!(campaign["state"], "draft");
    let id = campaign["id"].as_i64().unwrap();

    let preview: Value =
        serde_json::from_value(get_json(&app, &url(&format!("/{id}/preview")), &reader).await)
            .unwrap();
    assert_eq!(
        preview["audience_size"], 1,
        "Amira: in the constituency, consenting to news"
    );
    assert!(preview["html"].as_str().unwrap().contains("Dear "));
    assert!(
        preview["text"].as_str().unwrap().contains("/test-link"),
        "the links lead to the page that says it was a test"
    );

    let act = |action: &str| {
        app.client
            .post(url(&format!("/{id}/{action}")))
            .bearer_auth(&writer)
            .send()
    };
    // Made by staff, it waits for a second person's approval of this very version.
    let (status, answer) = error_code(act("queue").await.unwrap()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::CONFLICT, Some("unapproved"))
    );
    let approve = |token: &str, version: i64| {
        app.client
            .post(url(&format!("/{id}/approval")))
            .bearer_auth(token)
            .json(&json!({ "version": version }))
            .send()
    };
    assert_eq!(campaign["approval"]["version"], 1);
    let (status, answer) = error_code(approve(&writer, 1).await.unwrap()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "no one approves their own campaign"
    );
    // A token without an owner is no second person.
    let ownerless = staff_token(&app.db, "second pair of eyes", false).await;
    let (status, answer) = error_code(approve(&ownerless, 1).await.unwrap()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let second = person_token(&app.db, "second@hq.example.org").await;
    let (status, answer) = error_code(approve(&second, 2).await.unwrap()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::CONFLICT, Some("edited")),
        "an approval is of the version the approver read"
    );
    let approved: Value = approve(&second, 1).await.unwrap().json().await.unwrap();
    assert_eq!(
        approved["approval"]["approved_by"],
        "staff:second@hq.example.org"
    );
    let acted: Value = act("queue").await.unwrap().json().await.unwrap();
    assert_eq!(acted, json!({"state": "queued", "queued": 1}));
    let (status, answer) = error_code(act("queue").await.unwrap()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::CONFLICT, Some("refused"))
    );
    for (action, now) in [
        ("pause", "paused"),
        ("resume", "queued"),
        ("cancel", "cancelled"),
    ] {
        let acted: Value = act(action).await.unwrap().json().await.unwrap();
        assert_eq!(acted["state"], now, "{action}");
    }
    let (status, _) = error_code(act("pause").await.unwrap()).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a cancelled campaign stays cancelled"
    );
    let (status, _) = error_code(act("explode").await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let status: Value =
        serde_json::from_value(get_json(&app, &url(&format!("/{id}")), &reader).await).unwrap();
    assert_eq!(status["state"], "cancelled");
    assert_eq!(status["deliveries"]["skipped"], 1);
    let listed: Vec<Value> =
        serde_json::from_value(get_json(&app, &url(""), &reader).await).unwrap();
    assert!(listed.iter().any(|c| c["id"] == id));
    for missing in ["/424242", "/not-a-number", "/424242/preview"] {
        let (status, body) = error_code(
            app.client
                .get(url(missing))
                .bearer_auth(&reader)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{missing}"
        );
    }
    let audited = app.db.count(
        "SELECT COUNT(*) FROM audit_log WHERE actor = 'staff:website' AND action LIKE 'campaign.%'",
    ).await;
    assert_eq!(audited, 5, "created, queued, paused, resumed, cancelled");
    // A newsletter of almost 1 MiB is taken.
    let mut large = draft_again.clone();
    large["html_template"] = json!(format!(
        "<p>Dear {{{{contact.name}}}}</p>{}",
        "<p>News of the week.</p>".repeat(40_000)
    ));
    let created = create(&writer, large).await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
}

async fn bounces_and_complaints_suppress_the_address_or_the_message_recipient(db: TestStore) {
    let (app, writer, _) = app(db).await;
    let event = |kind: &str, body: Value| {
        app.client
            .post(format!("{}/api/v1/events/{kind}", app.base))
            .bearer_auth(&writer)
            .json(&body)
            .send()
    };
    let app = &app;
    let suppression = |address: &'static str| async move {
        app.export(address)
            .await
            .suppression
            .map(|s| s.reason.as_str())
    };

    let before = app.db.dump().await;
    let soft: Value = event(
        "bounce",
        json!({"email": "ben@example.org", "status": "4.2.2"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(soft["outcome"], "temporary");
    for (body, field) in [
        (json!({}), "email"),
        (
            json!({"email": "ben@example.org", "status": "5.1"}),
            "status",
        ),
        (json!({"message_id": "no-brackets@y"}), "message_id"),
        (json!({"email": "not an address"}), "email"),
    ] {
        let (status, answer) = error_code(event("bounce", body.clone()).await.unwrap()).await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{body}"
        );
    }
    let (status, _) = error_code(
        event("explosion", json!({"email": "ben@example.org"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for not_ours in [
        json!({"message_id": "<unknown@hertford.example.org>"}),
        json!({"message_id": "<unknown@hertford.example.org>", "email": "ben@example.org"}),
    ] {
        let (status, _) = error_code(event("complaint", not_ours).await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert_eq!(app.db.dump().await, before, "nothing was suppressed yet");

    let hard: Value = event(
        "bounce",
        json!({"email": "Ben@Example.org", "status": "5.1.1"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(hard["outcome"], "suppressed");
    assert_eq!(suppression("ben@example.org").await, Some("bounced"));

    // A complaint about a message canvass sent, by its Message-ID.
    app.db.queue(&news_campaign(&[], &[])).await;
    app.db
        .execute("UPDATE deliveries SET state = 'sent', message_id = '<m1@hertford.example.org>'")
        .await;
    // Named with another address than the message went to: not ours.
    let (status, _) = error_code(
        event(
            "complaint",
            json!({"message_id": "<m1@hertford.example.org>", "email": "someone@example.net"}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let complaint: Value = event(
        "complaint",
        json!({"message_id": "<m1@hertford.example.org>"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(complaint["outcome"], "suppressed");
    assert_eq!(suppression("amira@example.org").await, Some("complaint"));
    let audited = app.db.count(
        "SELECT COUNT(*) FROM audit_log WHERE actor = 'staff:website' AND action IN ('suppressed.bounced', 'suppressed.complaint')",
    ).await;
    assert_eq!(audited, 2);
}

/// One contact as each door takes it, and the field each must refuse (`None`: taken).
struct Case {
    email: String,
    name: String,
    postcode: &'static str,
    topic: &'static str,
    /// Seconds from now; `None`: left blank. The sign-up form has no such field.
    consent_in: Option<i64>,
    /// Blank: the file's `--source`. The sign-up form has no such field.
    source: String,
    refused: Option<&'static str>,
}

/// The rules that once differed by door (consent a few minutes ahead, long sources) and the
/// rest, through the staff API, `canvass contacts import` (the real binary), the public
/// sign-up form and the preference centre: each takes or refuses the same contact, naming the
/// same field.
async fn contact_details_are_checked_alike_through_the_api_a_contacts_file_and_the_sign_up_form(
    db: TestStore,
) {
    let writer = staff_token(&db, "website", false).await;
    db.load_sample_directory().await;
    let outbox = db.file("doors.csv", "").with_file_name("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let outbox = outbox.display().to_string();
    let database = db.url_with_secret();
    let app = TestApp::serve_mailing(db, KEY_1, Some(format!("file://{outbox}"))).await;
    let case = |i: usize| Case {
        email: format!("row{i}@example.org"),
        name: "Jo Bloggs".into(),
        postcode: "SG13 8EQ",
        topic: "news",
        consent_in: None,
        source: "a form".into(),
        refused: None,
    };
    let cases = [
        case(0),
        Case {
            email: "not an address".into(),
            refused: Some("email"),
            ..case(1)
        },
        Case {
            email: "jö@example.org".into(),
            refused: Some("email"),
            ..case(2)
        },
        Case {
            name: "x".repeat(201),
            refused: Some("name"),
            ..case(3)
        },
        Case {
            name: "Jo\u{7}Bloggs".into(),
            refused: Some("name"),
            ..case(4)
        },
        Case {
            postcode: "nowhere",
            refused: Some("postcode"),
            ..case(5)
        },
        Case {
            topic: "no-such-topic",
            refused: Some("topics"),
            ..case(6)
        },
        Case {
            consent_in: Some(180),
            ..case(7)
        },
        Case {
            consent_in: Some(600),
            refused: Some("consent_at"),
            ..case(8)
        },
        Case {
            source: "s".repeat(150),
            ..case(9)
        },
        Case {
            source: "s".repeat(250),
            refused: Some("source"),
            ..case(10)
        },
    ];
    let now = chrono::Utc::now();
    let consent_at = |case: &Case| {
        case.consent_in
            .map(|s| (now + chrono::Duration::seconds(s)).to_rfc3339())
            .unwrap_or_default()
    };

    // The staff API.
    for case in &cases {
        let answer = app
            .client
            .post(format!("{}/api/v1/contacts", app.base))
            .bearer_auth(&writer)
            .json(&json!({
                "email": case.email, "name": case.name, "postcode": case.postcode,
                "topics": [case.topic], "consent_at": case.consent_in.map(|_| consent_at(case)),
                "source": case.source,
            }))
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let body: Value = answer.json().await.unwrap();
        let refused = (status == StatusCode::UNPROCESSABLE_ENTITY).then(|| body["field"].clone());
        assert_eq!(
            refused,
            case.refused.map(Value::from),
            "API, {}: {body}",
            case.email
        );
    }

    // A contacts file, through the command line, rows numbered from line 2.
    let quoted = |value: &str| format!("\"{}\"", value.replace('"', "\"\""));
    let mut csv = String::from("email,name,postcode,topics,consent_at,consent_source\n");
    for case in &cases {
        let row = [
            quoted(&case.email.replace("row", "file")),
            quoted(&case.name),
            quoted(case.postcode),
            quoted(case.topic),
            quoted(&consent_at(case)),
            quoted(&case.source),
        ];
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    let file = app.db.file("doors.csv", &csv);
    support::start_journal(&database, &[]);
    let imported = std::process::Command::new(env!("CARGO_BIN_EXE_canvass"))
        .args(["contacts", "import"])
        .arg(&file)
        .args(["--source", "doors-test"])
        .env("CANVASS_DATABASE_URL", &database)
        .env_remove("CANVASS_SIGNING_KEYS")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&imported.stdout).into_owned();
    assert!(
        imported.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    for (i, case) in cases.iter().enumerate() {
        let line = format!("line {}: ", i + 2);
        let rejection = printed.lines().find(|l| l.starts_with(&line));
        let refused = rejection.map(|l| {
            l[line.len()..]
                .trim_start_matches("invalid ")
                .split(':')
                .next()
                .unwrap()
                .to_owned()
        });
        assert_eq!(
            refused.as_deref(),
            case.refused,
            "file, {}: {printed}",
            case.email
        );
    }

    // The sign-up form, which asks for the fields people give themselves: a client each,
    // under the per-address limit.
    for (i, case) in cases.iter().enumerate() {
        if case.consent_in.is_some() || case.source != "a form" {
            continue;
        }
        let answer = app
            .client
            .post(format!("{}/subscribe", app.base))
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .json(&json!({
                "email": case.email.replace("row", "form"), "name": case.name,
                "postcode": case.postcode, "topics": [case.topic], "wording": "form v1",
            }))
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let body: Value = answer.json().await.unwrap();
        let message = body["message"].as_str().unwrap_or_default().to_owned();
        let refused = (status == StatusCode::UNPROCESSABLE_ENTITY)
            .then(|| message.split(':').next().unwrap().to_owned());
        assert_eq!(
            refused.as_deref(),
            case.refused,
            "sign-up, {}: {body}",
            case.email
        );
        if case.refused.is_none() {
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        }
    }

    // The preference centre, where a person changes their own postcode and topics: it refuses
    // the postcodes the other doors refuse, and takes the rest (a topic it does not show is
    // not theirs to change there, and is ignored).
    let link = app.link(Purpose::Preferences, "row0@example.org").await;
    for case in &cases {
        let answer = app
            .client
            .post(&link)
            .form(&[("postcode", case.postcode), ("topic", case.topic)])
            .send()
            .await
            .unwrap();
        let refused = answer.status() == StatusCode::UNPROCESSABLE_ENTITY;
        assert_eq!(
            refused,
            case.refused == Some("postcode"),
            "preference centre, {}: {}",
            case.email,
            answer.status()
        );
        let held = app.export("row0@example.org").await;
        let expected = match refused {
            true => "SG13 8EQ",
            false => case.postcode,
        };
        assert_eq!(held.postcode.as_deref(), Some(expected), "{}", case.email);
    }
}

/// The service over the sample directory and [`PEOPLE`], sending its own mail (sign-ups, test
/// messages) to smtp-sink, with a read-write token; `None` where smtp-sink is not installed.
async fn mailing_app(db: TestStore) -> Option<(TestApp, SmtpSink, String)> {
    let sink = SmtpSink::start(&[])?;
    let writer = staff_token(&db, "website", false).await;
    db.load_sample_directory().await;
    db.import_people(PEOPLE).await;
    // Test messages go only to people on the staff.
    let testers = [
        "organiser",
        "tester1",
        "tester2",
        "tester3",
        "tester4",
        "late",
        "x",
        "y",
    ];
    for tester in testers {
        canvass::app::staff::add(
            &db.app(),
            &Actor::Operator,
            &format!("{tester}@party.example.org"),
            tester,
            "organiser",
            &[],
        )
        .await
        .unwrap();
    }
    let app = TestApp::serve_mailing(db, KEY_1, Some(sink.url())).await;
    Some((app, sink, writer))
}

/// The value of header `name` in a message as the sink dumped it.
fn header(message: &str, name: &str) -> String {
    message
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .map(str::trim)
        .unwrap_or_default()
        .to_owned()
}

/// A test send goes to the tester alone, "[Test] " before its subject, with the values of the
/// contact asked for; its links (the one-click header too) lead to a page that says it was a
/// test and change nothing; the ledger never hears of it; and a campaign sends five a minute.
async fn a_test_send_reaches_only_the_tester_with_inert_links_and_never_the_ledger(db: TestStore) {
    let Some((app, sink, writer)) = mailing_app(db).await else {
        return;
    };
    let id = app
        .db
        .store
        .create_campaign(
            &news_campaign(&[], &[]),
            &canvass::domain::Scope::Everyone,
            false,
            &Actor::Operator,
        )
        .await
        .unwrap();
    let test = |body: Value| {
        app.client
            .post(format!("{}/api/v1/campaigns/{id}/test", app.base))
            .bearer_auth(&writer)
            .json(&body)
            .send()
    };

    let sent = test(json!({"to": ["organiser@party.example.org"], "as": "amira@example.org"}))
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::OK);
    assert_eq!(sent.json::<Value>().await.unwrap(), json!({"sent": 1}));
    let received = sink.received_by_recipient();
    assert_eq!(
        received.keys().collect::<Vec<_>>(),
        ["organiser@party.example.org"]
    );
    let message = sink.messages().remove(0).replace("=\n", "");
    assert_eq!(header(&message, "Subject:"), "[Test] Winter news");
    assert!(message.contains("Dear Amira Hassan"), "{message}");
    let unsubscribe = header(&message, "List-Unsubscribe:");
    assert_eq!(unsubscribe, "<https://links.example.org/test-link>");
    assert!(
        !message.contains("/u/") && !message.contains("/p/"),
        "{message}"
    );
    assert_eq!(app.db.count("SELECT count(*) FROM deliveries").await, 0);

    // The links act on nobody, one-click or not.
    let link = format!("{}/test-link", app.base);
    for answer in [
        app.client.get(&link).send().await.unwrap(),
        app.client
            .post(&link)
            .form(&[("List-Unsubscribe", "One-Click")])
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(answer.status(), StatusCode::OK);
        assert!(answer.text().await.unwrap().contains("test message"));
    }
    assert!(app.db.held("amira@example.org").await.suppression.is_none());

    // Four more fit in the minute; a sixth does not, and is not sent.
    let more: Vec<String> = (1..=4)
        .map(|i| format!("tester{i}@party.example.org"))
        .collect();
    assert_eq!(
        test(json!({"to": more})).await.unwrap().status(),
        StatusCode::OK
    );
    let (status, answer) = error_code(
        test(json!({"to": ["late@party.example.org"]}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many"))
    );
    assert_eq!(sink.messages().len(), 5);
    // Sample values without `as`. Refused, naming the field: an unknown `as`; a restricted
    // one (nobody's details for a campaign that would not reach them); a suppressed address
    // to send to (nothing goes to it, tests included).
    let email = |address: &str| canvass::domain::Email::parse(address).unwrap();
    let amira = email("amira@example.org");
    app.db
        .store
        .set_restricted(&amira, true, &Actor::Operator)
        .await
        .unwrap();
    let ben = email("ben@example.org");
    app.db
        .store
        .erase_contact(&ben, &Actor::Operator)
        .await
        .unwrap();
    for (body, field) in [
        (
            json!({"to": ["x@party.example.org"], "as": "nobody@example.org"}),
            "as",
        ),
        (
            json!({"to": ["y@party.example.org"], "as": "amira@example.org"}),
            "as",
        ),
        (json!({"to": ["ben@example.org"]}), "to"),
        (json!({"to": ["stranger@example.net"]}), "to"),
    ] {
        let (status, answer) = error_code(test(body.clone()).await.unwrap()).await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{body}"
        );
    }
    assert_eq!(app.db.count("SELECT count(*) FROM deliveries").await, 0);
}

/// A campaign's report counts its deliveries by state and by the constituency of their
/// recipients, a bounce and a complaint reported about its messages, and an unsubscribe made
/// through the link in one of them (and not one made another way).
async fn the_report_counts_what_each_constituency_did_with_an_unsubscribe_through_the_campaign(
    db: TestStore,
) {
    let writer = staff_token(&db, "website", false).await;
    let people = "email,name,postcode,topics\n\
        amira@example.org,Amira,SG13 8EQ,news\n\
        chloe@example.org,Chloe,SG14 1AA,news\n\
        dev@example.org,Dev,SG1 2AA,news\n\
        erin@example.org,Erin,SG2 8TE,news\n\
        faye@example.org,Faye,,news\n\
        gus@example.org,Gus,SG12 9HU,news\n";
    let app = TestApp::start(db, KEY_1, people).await;
    let id = app.db.queue(&news_campaign(&[], &[])).await;
    let outbox = app.db.file("outbox.keep", "").with_file_name("outbox");
    let mut worker = canvass::worker::Worker::new(
        app.db.store.clone(),
        canvass::worker::WorkerSettings {
            letterhead: support::letterhead(),
            relays: canvass::mail::Transport::Outbox(outbox.clone()).into(),
            metrics: std::sync::Arc::new(canvass::metrics::Metrics::new()),
            sending: canvass::worker::Sending::default(),
        },
    );
    // Gus restricts himself before the send: skipped.
    let gus = canvass::domain::Email::parse("gus@example.org").unwrap();
    app.db
        .store
        .set_restricted(&gus, true, &Actor::Operator)
        .await
        .unwrap();
    assert_eq!(worker.drain().await.unwrap().sent, 5);

    let messages: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|entry| {
            std::fs::read_to_string(entry.unwrap().path())
                .unwrap()
                .replace("=\n", "")
        })
        .collect();
    let to = |address: &str| {
        messages
            .iter()
            .find(|m| header(m, "To:").contains(address))
            .unwrap()
            .clone()
    };
    // Amira unsubscribes with the link in her message, twice; Chloe by phone, which is no
    // unsubscribe through the campaign.
    let amira = to("amira@example.org");
    let link = header(&amira, "List-Unsubscribe:");
    let link = link
        .trim_matches(['<', '>'])
        .replace("https://links.example.org", &app.base);
    for _ in 0..2 {
        let answer = app
            .client
            .post(&link)
            .form(&[("List-Unsubscribe", "One-Click")])
            .send();
        assert_eq!(answer.await.unwrap().status(), StatusCode::OK);
    }
    let phoned = app
        .client
        .post(format!(
            "{}/api/v1/contacts/chloe@example.org/withdrawal",
            app.base
        ))
        .bearer_auth(&writer)
        .json(&json!({"source": "phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(phoned.status(), StatusCode::OK);
    // Dev's message bounces later; Erin complains.
    for (kind, address) in [
        ("bounce", "dev@example.org"),
        ("complaint", "erin@example.org"),
    ] {
        let message_id = header(&to(address), "Message-ID:");
        let reported = app
            .client
            .post(format!("{}/api/v1/events/{kind}", app.base))
            .bearer_auth(&writer)
            .json(&json!({"message_id": message_id, "status": "5.1.1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(reported.status(), StatusCode::OK, "{kind}");
    }

    let report = get_json(
        &app,
        &format!("{}/api/v1/campaigns/{id}/report", app.base),
        &writer,
    )
    .await;
    let counts = |queued, sent, skipped, bounced, complaints, unsubscribed| {
        json!({"queued": queued, "sent": sent, "failed": 0, "skipped": skipped,
               "bounced": bounced, "complaints": complaints, "unsubscribed": unsubscribed})
    };
    let total: serde_json::Map<String, Value> = report
        .as_object()
        .unwrap()
        .iter()
        .filter(|(key, _)| !["id", "name", "state", "by_constituency"].contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    assert_eq!(Value::Object(total), counts(0, 5, 1, 1, 1, 1), "{report:#}");
    let by: std::collections::BTreeMap<String, Value> = report["by_constituency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut counts = c.clone();
            let object = counts.as_object_mut().unwrap();
            let code = object.remove("code").unwrap();
            object.remove("name");
            (code.as_str().unwrap_or("none").to_owned(), counts)
        })
        .collect();
    assert_eq!(by["E14900001"], counts(0, 2, 1, 0, 0, 1), "{report:#}");
    assert_eq!(by["E14900002"], counts(0, 2, 0, 1, 1, 0), "{report:#}");
    assert_eq!(by["none"], counts(0, 1, 0, 0, 0, 0), "{report:#}");
    assert_eq!(
        report["by_constituency"][0]["name"], "Hertford and Stortford (sample)",
        "largest first, named"
    );
}

/// A campaign written in Markdown is made into canvass's layout (raw HTML escaped, the footer
/// added, a text part), keeps its Markdown through an edit and a copy, turns into an HTML one
/// when given HTML; its own From must be at a domain canvass sends from, and its messages
/// carry it.
async fn a_campaign_written_in_markdown_is_laid_out_edited_copied_and_sent_from_its_own_address(
    db: TestStore,
) {
    let Some((app, sink, writer)) = mailing_app(db).await else {
        return;
    };
    let url = |path: &str| format!("{}/api/v1/campaigns{path}", app.base);
    let created = app
        .client
        .post(url(""))
        .bearer_auth(&writer)
        .json(&json!({
            "name": "Winter", "topic": "news", "subject": "Winter news",
            "markdown": "# Winter news\n\nHello {{contact.name}}. <img src=x onerror=alert(1)>",
            "from": "Hertford Events <events@hertford.example.org>",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let preview = get_json(&app, &url(&format!("/{id}/preview")), &writer).await;
    let html = preview["html"].as_str().unwrap();
    assert!(html.contains("<h1 style="), "laid out, CSS inlined: {html}");
    assert!(html.contains("Hello Amira Hassan."), "{html}");
    assert!(html.contains("&lt;img") && !html.contains("<img"), "{html}");
    assert!(html.contains("Unsubscribe"), "the footer: {html}");
    assert!(
        preview["text"]
            .as_str()
            .unwrap()
            .contains("Hello Amira Hassan.")
    );

    let patch = |body: Value| {
        app.client
            .patch(url(&format!("/{id}")))
            .bearer_auth(&writer)
            .json(&body)
            .send()
    };
    // Edited, it stays Markdown; a copy too.
    let edited = patch(json!({"subject": "Winter news, again"}))
        .await
        .unwrap();
    assert_eq!(edited.status(), StatusCode::OK);
    let copy = app
        .client
        .post(url(&format!("/{id}/copy")))
        .bearer_auth(&writer)
        .send();
    let copy = copy.await.unwrap().json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    for campaign in [id, copy] {
        let held = app.db.store.campaign(campaign).await.unwrap().unwrap();
        assert!(
            held.spec
                .markdown
                .as_deref()
                .unwrap()
                .contains("{{contact.name}}")
        );
        assert_eq!(
            held.spec.from.unwrap().to_string(),
            "Hertford Events <events@hertford.example.org>"
        );
    }
    // Refusals name the field and change nothing.
    let before = app.db.dump().await;
    for (body, field) in [
        (
            json!({"from": "Someone <news@elsewhere.example.com>"}),
            "from",
        ),
        (json!({"reply_to": "not an address"}), "reply_to"),
        (
            json!({"reply_to": "Phisher <phish@evil.example>"}),
            "reply_to",
        ),
        (json!({"markdown": "Hi {{{contact.name}}}"}), "markdown"),
        // An image from elsewhere would tell its server who opened the message.
        (
            json!({"markdown": "Hi ![](https://tracker.example/p.gif?who=approver)"}),
            "markdown",
        ),
        (
            json!({"html_template": "<p>Hi</p><img src=\"&#104;ttps://tracker.example/p.gif\">"}),
            "html_template",
        ),
        (json!({"markdown": "Hi {{nonsense}}"}), "markdown"),
        (
            json!({"html_template": "<p>News from {{constituency.name}}</p>"}),
            "html_template",
        ),
    ] {
        let (status, answer) = error_code(patch(body.clone()).await.unwrap()).await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{body}"
        );
    }
    assert_eq!(app.db.dump().await, before);
    // HTML given, the Markdown goes.
    let html = patch(json!({"html_template": "<p>Plain {{contact.name}}</p>"}))
        .await
        .unwrap();
    assert_eq!(html.status(), StatusCode::OK);
    assert_eq!(
        app.db
            .store
            .campaign(id)
            .await
            .unwrap()
            .unwrap()
            .spec
            .markdown,
        None
    );

    // Its messages come from its own address.
    let sent = app
        .client
        .post(url(&format!("/{copy}/test")))
        .bearer_auth(&writer)
        .json(&json!({"to": ["organiser@party.example.org"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::OK);
    let message = sink.messages().remove(0);
    assert!(
        header(&message, "From:").contains("events@hertford.example.org"),
        "{message}"
    );
    assert!(header(&message, "Message-ID:").ends_with("@hertford.example.org>"));
}
