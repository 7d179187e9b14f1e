//! The browser walkthrough: the real server (the binary), a real MQTT publisher and Debian's Chromium driven by
//! playwright-core (`tests/browser/walkthrough.mjs`): sign-in, a live tile, the traffic CSV, a lock-out the gateway
//! hears, a work order's steps, and the critical-alarm banner appearing without a reload until acknowledged.
//! Screenshots land in `target/screenshots/`.

use crate::helpers::*;
use std::process::Command;

#[test]
fn a_manager_signs_in_sees_a_tile_change_downloads_the_traffic_csv_locks_a_turnstile_out_resolves_a_work_order_and_acknowledges_an_alarm()
 {
    clear_of_local_midnight();
    let mqtt_port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{mqtt_port}\""),
        TWO_TURNSTILES_ONE_CAMERA,
    );
    let http_port = free_port();
    let config = std::fs::read_to_string(site.config_path()).unwrap();
    std::fs::write(
        site.config_path(),
        config.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{http_port}\""),
        ),
    )
    .unwrap();
    let conn = gatehouse::auth::open(&site.paths().journal()).unwrap();
    gatehouse::auth::add_user(&conn, "mia", gatehouse::auth::Role::Manager, "long enough password").unwrap();
    gatehouse::auth::add_user(&conn, "ada", gatehouse::auth::Role::Admin, "another long password").unwrap();
    drop(conn);
    let watched = site.gatehouse(&["watch", "add", "P-1042", "--list", "banned", "--severity", "critical"]);
    assert!(watched.status.success(), "{}", String::from_utf8_lossy(&watched.stderr));
    let mut server = site.spawn_serve();
    wait_for_port(http_port);
    wait_for_port(mqtt_port);
    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let screenshots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let output = Command::new("node")
        .arg(browser_dir.join("walkthrough.mjs"))
        .current_dir(&browser_dir)
        .env("GATEHOUSE_URL", format!("http://127.0.0.1:{http_port}"))
        .env("GATEHOUSE_MQTT_PORT", mqtt_port.to_string())
        .env("GATEHOUSE_USER", "mia")
        .env("GATEHOUSE_PASSWORD", "long enough password")
        .env("GATEHOUSE_ADMIN", "ada")
        .env("GATEHOUSE_ADMIN_PASSWORD", "another long password")
        .env("GATEHOUSE_SCREENSHOTS", &screenshots)
        .output()
        .expect("node is installed (scripts/test installs it and the browser test's packages)");
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        output.status.success(),
        "walkthrough failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(screenshots.join("2-dashboard-after-passage.png").exists());
    assert!(screenshots.join("4-device-locked-out.png").exists());
    assert!(screenshots.join("6-work-order-resolved.png").exists());
    assert!(screenshots.join("7-alarm-banner.png").exists());
    assert!(screenshots.join("9-forget-confirm.png").exists());
    assert!(screenshots.join("10-alarm-of-a-forgotten-person.png").exists());
}
