//! Compatibility with what the old service (FastAPI + Motor, Python) left behind: its
//! password hashes, its tokens (and ours verify there), and its documents (naive dates,
//! ISO strings, `role` missing, optional fields null, unknown fields).

use aila_api::repo::users::{self, insert_raw};
use bson::{Bson, Document, doc, oid::ObjectId};
use mongodb::Collection;
use serde_json::json;

use crate::start;

/// Made with Python's `bcrypt` 5.0.0:
/// `bcrypt.hashpw(b"AncienMotDePasse1", bcrypt.gensalt(12)).decode()`.
const OLD_HASH: &str = "$2b$12$o56bA2we5Dh4lZWcKcDNDuV88lNFNTMQAuS2/6/cYEofzYJQWFYiq";
const OLD_PASSWORD: &str = "AncienMotDePasse1";
const OLD_USER_ID: &str = "65f1a2b3c4d5e6f708192a3b";
/// Made with PyJWT 2.15.1, as the old service made its tokens:
/// `jwt.encode({"user_id": "65f1a2b3c4d5e6f708192a3b", "exp": 4102444800, "iat": 1710000000},
/// "test-secret-for-the-harness", algorithm="HS256")` (expires in 2100).
const PYJWT_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoiNjVmMWEyYjNjNGQ1ZTZmNzA4MTkyYTNiIiwiZXhwIjo0MTAyNDQ0ODAwLCJpYXQiOjE3MTAwMDAwMDB9.rgfsSE_6oO3xsz23stFU7X1OLEzBhqfUHnfzZuSKM8Y";

/// A user document as the old service wrote it: `datetime.utcnow()` (naive, stored as a
/// BSON date), an older ISO string without offset, no `role`, a null last name.
fn old_user(id: ObjectId, email: &str) -> Document {
    doc! {
        "_id": id,
        "email": email,
        "password_hash": OLD_HASH,
        "first_name": "Karim",
        "last_name": Bson::Null,
        "gdpr_consent": true,
        "gdpr_consent_date": "2024-03-01T10:20:30.123456",
        "created_at": bson::DateTime::from_millis(1_709_288_430_123),
    }
}

#[tokio::test]
async fn an_old_user_logs_in_with_a_python_bcrypt_hash() {
    let (db, app) = start().await;
    let gw = &app.app().context().gateway;
    let id = ObjectId::parse_str(OLD_USER_ID).unwrap();
    insert_raw(gw, old_user(id, "Karim.Old@example.org"))
        .await
        .unwrap();

    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "Karim.Old@example.org", "password": OLD_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let user = &r.body["user"];
    assert_eq!(user["id"], OLD_USER_ID);
    assert_eq!(user["role"], "member");
    assert_eq!(user["first_name"], "Karim");
    assert_eq!(user["last_name"], "");
    assert_eq!(user["created_at"], "2024-03-01T10:20:30.123000Z");
    assert_eq!(user["gdpr_consent_date"], "2024-03-01T10:20:30.123000Z");
    let me = app.get("/api/auth/me", Some(r.str("access_token"))).await;
    assert_eq!(&me.body, user);

    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "Karim.Old@example.org", "password": "ancienmotdepasse1"}),
            None,
        )
        .await;
    assert_eq!((r.status, r.detail()), (401, "Invalid email or password"));

    // An old admin lists users, old documents included.
    let mut admin = old_user(ObjectId::new(), "old.admin@example.org");
    admin.insert("role", "admin");
    admin.remove("created_at");
    insert_raw(gw, admin).await.unwrap();
    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "old.admin@example.org", "password": OLD_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["user"]["created_at"], serde_json::Value::Null);
    let users = app.get("/api/users", Some(r.str("access_token"))).await;
    assert_eq!(users.status, 200, "{}", users.body);
    assert_eq!(users.body.as_array().unwrap().len(), 2);

    // The case the old service kept does not matter any more once the service has started
    // on those documents (it lower-cases stored emails once): login and "taken" alike.
    let restarted = crate::common::spawn_app_with(&db.url(), &[("DB_NAME", &app.db_name)]).await;
    restarted.wait_ready().await;
    let app = restarted;
    let gw = &app.app().context().gateway;
    crate::common::wait_until("stored emails lower-cased", || async {
        users::find_by_email(gw, "karim.old@example.org")
            .await
            .unwrap()
            .is_some_and(|u| u.email == "karim.old@example.org")
    })
    .await;
    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "karim.old@EXAMPLE.org", "password": OLD_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["user"]["id"], OLD_USER_ID);
    let r = app
        .post(
            "/api/auth/register",
            json!({"email": "karim.old@example.org", "password": "Password123!", "first_name": "K",
                   "last_name": "O", "gdpr_consent": true}),
            None,
        )
        .await;
    assert_eq!((r.status, r.detail()), (400, "Email already registered"));
}

#[tokio::test]
async fn a_token_made_by_pyjwt_is_accepted() {
    let (_db, app) = start().await;
    let gw = &app.app().context().gateway;
    insert_raw(
        gw,
        old_user(
            ObjectId::parse_str(OLD_USER_ID).unwrap(),
            "karim@example.org",
        ),
    )
    .await
    .unwrap();
    let r = app.get("/api/auth/me", Some(PYJWT_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], OLD_USER_ID);
    assert_eq!(r.body["email"], "karim@example.org");
}

#[tokio::test]
async fn a_token_issued_here_verifies_with_pyjwt() {
    let (_db, app) = start().await;
    let (token, user) = app.register("ada@example.org").await;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, jwt; c = jwt.decode(sys.argv[1], sys.argv[2], algorithms=['HS256']); \
             print(c['user_id'], c['exp'] - c['iat'])",
        )
        .arg(&token)
        .arg("test-secret-for-the-harness")
        .output()
        .expect("python3 runs (pip install pyjwt bcrypt)");
    assert!(
        out.status.success(),
        "PyJWT refused our token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("{} {}", user["id"].as_str().unwrap(), 7 * 24 * 3600)
    );

    // And a tampered one is refused there too (the check above can fail).
    let mut tampered = token.clone();
    tampered.push('x');
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sys, jwt; jwt.decode(sys.argv[1], sys.argv[2], algorithms=['HS256'])")
        .arg(&tampered)
        .arg("test-secret-for-the-harness")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn old_person_and_link_documents_read_and_delete_cleanly() {
    let (_db, app) = start().await;
    let gw = &app.app().context().gateway;
    let owner = ObjectId::parse_str(OLD_USER_ID).unwrap();
    insert_raw(gw, old_user(owner, "karim@example.org"))
        .await
        .unwrap();
    let (p1, p2) = (ObjectId::new(), ObjectId::new());
    let persons = vec![
        doc! {
            "_id": p1, "user_id": OLD_USER_ID, "first_name": "Fatima", "last_name": "Benali",
            "photo": Bson::Null, "notes": Bson::Null, "algerian_branch": "Kabylie",
            "created_at": "2023-11-05T08:09:10.654321",
        },
        doc! {
            "_id": p2, "user_id": OLD_USER_ID, "first_name": "Ali", "last_name": "Benali",
            "gender": "male", "birth_date": "1950", "is_preview": false,
            "created_at": bson::DateTime::from_millis(1_699_171_750_000),
        },
    ];
    gw.run(
        "insert_many",
        "persons",
        |c: Collection<Document>| async move { c.insert_many(persons).await.map(|_| ()) },
    )
    .await
    .unwrap();
    let link = doc! {
        "_id": ObjectId::new(), "user_id": OLD_USER_ID, "person_id_1": p1.to_hex(),
        "person_id_2": p2.to_hex(), "link_type": "parent",
        "created_at": "2023-11-05T08:09:11.000001",
    };
    gw.run(
        "insert_one",
        "family_links",
        |c: Collection<Document>| async move { c.insert_one(link).await.map(|_| ()) },
    )
    .await
    .unwrap();

    let tree = app.get("/api/tree", Some(PYJWT_TOKEN)).await;
    assert_eq!(tree.status, 200, "{}", tree.body);
    let persons = tree.body["persons"].as_array().unwrap();
    assert_eq!(persons.len(), 2);
    let fatima = persons
        .iter()
        .find(|p| p["first_name"] == "Fatima")
        .unwrap();
    assert_eq!(fatima["gender"], "unknown");
    assert_eq!(fatima["photo"], serde_json::Value::Null);
    assert_eq!(fatima["is_preview"], false);
    assert_eq!(fatima["created_at"], "2023-11-05T08:09:10.654000Z");
    assert!(fatima.get("algerian_branch").is_none());
    assert_eq!(tree.body["links"][0]["person_id_1"], p1.to_hex());
    assert_eq!(
        tree.body["links"][0]["created_at"],
        "2023-11-05T08:09:11.000000Z"
    );

    let r = app
        .delete(&format!("/api/persons/{}", p1.to_hex()), Some(PYJWT_TOKEN))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tree = app.get("/api/tree", Some(PYJWT_TOKEN)).await;
    assert_eq!(tree.body["links"], json!([]));
    assert_eq!(tree.body["persons"].as_array().unwrap().len(), 1);
}

/// The old front end never logs out: its tokens (PyJWT's, seconds only) keep working until
/// their user logs out somewhere, then they are revoked with the rest.
#[tokio::test]
async fn a_pyjwt_token_works_until_its_user_logs_out() {
    let (_db, app) = start().await;
    let gw = &app.app().context().gateway;
    let id = ObjectId::parse_str(OLD_USER_ID).unwrap();
    insert_raw(gw, old_user(id, "karim@example.org"))
        .await
        .unwrap();
    assert_eq!(app.get("/api/auth/me", Some(PYJWT_TOKEN)).await.status, 200);
    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "karim@example.org", "password": OLD_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Logging in elsewhere revokes nothing.
    assert_eq!(app.get("/api/auth/me", Some(PYJWT_TOKEN)).await.status, 200);
    let fresh = r.str("access_token").to_string();
    let r = app
        .request("POST", "/api/auth/logout", None, Some(&fresh))
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = app.get("/api/auth/me", Some(PYJWT_TOKEN)).await;
    assert_eq!((r.status, r.detail()), (401, "Token revoked"));
}
