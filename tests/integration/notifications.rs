//! Alarm notifications end to end, with real receivers: a watched subject recognized over MQTT reaches a signed
//! webhook and an inbox; a receiver that fails and then recovers gets the same notification id; 410 switches a
//! channel off until an admin switches it on; a SIGKILL between the alarm and its delivery delays it, with the
//! same id; a thousand sightings make one alarm and one notification (cooldown); quiet hours hold back a major
//! alarm and let a critical one through; an unacknowledged critical alarm is escalated until acknowledged; a
//! flapping alarm is told one change per cooldown, and a change that waited is told if the receiver still needs it
//! (an acknowledgement taken back by a return included).

use crate::helpers::*;
use crate::receivers::*;
use gatehouse::requests::OperatorCommand;

fn webhook(receiver: &WebhookReceiver, extra: &str) -> String {
    format!(
        "\n[[notify.webhook]]\nname = \"ops\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n{extra}\n",
        receiver.url()
    )
}

fn watch(site: &Site, subject: &str, severity: &str) {
    let added = site.gatehouse(&["watch", "add", subject, "--list", "banned", "--severity", severity]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
}

async fn recognize(port: u16, subject: &str, count: usize) {
    let subject = subject.to_owned();
    tokio::task::spawn_blocking(move || {
        let lines: Vec<String> = (0..count)
            .map(|n| format!(r#"{{"msg_id":"{subject}-{n}","subject":"{subject}","confidence":0.95}}"#))
            .collect();
        mosquitto_pub_lines(port, "gatehouse/camera/C1/recognition", &lines)
    })
    .await
    .unwrap();
}

async fn step(state: &gatehouse::web::AppState, alarm: &str, what: &str) {
    gatehouse::requests::carry_out(
        &state.registry,
        &state.vault,
        &OperatorCommand::alarm(alarm, what, None).unwrap(),
        gatehouse::journal::Actor::user("cleo"),
        None,
    )
    .await
    .unwrap();
}

/// A rotation of T1 while a manager has it locked out: a critical alarm.
async fn forced_passage(state: &gatehouse::web::AppState, port: u16) {
    gatehouse::requests::carry_out(
        &state.registry,
        &state.vault,
        &OperatorCommand::lock_out("T1", "wet floor").unwrap(),
        gatehouse::journal::Actor::user("cleo"),
        None,
    )
    .await
    .unwrap();
    tokio::task::spawn_blocking(move || {
        mosquitto_pub_lines(
            port,
            "gatehouse/turnstile/T1/passage",
            &[r#"{"msg_id":"forced","direction":"in"}"#.to_owned()],
        )
    })
    .await
    .unwrap();
}

/// A site whose webhook channel has an 8 s cooldown, with P-9 watched (major): where an alarm can flap.
fn flapping_site(receiver: &WebhookReceiver, port: u16) -> Site {
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("{TWO_TURNSTILES_ONE_CAMERA}{}", webhook(receiver, "cooldown = \"8s\"")),
    );
    watch(&site, "P-9", "major");
    site
}

/// P-9 recognized once more, as message `msg_id`.
async fn seen_again(port: u16, msg_id: &str) {
    let line = format!(r#"{{"msg_id":"{msg_id}","subject":"P-9","confidence":0.95}}"#);
    tokio::task::spawn_blocking(move || mosquitto_pub_lines(port, "gatehouse/camera/C1/recognition", &[line]))
        .await
        .unwrap();
}

/// What the receiver was told, in order: each notification's type and the alarm state it carried.
fn told(receiver: &WebhookReceiver) -> Vec<String> {
    receiver
        .delivered()
        .iter()
        .map(|h| format!("{} {}", h.body["type"], h.body["data"]["state"]))
        .collect()
}

fn rows(site: &Site, sql: &str) -> Vec<String> {
    dump(&rusqlite::Connection::open(site.paths().journal()).unwrap(), sql)
}

#[test]
fn a_watched_subject_seen_over_mqtt_reaches_a_signed_webhook_and_an_inbox_once_per_cooldown() {
    let (receiver, smtp) = (WebhookReceiver::start(), SmtpReceiver::start());
    let port = free_port();
    let channels = webhook(&receiver, "cooldown = \"1h\"")
        + &format!(
            "\n[[notify.email]]\nname = \"desk\"\nsmtp = \"smtp+plain://127.0.0.1:{}\"\n\
             from = \"gatehouse@example.org\"\nto = [\"desk@example.org\"]\nmin_severity = \"major\"\n",
            smtp.port
        );
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("{TWO_TURNSTILES_ONE_CAMERA}{channels}"),
    );
    watch(&site, "P-1042", "critical");
    with_server(site.config(), async |state, addr| {
        recognize(port, "P-1042", 1).await;
        eventually("the webhook is delivered", || receiver.delivered().len() == 1).await;
        let hook = &receiver.delivered()[0];
        assert!(hook.signature_valid, "{hook:?}");
        assert!(hook.id.starts_with("msg_ops_"), "{hook:?}");
        assert!((hook.timestamp - jiff::Timestamp::now().as_second()).abs() < 60);
        assert_eq!(hook.body["type"], "alarm.raised");
        let data = &hook.body["data"];
        assert_eq!(
            (&data["alarm"], &data["alarm_type"], &data["severity"], &data["source"]),
            (
                &"A-000001".into(),
                &"watched_subject_seen".into(),
                &"critical".into(),
                &"subject P-1042".into()
            )
        );
        assert_eq!(
            (&data["state"], &data["count"]),
            (&"active_unacknowledged".into(), &1.into())
        );
        assert_eq!(data["site"], "Test Station");
        eventually("the e-mail arrives", || smtp.mails().len() == 1).await;
        let mail = &smtp.mails()[0];
        for part in [
            "Subject: [CRITICAL] A-000001 raised: watched subject seen (subject P-1042)",
            "To: desk@example.org",
            "From: gatehouse@example.org",
            "Content-Type: text/plain",
            "Content-Type: text/html",
            "Message-ID: <msg_desk_",
        ] {
            assert!(mail.contains(part), "{part:?} in {mail}");
        }

        // 999 more sightings: one alarm counting 1,000, and nothing more sent within the cooldown.
        recognize(port, "P-1042", 1000).await;
        settle(state).await;
        let (_, alarms) = get(addr, "/alarms?format=csv").await;
        let alarms: Vec<&str> = alarms.lines().collect();
        assert_eq!(alarms.len(), 2, "{alarms:?}");
        assert!(alarms[1].ends_with(",1000"), "{alarms:?}");
        assert_eq!(
            rows(
                &site,
                "SELECT channel, reason, status FROM notification_deliveries ORDER BY channel"
            ),
            ["desk|raised|delivered", "ops|raised|delivered"]
        );

        // Acknowledging is news whatever the cooldown.
        step(state, "A-000001", "ack").await;
        eventually("the acknowledgement is delivered", || receiver.delivered().len() == 2).await;
        let ack = &receiver.delivered()[1];
        assert_eq!(ack.body["type"], "alarm.acknowledged");
        assert_eq!(ack.body["data"]["acknowledged_by"], "user:cleo");
        assert_eq!(ack.body["data"]["count"], 1000);
        assert_ne!(ack.id, hook.id);
        assert!(receiver.hooks().iter().all(|h| h.signature_valid));
        assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_owned()));
    });
}

#[test]
fn a_flapping_alarm_is_told_one_change_per_cooldown_and_what_waits_is_told_if_still_needed() {
    let (receiver, port) = (WebhookReceiver::start(), free_port());
    let site = flapping_site(&receiver, port);
    with_server(site.config(), async |state, addr| {
        recognize(port, "P-9", 1).await;
        eventually("the alarm is told", || receiver.delivered().len() == 1).await;
        // An alarm cleared soon after it was raised is told so at once.
        step(state, "A-000001", "clear").await;
        eventually("the clear is told at once", || receiver.delivered().len() == 2).await;
        // Then it flaps within the cooldown of that clear: back (within reopen_within: the same alarm), cleared.
        seen_again(port, "again-1").await;
        settle(state).await;
        step(state, "A-000001", "clear").await;
        settle(state).await;
        // The return waited, then told the clear that followed it; when the cooldown ended the receiver, told
        // "cleared", needed nothing: the flap was never sent.
        eventually("the deferred change is dropped as unneeded", || {
            rows(
                &site,
                "SELECT reason, status FROM notification_deliveries ORDER BY rowid",
            ) == ["raised|delivered", "cleared|delivered", "cleared|unneeded"]
        })
        .await;
        assert_eq!(told(&receiver).len(), 2);
        // Back after the cooldown: told at once. Cleared right after: deferred, and told when the cooldown ends,
        // because the receiver last heard "active".
        seen_again(port, "again-2").await;
        eventually("the return after the cooldown is told at once", || {
            receiver.delivered().len() == 3
        })
        .await;
        step(state, "A-000001", "clear").await;
        settle(state).await;
        let (_, page) = get(addr, "/admin/notifications?status=deferred").await;
        let rows = page.split("<tbody>").nth(2).unwrap_or_default();
        assert!(
            rows.contains("<td>deferred</td>") && rows.contains("if still needed (cooldown)"),
            "{page}"
        );
        assert!(!rows.contains("Re-send"), "nothing deferred can be re-sent: {page}");
        eventually("the deferred clear goes once the cooldown ends", || {
            receiver.delivered().len() == 4
        })
        .await;
        assert_eq!(
            told(&receiver),
            [
                r#""alarm.raised" "active_unacknowledged""#,
                r#""alarm.cleared" "cleared_unacknowledged""#,
                r#""alarm.reactivated" "active_unacknowledged""#,
                r#""alarm.cleared" "cleared_unacknowledged""#
            ]
        );
        assert!(receiver.hooks().iter().all(|h| h.signature_valid));
    });
}

#[test]
fn a_return_within_the_cooldown_that_took_the_acknowledgement_back_is_told_when_it_ends() {
    let (receiver, port) = (WebhookReceiver::start(), free_port());
    let site = flapping_site(&receiver, port);
    with_server(site.config(), async |state, _addr| {
        recognize(port, "P-9", 1).await;
        eventually("the alarm is told", || receiver.delivered().len() == 1).await;
        step(state, "A-000001", "ack").await;
        step(state, "A-000001", "clear").await;
        eventually("the acknowledgement and the clear are told", || {
            receiver.delivered().len() == 3
        })
        .await;
        // Back within the cooldown (which takes the acknowledgement back), cleared again: the receiver last
        // heard "cleared, acknowledged"; the alarm is now "cleared, unacknowledged", which it must hear.
        seen_again(port, "back").await;
        settle(state).await;
        step(state, "A-000001", "clear").await;
        eventually("the waiting change is told when the cooldown ends", || {
            receiver.delivered().len() == 4
        })
        .await;
        assert_eq!(
            told(&receiver),
            [
                r#""alarm.raised" "active_unacknowledged""#,
                r#""alarm.acknowledged" "active_acknowledged""#,
                r#""alarm.cleared" "cleared_acknowledged""#,
                r#""alarm.cleared" "cleared_unacknowledged""#
            ]
        );
    });
}

#[test]
fn a_receiver_that_fails_then_recovers_gets_the_notification_with_the_same_id() {
    let receiver = WebhookReceiver::start();
    receiver.answer(Answer::Status(500));
    let port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("{TWO_TURNSTILES_ONE_CAMERA}{}", webhook(&receiver, "")),
    );
    watch(&site, "P-7", "major");
    with_server(site.config(), async |_state, addr| {
        recognize(port, "P-7", 1).await;
        eventually("two attempts answered 500", || receiver.hooks().len() >= 2).await;
        let (status, health) = get(addr, "/healthz").await;
        assert_eq!(status, 200, "{health}");
        assert!(
            health.starts_with("degraded: notification channel ops: cannot deliver:") && health.contains("500"),
            "{health}"
        );
        let (_, page) = get(addr, "/admin/notifications").await;
        assert!(page.contains("cannot deliver"), "{page}");
        assert!(page.contains(">pending<"), "{page}");
        // Down: it hangs up without an answer.
        receiver.answer(Answer::HangUp);
        let before = receiver.hooks().len();
        eventually("an attempt while it is down", || receiver.hooks().len() > before).await;
        receiver.answer(Answer::Status(204));
        eventually("delivered once it is back", || receiver.delivered().len() == 1).await;
        let hooks = receiver.hooks();
        assert!(hooks.len() >= 4, "{hooks:?}");
        assert!(
            hooks.iter().all(|h| h.id == hooks[0].id && h.signature_valid),
            "{hooks:?}"
        );
        // Each attempt is signed afresh: its own timestamp (the retries span seconds), signature valid for it.
        assert!(hooks.windows(2).all(|w| w[0].timestamp <= w[1].timestamp), "{hooks:?}");
        assert!(hooks[hooks.len() - 1].timestamp > hooks[0].timestamp, "{hooks:?}");
        let recorded = [format!("delivered|{}", hooks.len())];
        eventually("the delivery is recorded with every attempt", || {
            rows(&site, "SELECT status, attempts FROM notification_deliveries") == recorded
        })
        .await;
        let mut health = get(addr, "/healthz").await;
        for _ in 0..500 {
            if health.1 == "ok\n" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            health = get(addr, "/healthz").await;
        }
        assert_eq!(health, (200, "ok\n".to_owned()), "healthy again once delivered");
    });
}

#[test]
fn a_receiver_that_answers_410_switches_the_channel_off_until_an_admin_switches_it_on() {
    let receiver = WebhookReceiver::start();
    receiver.answer(Answer::Status(410));
    let port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("{TWO_TURNSTILES_ONE_CAMERA}{}", webhook(&receiver, "")),
    );
    watch(&site, "P-1", "minor");
    watch(&site, "P-2", "minor");
    with_server(site.config(), async |state, addr| {
        recognize(port, "P-1", 1).await;
        eventually("the receiver said 410", || receiver.hooks().len() == 1).await;
        let journal = state.paths.journal();
        let admin =
            tokio::task::spawn_blocking(move || Session::sign_in(&journal, addr, "ada", gatehouse::auth::Role::Admin))
                .await
                .unwrap();
        eventually("the page says it is off", || {
            admin
                .get(addr, "/admin/notifications")
                .body
                .contains("switched off by its receiver")
        })
        .await;
        // Another alarm waits while the channel is off.
        recognize(port, "P-2", 1).await;
        settle(state).await;
        assert_eq!(
            rows(
                &site,
                "SELECT alarm, status FROM notification_deliveries ORDER BY alarm"
            ),
            ["A-000001|pending", "A-000002|pending"]
        );
        assert_eq!(receiver.hooks().len(), 1);
        let (_, health) = get(addr, "/healthz").await;
        assert!(
            health.contains("degraded: notification channel ops: switched off"),
            "{health}"
        );

        receiver.answer(Answer::Status(200));
        let switched = admin.post(addr, "/admin/notifications/enable", "channel=ops");
        assert_eq!(switched.status, 303);
        assert!(
            switched.header("location").unwrap().contains("switched%20on"),
            "{switched:?}"
        );
        eventually("both delivered", || receiver.delivered().len() == 2).await;
        let first_id = receiver.hooks()[0].id.clone();
        assert!(receiver.delivered().iter().any(|h| h.id == first_id));
        // An admin re-sends one: the same id again.
        let resent = admin.post(addr, "/admin/notifications/resend", &format!("id={first_id}"));
        assert_eq!(resent.status, 303);
        eventually("re-sent", || receiver.delivered().len() == 3).await;
        assert_eq!(receiver.delivered()[2].id, first_id);
        let csv = admin.get(addr, "/admin/notifications?format=csv").body;
        assert!(
            csv.starts_with("id,channel,alarm,reason,severity,status,attempts,"),
            "{csv}"
        );
        assert_eq!(csv.lines().count(), 3, "{csv}");
    });
}

#[test]
fn a_notification_cut_off_by_sigkill_is_delivered_after_the_restart_with_the_same_id() {
    let receiver = WebhookReceiver::start();
    receiver.answer(Answer::Status(503));
    let port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("{TWO_TURNSTILES_ONE_CAMERA}{}", webhook(&receiver, "")),
    );
    watch(&site, "P-9", "critical");
    let mut server = site.spawn_serve();
    wait_for_port(port);
    mosquitto_pub_lines(
        port,
        "gatehouse/camera/C1/recognition",
        &[r#"{"msg_id":"r1","subject":"P-9","confidence":0.9}"#.to_owned()],
    );
    for _ in 0..1000 {
        if !receiver.hooks().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let attempted = receiver.hooks();
    assert!(!attempted.is_empty(), "the alarm was attempted before the kill");
    server.kill().unwrap();
    server.wait().unwrap();
    receiver.answer(Answer::Status(200));
    let mut server = site.spawn_serve();
    for _ in 0..1500 {
        if !receiver.delivered().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = server.kill();
    let _ = server.wait();
    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), 1, "{:?}", receiver.hooks());
    assert_eq!(delivered[0].id, attempted[0].id);
    assert!(delivered[0].signature_valid);
}

#[test]
fn quiet_hours_hold_back_a_major_alarm_and_let_a_critical_one_through() {
    // Quiet from an hour ago to two hours on, in the site's time.
    let now = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::get("Europe/Berlin").unwrap());
    let from = now
        .checked_sub(jiff::Span::new().hours(1))
        .unwrap()
        .strftime("%H:%M")
        .to_string();
    let until = now.checked_add(jiff::Span::new().hours(2)).unwrap();
    let quiet = format!("quiet_hours = \"{from}-{}\"", until.strftime("%H:%M"));
    let receiver = WebhookReceiver::start();
    let port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("{TWO_TURNSTILES_ONE_CAMERA}{}", webhook(&receiver, &quiet)),
    );
    watch(&site, "P-5", "major");
    with_server(site.config(), async |state, addr| {
        recognize(port, "P-5", 1).await;
        forced_passage(state, port).await;
        eventually("the critical alarm is delivered", || receiver.delivered().len() == 1).await;
        assert_eq!(receiver.delivered()[0].body["data"]["alarm_type"], "forced_passage");
        settle(state).await;
        let held = rows(
            &site,
            "SELECT alarm, severity, status, held_for, next_attempt_at FROM notification_deliveries \
             WHERE status = 'pending'",
        );
        assert_eq!(held.len(), 1, "{held:?}");
        let expected_end = until.with().second(0).subsec_nanosecond(0).build().unwrap();
        assert_eq!(
            held[0],
            format!(
                "A-000001|major|pending|quiet hours|{}",
                expected_end.timestamp().as_millisecond()
            )
        );
        let (_, page) = get(addr, "/admin/notifications").await;
        assert!(page.contains("(quiet hours)"), "{page}");
        assert_eq!(receiver.hooks().len(), 1);
    });
}

#[test]
fn an_unacknowledged_critical_alarm_is_escalated_until_someone_acknowledges_it() {
    let receiver = WebhookReceiver::start();
    let port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!(
            "{TWO_TURNSTILES_ONE_CAMERA}\n[alarms]\nrepeat = \"1s\"\n{}",
            webhook(&receiver, "")
        ),
    );
    watch(&site, "P-3", "critical");
    with_server(site.config(), async |state, _addr| {
        recognize(port, "P-3", 1).await;
        eventually("raised and escalated twice", || receiver.delivered().len() >= 3).await;
        let hooks = receiver.delivered();
        assert_eq!(hooks[0].body["type"], "alarm.raised");
        assert_eq!(hooks[1].body["type"], "alarm.escalated");
        assert_eq!(hooks[1].id, "msg_ops_A-000001_e1");
        assert_eq!(hooks[2].id, "msg_ops_A-000001_e2");
        assert_eq!(hooks[1].body["data"], hooks[0].body["data"]);
        step(state, "A-000001", "ack").await;
        eventually("the acknowledgement is delivered", || {
            receiver
                .delivered()
                .iter()
                .any(|h| h.body["type"] == "alarm.acknowledged")
        })
        .await;
        let sent = receiver.delivered().len();
        // Three escalation periods later, nothing more.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        assert_eq!(receiver.delivered().len(), sent, "{:?}", receiver.delivered());
    });
}

#[test]
fn e_mail_goes_over_starttls_and_smtps_and_never_in_the_clear_to_a_server_without_starttls() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca_and_server_cert(certs.path());
    let starttls = SmtpReceiver::start_with(SmtpTls::StartTls { cert: &cert, key: &key });
    let smtps = SmtpReceiver::start_with(SmtpTls::Implicit { cert: &cert, key: &key });
    let clear = SmtpReceiver::start();
    let port = free_port();
    let channel = |name: &str, url: String| {
        format!(
            "\n[[notify.email]]\nname = \"{name}\"\nsmtp = \"{url}\"\nca_file = \"{}\"\n\
             from = \"gatehouse@example.org\"\nto = [\"{name}@example.org\"]\n",
            ca.display()
        )
    };
    let channels = channel("starttls", format!("smtp://localhost:{}", starttls.port))
        + &channel("smtps", format!("smtps://localhost:{}", smtps.port))
        // smtp:// requires STARTTLS: a server that does not offer it gets nothing.
        + &channel("strict", format!("smtp://localhost:{}", clear.port));
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("{TWO_TURNSTILES_ONE_CAMERA}{channels}"),
    );
    watch(&site, "P-1042", "critical");
    with_server(site.config(), async |_state, addr| {
        recognize(port, "P-1042", 1).await;
        eventually("both TLS inboxes have the mail", || {
            starttls.mails().len() == 1 && smtps.mails().len() == 1
        })
        .await;
        assert!(starttls.mails()[0].contains("To: starttls@example.org"));
        assert!(smtps.mails()[0].contains("To: smtps@example.org"));
        eventually("the strict channel reports why it cannot deliver", || {
            rows(
                &site,
                "SELECT status, last_error FROM notification_deliveries WHERE channel = 'strict' AND attempts > 0",
            )
            .iter()
            .any(|row| row.starts_with("pending|") && row.to_lowercase().contains("tls"))
        })
        .await;
        assert!(clear.mails().is_empty(), "nothing was sent in the clear");
        let (status, health) = get(addr, "/healthz").await;
        assert_eq!(status, 200);
        assert!(health.starts_with("degraded: notification channel strict"), "{health}");
    });
}
