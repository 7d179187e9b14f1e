//! MQTT: `codec` frames MQTT 3.1.1 and 5, `embedded` is the built-in endpoint that owns the PUBACK (it
//! acknowledges a message only after the journal committed its effect), `external` subscribes at a broker over
//! the sessions `sessions` plans; `commands` is the desired state Gatehouse publishes to gateways and
//! `subscriptions` delivers it to the embedded endpoint's subscribers.

pub mod codec;
pub mod commands;
pub mod embedded;
pub mod external;
pub mod sessions;
pub mod subscriptions;
