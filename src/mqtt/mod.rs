//! MQTT ingestion: `codec` frames MQTT 3.1.1 and 5, `embedded` is the built-in endpoint that owns the PUBACK (it
//! acknowledges a message only after the journal committed its effect).

pub mod codec;
pub mod embedded;
pub mod external;
