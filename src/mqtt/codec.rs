//! MQTT 3.1.1 and 5 framing for the embedded endpoint, on the packet codec `rumqttc` ships. The endpoint speaks
//! in the few packets a gateway needs (it publishes device messages and subscribes to its turnstiles' commands) ([`Inbound`], [`Outbound`]); this module maps them to and
//! from each protocol version, so the connection logic is written once.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

/// The largest packet accepted. Payloads over 64 KiB must still arrive so they can be kept as dead letters with
/// their reason; only something far larger is a protocol violation.
pub const MAX_PACKET: usize = 1024 * 1024;

/// Which protocol a connection speaks, fixed by its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V311,
    V5,
}

/// A gateway's Last Will: published by us on its behalf when it vanishes without DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
}

/// What a client can send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Connect {
        version: Version,
        client_id: String,
        clean_session: bool,
        keep_alive: u16,
        will: Option<Will>,
        /// Username and password, when the client sent them.
        login: Option<(String, String)>,
    },
    Publish {
        qos: u8,
        pkid: u16,
        /// DUP: the client may have sent this very packet before (a re-send after a reconnect).
        dup: bool,
        topic: String,
        payload: Bytes,
    },
    PingReq,
    Subscribe {
        pkid: u16,
        /// The topic filters, in order (the SUBACK answers each).
        filters: Vec<String>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    /// The client acknowledges a QoS 1 message we sent it (a command).
    PubAck {
        pkid: u16,
    },
    Disconnect {
        send_will: bool,
    },
    /// A packet a gateway has no business sending here (PUBREC, CONNACK, ...).
    Unexpected(&'static str),
}

/// What the endpoint sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    ConnAck {
        session_present: bool,
    },
    /// Refuses a connection (v5 clients learn why; v3.1.1 ones get "server unavailable").
    ConnRefused(Refusal),
    PubAck {
        pkid: u16,
    },
    PingResp,
    /// Answers a SUBSCRIBE filter by filter: granted at QoS 1, or refused.
    SubAck {
        pkid: u16,
        granted: Vec<bool>,
    },
    /// A message to the client: QoS 1 (a turnstile's command), or QoS 0 with packet id 0 (an alarm's state).
    Publish {
        pkid: u16,
        topic: String,
        payload: Bytes,
        retain: bool,
        dup: bool,
    },
    UnsubAck {
        pkid: u16,
        filters: usize,
    },
    /// v5 only: tells the client why it is being disconnected (QoS 2, protocol error).
    Disconnect {
        protocol_error: bool,
    },
}

/// Why a CONNECT is refused (the CONNACK's return code in either protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not MQTT 3.1.1 or 5.
    ProtocolVersion,
    /// The client id is taken by another identity.
    IdentifierRejected,
    /// The username and password do not sign in a gateway.
    BadCredentials,
    /// The server is busy (too many connections) or cannot keep the session.
    Unavailable,
}

/// Why a byte stream is not MQTT we accept.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("first packet is not CONNECT")]
    NotConnect,
    #[error("unsupported MQTT protocol level {0} (3.1.1 and 5 are spoken here)")]
    UnsupportedProtocol(u8),
}

/// The protocol level byte of a CONNECT at the start of `buf` (4 = 3.1.1, 5 = 5), once enough bytes arrived.
/// Read by hand because the 3.1.1 parser misreads a 5 CONNECT instead of refusing it.
fn protocol_level(buf: &[u8]) -> Option<u8> {
    // Fixed header: type byte, then a 1-4 byte variable-length "remaining length".
    let mut at = 1;
    loop {
        let byte = *buf.get(at)?;
        at += 1;
        if byte & 0x80 == 0 || at > 4 {
            break;
        }
    }
    // Variable header: protocol name as a length-prefixed string ("MQTT"), then the level.
    let name_len = u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]) as usize;
    buf.get(at + 2 + name_len).copied()
}

/// Reads the CONNECT that opens every connection; `Ok(None)` when more bytes are needed.
pub fn read_connect(buf: &mut BytesMut) -> Result<Option<Inbound>, FrameError> {
    if buf.first().is_some_and(|b| b >> 4 != 1) {
        return Err(FrameError::NotConnect);
    }
    let Some(level) = protocol_level(buf) else {
        return Ok(None);
    };
    if level != 4 && level != 5 {
        return Err(FrameError::UnsupportedProtocol(level));
    }
    if level == 5 {
        return match v5::Packet::read(buf, Some(MAX_PACKET as u32)) {
            Ok(v5::Packet::Connect(c, will, login)) => Ok(Some(Inbound::Connect {
                login: login.map(|l| (l.username, l.password)),
                version: Version::V5,
                client_id: c.client_id,
                clean_session: c.clean_start,
                keep_alive: c.keep_alive,
                will: will.map(|w| Will {
                    topic: String::from_utf8_lossy(&w.topic).into_owned(),
                    payload: w.message,
                    qos: w.qos as u8,
                }),
            })),
            Ok(_) => Err(FrameError::NotConnect),
            Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(FrameError::Malformed(e.to_string())),
        };
    }
    match v4::Packet::read(buf, MAX_PACKET) {
        Ok(v4::Packet::Connect(c)) => Ok(Some(Inbound::Connect {
            login: c.login.map(|l| (l.username, l.password)),
            version: Version::V311,
            client_id: c.client_id,
            clean_session: c.clean_session,
            keep_alive: c.keep_alive,
            will: c.last_will.map(|w| Will {
                topic: w.topic,
                payload: w.message,
                qos: w.qos as u8,
            }),
        })),
        Ok(_) => Err(FrameError::NotConnect),
        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(e) => Err(FrameError::Malformed(e.to_string())),
    }
}

/// Reads the next packet after CONNECT; `Ok(None)` when more bytes are needed.
pub fn read(version: Version, buf: &mut BytesMut) -> Result<Option<Inbound>, FrameError> {
    match version {
        Version::V311 => match v4::Packet::read(buf, MAX_PACKET) {
            Ok(packet) => Ok(Some(from_v4(packet))),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(FrameError::Malformed(e.to_string())),
        },
        Version::V5 => match v5::Packet::read(buf, Some(MAX_PACKET as u32)) {
            Ok(packet) => Ok(Some(from_v5(packet))),
            Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(FrameError::Malformed(e.to_string())),
        },
    }
}

fn from_v4(packet: v4::Packet) -> Inbound {
    match packet {
        v4::Packet::Publish(p) => Inbound::Publish {
            qos: p.qos as u8,
            pkid: p.pkid,
            dup: p.dup,
            topic: p.topic,
            payload: p.payload,
        },
        v4::Packet::PingReq => Inbound::PingReq,
        v4::Packet::Subscribe(s) => Inbound::Subscribe {
            pkid: s.pkid,
            filters: s.filters.into_iter().map(|f| f.path).collect(),
        },
        v4::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
        },
        v4::Packet::PubAck(a) => Inbound::PubAck { pkid: a.pkid },
        v4::Packet::Disconnect => Inbound::Disconnect { send_will: false },
        v4::Packet::Connect(_) => Inbound::Unexpected("a second CONNECT"),
        v4::Packet::PubRel(_) => Inbound::Unexpected("PUBREL (QoS 2 is not supported)"),
        _ => Inbound::Unexpected("a packet only a server sends"),
    }
}

fn from_v5(packet: v5::Packet) -> Inbound {
    match packet {
        v5::Packet::Publish(p) => Inbound::Publish {
            qos: p.qos as u8,
            pkid: p.pkid,
            dup: p.dup,
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload,
        },
        v5::Packet::PingReq(_) => Inbound::PingReq,
        v5::Packet::Subscribe(s) => Inbound::Subscribe {
            pkid: s.pkid,
            filters: s.filters.into_iter().map(|f| f.path).collect(),
        },
        v5::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters,
        },
        v5::Packet::PubAck(a) => Inbound::PubAck { pkid: a.pkid },
        v5::Packet::Disconnect(d) => Inbound::Disconnect {
            send_will: d.reason_code == v5::DisconnectReasonCode::DisconnectWithWillMessage,
        },
        v5::Packet::Connect(..) => Inbound::Unexpected("a second CONNECT"),
        v5::Packet::PubRel(_) => Inbound::Unexpected("PUBREL (QoS 2 is not supported)"),
        v5::Packet::Auth(_) => Inbound::Unexpected("AUTH (enhanced authentication is not supported)"),
        _ => Inbound::Unexpected("a packet only a server sends"),
    }
}

/// Appends `packet` in the connection's protocol to `out`.
pub fn write(version: Version, packet: &Outbound, out: &mut BytesMut) {
    // Writing these small, well-formed packets into a growable buffer cannot fail.
    let result = match version {
        Version::V311 => {
            let packet = match packet {
                Outbound::ConnAck { session_present } => v4::Packet::ConnAck(v4::ConnAck {
                    session_present: *session_present,
                    code: v4::ConnectReturnCode::Success,
                }),
                Outbound::ConnRefused(why) => v4::Packet::ConnAck(v4::ConnAck {
                    session_present: false,
                    code: match why {
                        Refusal::ProtocolVersion => v4::ConnectReturnCode::RefusedProtocolVersion,
                        Refusal::IdentifierRejected => v4::ConnectReturnCode::BadClientId,
                        Refusal::BadCredentials => v4::ConnectReturnCode::BadUserNamePassword,
                        Refusal::Unavailable => v4::ConnectReturnCode::ServiceUnavailable,
                    },
                }),
                Outbound::PubAck { pkid } => v4::Packet::PubAck(v4::PubAck { pkid: *pkid }),
                Outbound::PingResp => v4::Packet::PingResp,
                Outbound::SubAck { pkid, granted } => v4::Packet::SubAck(v4::SubAck {
                    pkid: *pkid,
                    return_codes: granted
                        .iter()
                        .map(|ok| {
                            if *ok {
                                v4::SubscribeReasonCode::Success(rumqttc::mqttbytes::QoS::AtLeastOnce)
                            } else {
                                v4::SubscribeReasonCode::Failure
                            }
                        })
                        .collect(),
                }),
                Outbound::Publish {
                    pkid,
                    topic,
                    payload,
                    retain,
                    dup,
                } => {
                    let qos = match pkid {
                        0 => rumqttc::mqttbytes::QoS::AtMostOnce,
                        _ => rumqttc::mqttbytes::QoS::AtLeastOnce,
                    };
                    let mut publish = v4::Publish::new(topic.as_str(), qos, payload.to_vec());
                    publish.pkid = *pkid;
                    publish.retain = *retain;
                    publish.dup = *dup;
                    v4::Packet::Publish(publish)
                }
                Outbound::UnsubAck { pkid, .. } => v4::Packet::UnsubAck(v4::UnsubAck { pkid: *pkid }),
                // 3.1.1 has no server DISCONNECT: closing the connection says it.
                Outbound::Disconnect { .. } => return,
            };
            packet.write(out, MAX_PACKET).map(|_| ()).map_err(|e| e.to_string())
        }
        Version::V5 => {
            let packet = match packet {
                Outbound::ConnAck { session_present } => v5::Packet::ConnAck(v5::ConnAck {
                    session_present: *session_present,
                    code: v5::ConnectReturnCode::Success,
                    properties: Some(v5::ConnAckProperties {
                        // Tell v5 clients up front what this endpoint does not do.
                        session_expiry_interval: None,
                        receive_max: Some(super::embedded::MAX_IN_FLIGHT as u16),
                        max_qos: Some(1),
                        retain_available: Some(1),
                        max_packet_size: Some(MAX_PACKET as u32),
                        assigned_client_identifier: None,
                        topic_alias_max: None,
                        reason_string: None,
                        user_properties: Vec::new(),
                        wildcard_subscription_available: Some(0),
                        subscription_identifiers_available: Some(0),
                        shared_subscription_available: Some(0),
                        server_keep_alive: None,
                        response_information: None,
                        server_reference: None,
                        authentication_method: None,
                        authentication_data: None,
                    }),
                }),
                Outbound::ConnRefused(why) => v5::Packet::ConnAck(v5::ConnAck {
                    session_present: false,
                    code: match why {
                        Refusal::ProtocolVersion => v5::ConnectReturnCode::UnsupportedProtocolVersion,
                        Refusal::IdentifierRejected => v5::ConnectReturnCode::ClientIdentifierNotValid,
                        Refusal::BadCredentials => v5::ConnectReturnCode::BadUserNamePassword,
                        Refusal::Unavailable => v5::ConnectReturnCode::ServerUnavailable,
                    },
                    properties: None,
                }),
                Outbound::PubAck { pkid } => v5::Packet::PubAck(v5::PubAck {
                    pkid: *pkid,
                    reason: v5::PubAckReason::Success,
                    properties: None,
                }),
                Outbound::PingResp => v5::Packet::PingResp(v5::PingResp),
                Outbound::SubAck { pkid, granted } => v5::Packet::SubAck(v5::SubAck {
                    pkid: *pkid,
                    return_codes: granted
                        .iter()
                        .map(|ok| {
                            if *ok {
                                v5::SubscribeReasonCode::Success(rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
                            } else {
                                v5::SubscribeReasonCode::NotAuthorized
                            }
                        })
                        .collect(),
                    properties: None,
                }),
                Outbound::Publish {
                    pkid,
                    topic,
                    payload,
                    retain,
                    dup,
                } => {
                    let qos = match pkid {
                        0 => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
                        _ => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    };
                    let mut publish = v5::Publish::new(topic.as_str(), qos, payload.clone(), None);
                    publish.pkid = *pkid;
                    publish.retain = *retain;
                    publish.dup = *dup;
                    v5::Packet::Publish(publish)
                }
                Outbound::UnsubAck { pkid, filters } => v5::Packet::UnsubAck(v5::UnsubAck {
                    pkid: *pkid,
                    reasons: vec![v5::UnsubAckReason::Success; *filters],
                    properties: None,
                }),
                Outbound::Disconnect { protocol_error } => v5::Packet::Disconnect(v5::Disconnect {
                    reason_code: if *protocol_error {
                        v5::DisconnectReasonCode::ProtocolError
                    } else {
                        v5::DisconnectReasonCode::QoSNotSupported
                    },
                    properties: None,
                }),
            };
            packet
                .write(out, Some(MAX_PACKET as u32))
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    if let Err(error) = result {
        tracing::error!(%error, ?packet, "cannot encode an MQTT packet");
    }
}
