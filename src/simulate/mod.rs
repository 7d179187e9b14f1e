//! The device traffic simulator (SPEC §1 `gatehouse simulate`, and the feed of `serve --demo`): a pure, seedable
//! generator of realistic device messages for the configured devices ([`TrafficGenerator`]), and [`run`], which
//! publishes them to an MQTT broker at a given rate with QoS 1 and counts the broker's acknowledgements.
//!
//! `generator` is the pure traffic generator, `publisher` the QoS 1 MQTT publisher with its options, and `report`
//! what a run did.

mod generator;
mod publisher;
mod report;

pub use generator::{SimulatedMessage, TrafficGenerator};
pub use publisher::{SimulateOptions, run};
pub use report::SimulationReport;

/// The site the tests of every part simulate: two turnstiles and a camera, in Berlin.
#[cfg(test)]
mod testing {
    use crate::config::Config;

    pub(super) const PREFIX: &str = "gatehouse";
    const SITE: &str = r#"
[site]
timezone = "Europe/Berlin"

[[turnstile]]
id = "T1"
name = "Hall A north"
zone = "Hall A"

[[turnstile]]
id = "T2"
name = "Hall B south"
zone = "Hall B"

[[camera]]
id = "C1"
name = "Hall A entrance"
zone = "Hall A"
watches = ["T1"]
"#;

    pub(super) fn config() -> Config {
        Config::parse(SITE, "config.toml", std::path::Path::new("")).expect("the test config is valid")
    }
}
