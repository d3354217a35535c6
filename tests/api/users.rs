//! `/api/users`: admins list, promote and demote; members get 403.

use crate::id;
use crate::start;

#[tokio::test]
async fn admins_list_users_and_members_get_403() {
    let (_db, app) = start().await;
    let (admin, admin_user) = app.register("admin@example.org").await;
    let (member, member_user) = app.register("member@example.org").await;

    let r = app.get("/api/users", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let users = r.body.as_array().unwrap();
    assert_eq!(users, &vec![admin_user.clone(), member_user.clone()]);
    assert!(users.iter().all(|u| u.get("password_hash").is_none()));

    let r = app.get("/api/users", Some(&member)).await;
    assert_eq!((r.status, r.detail()), (403, "Admin access required"));
    let r = app.get("/api/users", None).await;
    assert_eq!(r.status, 401);
    for path in ["promote", "demote"] {
        let r = app
            .put(
                &format!("/api/users/{}/{path}", id(&admin_user)),
                None,
                Some(&member),
            )
            .await;
        assert_eq!(
            (r.status, r.detail()),
            (403, "Admin access required"),
            "{path}"
        );
    }
    // The refused demotion changed nothing.
    let me = app.get("/api/auth/me", Some(&admin)).await;
    assert_eq!(me.body["role"], "admin");
}

#[tokio::test]
async fn an_admin_promotes_and_demotes_but_not_themselves() {
    let (_db, app) = start().await;
    let (admin, admin_user) = app.register("admin@example.org").await;
    let (member, member_user) = app.register("member@example.org").await;
    let member_id = id(&member_user);

    let r = app
        .put(
            &format!("/api/users/{member_id}/promote"),
            None,
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.str("message").contains("promoted"));
    assert_eq!(
        app.get("/api/auth/me", Some(&member)).await.body["role"],
        "admin"
    );
    // The promoted user can now use admin routes.
    assert_eq!(app.get("/api/users", Some(&member)).await.status, 200);

    let r = app
        .put(
            &format!("/api/users/{}/demote", id(&admin_user)),
            None,
            Some(&admin),
        )
        .await;
    assert_eq!((r.status, r.detail()), (400, "Cannot demote yourself"));
    assert_eq!(
        app.get("/api/auth/me", Some(&admin)).await.body["role"],
        "admin"
    );

    let r = app
        .put(
            &format!("/api/users/{member_id}/demote"),
            None,
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.str("message").contains("demoted"));
    assert_eq!(
        app.get("/api/auth/me", Some(&member)).await.body["role"],
        "member"
    );
    assert_eq!(app.get("/api/users", Some(&member)).await.status, 403);
}

#[tokio::test]
async fn unknown_and_malformed_user_ids_are_404() {
    let (_db, app) = start().await;
    let (admin, _) = app.register("admin@example.org").await;
    for path in ["promote", "demote"] {
        for user_id in [
            "6574a5b2c3d4e5f60718293a",
            "not-an-id",
            "6574a5b2c3d4e5f60718293",
        ] {
            let r = app
                .put(&format!("/api/users/{user_id}/{path}"), None, Some(&admin))
                .await;
            assert_eq!(
                (r.status, r.detail()),
                (404, "User not found"),
                "{path} {user_id}"
            );
        }
    }
}

/// Two admins demoting each other at the same moment: each request saw its caller as an
/// admin, so a check on the caller alone lets both through and leaves no admin at all.
/// At least one admin must remain whatever the interleaving, and the refused demotion
/// answers 400 with a `detail` that says why.
#[tokio::test]
async fn the_last_admin_cannot_be_demoted_even_by_simultaneous_demotions() {
    use crate::support::{count, set};
    use bson::doc;

    let (_db, app) = start().await;
    let (a, a_user) = app.register("admin-a@example.org").await;
    let (b, b_user) = app.register("admin-b@example.org").await;
    let (a_id, b_id) = (id(&a_user), id(&b_user));
    for round in 0..8 {
        // Both admins again.
        for uid in [&a_id, &b_id] {
            let oid = bson::oid::ObjectId::parse_str(uid).unwrap();
            set(&app, "users", doc! { "_id": oid }, doc! { "role": "admin" }).await;
        }
        let (demote_b, demote_a) = (
            format!("/api/users/{b_id}/demote"),
            format!("/api/users/{a_id}/demote"),
        );
        let (ra, rb) = tokio::join!(
            app.put(&demote_b, None, Some(&a)),
            app.put(&demote_a, None, Some(&b)),
        );
        let admins = count(&app, "users", doc! { "role": "admin" }).await;
        assert!(
            admins >= 1,
            "round {round}: no admin left ({} {}, {} {})",
            ra.status,
            ra.body,
            rb.status,
            rb.body
        );
        for r in [&ra, &rb] {
            assert!(
                matches!(r.status, 200 | 400 | 403),
                "round {round}: {} {}",
                r.status,
                r.body
            );
            if r.status == 400 {
                assert!(r.detail().contains("last admin"), "{}", r.body);
            }
        }
    }
}
