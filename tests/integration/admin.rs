//! The admin pages: projector lag and the blue/green rebuild button; dead letters with re-drive and discard.
//! Managers look, admins act, forms need the CSRF token, and a re-drive's effect is visible when the page returns.
//! HTTP calls run on the blocking pool: the actix thread must stay free to wake the projectors.

use crate::helpers::*;
use gatehouse::auth::Role;
use gatehouse::ingest::Received;
use gatehouse::journal::Actor;

#[test]
fn managers_see_projector_lag_and_admins_rebuild_while_pages_keep_serving() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let journal = site.paths().journal();
    let views = site.paths().views();
    with_server(site.config(), async |state, addr| {
        for n in 0..20 {
            let payload = format!(r#"{{"msg_id":"p{n}","direction":"in"}}"#);
            state
                .ingestor
                .ingest(Received::once(
                    "gatehouse/turnstile/T1/passage",
                    payload.as_bytes(),
                    jiff::Timestamp::now(),
                    Actor::gateway("test"),
                ))
                .await
                .unwrap();
        }
        let head = *state.committed.borrow();
        eventually("projectors caught up", || {
            // Checkpoint rows appear with a projector's first batch, so count them rather than take a MIN of none.
            let caught_up = format!(
                "SELECT COUNT(*) FROM projector_checkpoints WHERE position >= {head} AND projection NOT LIKE 'policy:%'"
            );
            query_i64(&views, &caught_up) as usize == gatehouse::projection::names().len()
        })
        .await;
        tokio::task::spawn_blocking(move || {
            let manager = Session::sign_in(&journal, addr, "mia", Role::Manager);
            let admin = Session::sign_in(&journal, addr, "ada", Role::Admin);
            let page = manager.get(addr, "/admin/projections");
            assert_eq!(page.status, 200);
            assert!(
                page.body.contains(&format!("position <strong>{head}</strong>")),
                "{}",
                page.body
            );
            assert!(page.body.contains("<td>traffic</td>"), "{}", page.body);
            assert!(page.body.contains("Only admins can rebuild projections."));
            assert_eq!(manager.post(addr, "/admin/projections/rebuild", "").status, 403);

            let headers = [
                ("Cookie", admin.cookie.as_str()),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ];
            let forged = http(addr, "POST", "/admin/projections/rebuild", &headers, "csrf=forged");
            assert_eq!(forged.status, 403);
            let started = admin.post(addr, "/admin/projections/rebuild", "");
            assert_eq!(
                (started.status, started.header("location")),
                (303, Some("/admin/projections"))
            );
            let mut done = String::new();
            for _ in 0..1000 {
                // Pages keep answering during the rebuild.
                assert_eq!(admin.get(addr, "/").status, 200);
                let page = admin.get(addr, "/admin/projections").body;
                if page.contains("rebuilt ") {
                    done = page;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            assert!(done.contains(&format!("traffic (to position {head})")), "{done}");
        })
        .await
        .unwrap();
    });
}

#[test]
fn an_admin_redrives_a_dead_letter_and_sees_its_effect_at_once() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |app| {
        let payload = br#"{"msg_id":"late","direction":"in","note":"<script>alert(1)</script>"}"#;
        app.state()
            .ingestor
            .ingest(Received::once(
                "gatehouse/turnstile/T9/passage",
                payload,
                jiff::Timestamp::now(),
                Actor::gateway("test"),
            ))
            .await
            .unwrap();
        app.state()
            .ingestor
            .ingest(Received::once(
                "gatehouse/turnstile/T1/passage",
                b"{garbage",
                jiff::Timestamp::now(),
                Actor::gateway("test"),
            ))
            .await
            .unwrap();
    });
    // The installer adds T9 and restarts.
    site.write_config(&format!(
        "{TWO_TURNSTILES_ONE_CAMERA}\n[[turnstile]]\nid = \"T9\"\nname = \"Late gate\"\nzone = \"Hall C\"\n"
    ));
    let journal = site.paths().journal();
    with_server(site.config(), async |_, addr| {
        tokio::task::spawn_blocking(move || {
            let manager = Session::sign_in(&journal, addr, "mia", Role::Manager);
            let admin = Session::sign_in(&journal, addr, "ada", Role::Admin);
            let page = manager.get(addr, "/admin/dead-letters");
            assert_eq!(page.status, 200);
            assert!(
                page.body.contains("<code>gatehouse/turnstile/T9/passage</code>"),
                "{}",
                page.body
            );
            assert!(
                !page.body.contains("<script>alert(1)</script>"),
                "device-sent text is escaped"
            );
            assert!(page.body.contains("&#60;script&#62;alert(1)"), "{}", page.body);
            assert!(!page.body.contains("Re-drive all"), "managers get no buttons");
            assert_eq!(manager.post(addr, "/admin/dead-letters/redrive", "id=1").status, 403);

            let redriven = admin.post(addr, "/admin/dead-letters/redrive", "id=1");
            assert_eq!(redriven.status, 303);
            let location = redriven.header("location").unwrap().to_owned();
            assert!(
                location.starts_with("/admin/dead-letters?notice=dead%20letter%201%20re-driven"),
                "{location}"
            );
            // Read-your-writes: the dashboard shows T9 online as soon as the action returned.
            let dashboard = admin.get(addr, "/").body;
            assert!(
                dashboard.contains(r#"class="tile online" id="device-T9""#),
                "{dashboard}"
            );
            let after = admin.get(addr, &location).body;
            assert!(after.contains("dead letter 1 re-driven: recorded 2 events"), "{after}");
            assert!(!after.contains("(the pages may be a moment behind)"), "{after}");
            assert!(!after.contains("id=\"letter-1\""), "the re-driven letter left the list");

            assert_eq!(admin.post(addr, "/admin/dead-letters/discard", "id=2").status, 303);
            let page = admin.get(addr, "/admin/dead-letters").body;
            assert!(
                page.contains("No dead letters: every message received so far became events."),
                "{page}"
            );
        })
        .await
        .unwrap();
    });
}

#[test]
fn the_dead_letters_page_lists_a_flood_a_hundred_at_a_time_newest_first() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        for n in 0..150 {
            let payload = format!("broken {n}");
            state
                .ingestor
                .ingest(Received::once(
                    "gatehouse/turnstile/T1/passage",
                    payload.as_bytes(),
                    jiff::Timestamp::now(),
                    // Senders of their own, each within its dead-letter quota.
                    Actor::gateway(&format!("gateway-{n}")),
                ))
                .await
                .unwrap();
        }
        let (_, first) = get(addr, "/admin/dead-letters").await;
        assert!(first.contains("150 waiting"), "{first}");
        assert_eq!(first.matches("<tr id=\"letter-").count(), 100);
        assert!(first.contains("<tr id=\"letter-150\">") && !first.contains("<tr id=\"letter-50\">"));
        let older = first
            .split("href=\"/admin/dead-letters?before=")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a link to older letters")
            .to_owned();
        let (_, second) = get(addr, &format!("/admin/dead-letters?before={older}")).await;
        assert_eq!(second.matches("<tr id=\"letter-").count(), 50);
        assert!(second.contains("<tr id=\"letter-1\">") && !second.contains("rel=\"next\""));
    });
}
