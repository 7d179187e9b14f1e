//! The codec of a kind whose events are each one struct stored under its type name at one schema version: one
//! list of variant and name, from which encoding, decoding and JSON are all made (alarms, the watch list).

/// `bodies_codec!(Event, SCHEMA, { Variant => "TypeName", … })` implements [`super::EventCodec`] for `Event`.
macro_rules! bodies_codec {
    ($event:ident, $schema:expr, { $($variant:ident => $name:literal,)* }) => {
        impl $crate::codec::EventCodec for $event {
            fn encode_body(&self) -> (u32, Vec<u8>) {
                let body = match self { $($event::$variant(body) => $crate::codec::encode(body),)* };
                ($schema, body)
            }

            fn decode_body(event_type: &str, schema: u32, payload: &[u8]) -> Result<Self, $crate::codec::DecodeError> {
                if schema < $schema && $crate::codec::reseal::sealed_since(event_type).is_some() {
                    return Err($crate::codec::DecodeError::WrittenInClear {
                        event_type: event_type.to_owned(),
                        schema,
                    });
                }
                if schema != $schema {
                    return Err($crate::codec::DecodeError::UnknownSchema {
                        event_type: event_type.to_owned(),
                        schema,
                    });
                }
                match event_type {
                    $($name => Ok($event::$variant($crate::codec::decode(payload, event_type)?)),)*
                    other => Err($crate::codec::DecodeError::UnknownType(other.to_owned())),
                }
            }

            fn body_json(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self { $($event::$variant(body) => serde_json::to_value(body),)* }
            }
        }
    };
}

pub(crate) use bodies_codec;
