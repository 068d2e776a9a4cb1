//! The native relay protocol: what endpoints and the relay say to each
//! other, as ZMTP multipart messages between a DEALER (endpoint) and a
//! ROUTER (relay). Pure encoding and decoding; no I/O.
//!
//! Every message starts with a command frame in ASCII. Integers that follow
//! are 8-byte big-endian frames; maps are MessagePack maps (string keys, in
//! order); payloads are opaque bytes. `docs/relay-protocol.md` is the
//! specification for other ZeroMQ bindings; keep the two in step.

use bytes::Bytes;
use ironhouse::Message;
use rmpv::Value;

mod packed;
pub use packed::{Packed, PackedBuilder};

/// Protocol version spoken in HELLO and WELCOME.
pub const VERSION: u64 = 1;

/// A broken message from a peer: which command and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {command} message: {reason}")]
pub struct Malformed {
    /// The command, as received (lossy UTF-8).
    pub command: String,
    /// What is wrong.
    pub reason: String,
}

/// An endpoint's introduction, sent on every (re)connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hello {
    /// 16 random bytes chosen by the endpoint once for its lifetime: the
    /// relay recognises a reconnecting endpoint by it.
    pub session: Bytes,
    /// The groups to join.
    pub groups: Vec<String>,
    /// The relay epoch this endpoint last saw (WELCOME), if any.
    pub epoch: Option<Bytes>,
    /// Per group, the sequence number of the last broadcast received.
    pub seen: Vec<(String, u64)>,
    /// Per group, the notify credit not yet used.
    pub credit: Vec<(String, u64)>,
    /// The endpoint reads BCASTS (batched broadcasts).
    pub batch: bool,
}

/// Endpoint → relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToRelay {
    /// Join (or rejoin) with these groups.
    Hello(Hello),
    /// Send an object: per group, n < 0 broadcasts, n > 0 queues n copies
    /// for consumers, 0 only creates the group.
    Publish {
        /// Increasing per endpoint session, from 1; the relay drops repeats.
        seq: u64,
        /// Group → n, in the order given.
        dest: Vec<(String, i64)>,
        /// The encoded object.
        payload: Bytes,
    },
    /// Several objects to the same destination, numbered `first_seq`,
    /// `first_seq + 1`, ... (OBJS): the same as that many `Publish`.
    PublishBatch {
        /// The first object's `seq`.
        first_seq: u64,
        /// Group → n, in the order given.
        dest: Vec<(String, i64)>,
        /// The encoded objects.
        objects: Packed,
    },
    /// Consumer credit: n > 0 adds credit, n < 0 takes everything queued now.
    Notify(Vec<(String, i64)>),
    /// Every item with an id up to this one arrived (cumulative).
    Ack(u64),
}

/// Relay → endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToEndpoint {
    /// The endpoint joined its groups.
    Welcome {
        /// This relay's epoch (changes when the relay restarts).
        epoch: Bytes,
        /// The highest publish `seq` of this session the relay has taken.
        accepted: u64,
    },
    /// The endpoint may not join; the relay forgets it.
    Reject(String),
    /// Every publish up to this `seq` was taken (cumulative).
    Done(u64),
    /// This publish was refused (group full, not accepted, ...).
    Fail {
        /// The publish.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// A broadcast object.
    Broadcast {
        /// Its group.
        group: String,
        /// Its sequence number in the group.
        bseq: u64,
        /// The encoded object.
        payload: Bytes,
    },
    /// Consecutive broadcasts of one group, numbered `first_bseq`,
    /// `first_bseq + 1`, ... (BCASTS; only to endpoints whose HELLO said
    /// `batch`).
    Broadcasts {
        /// Their group.
        group: String,
        /// The first object's sequence number in the group.
        first_bseq: u64,
        /// The encoded objects.
        objects: Packed,
    },
    /// A queued object for this consumer; acknowledge it with `Ack`.
    Item {
        /// Its group.
        group: String,
        /// Delivery id, increasing per connection.
        id: u64,
        /// Whether it used one unit of credit (else a notify n < 0 took it).
        credited: bool,
        /// The encoded object.
        payload: Bytes,
    },
    /// The relay does not know this connection: say HELLO first.
    Reset,
}

fn u64_frame(n: u64) -> Bytes {
    Bytes::copy_from_slice(&n.to_be_bytes())
}

fn map_frame<V: Into<Value> + Copy>(entries: &[(String, V)]) -> Bytes {
    value_frame(&map_value(entries))
}

/// A received message being parsed: its command (named in errors) and its
/// frames.
struct Parse<'a> {
    cmd: &'a [u8],
    frames: &'a [Bytes],
}

impl<'a> Parse<'a> {
    fn new(m: &'a Message) -> Self {
        let frames = m.frames();
        Parse {
            cmd: frames.first().map(|c| &c[..]).unwrap_or_default(),
            frames,
        }
    }

    fn bad(&self, reason: &str) -> Malformed {
        Malformed {
            command: String::from_utf8_lossy(self.cmd).into_owned(),
            reason: reason.to_owned(),
        }
    }

    /// The message must have exactly `n` frames.
    fn want(&self, n: usize) -> Result<(), Malformed> {
        if self.frames.len() == n {
            Ok(())
        } else {
            Err(self.bad(&format!("{} frames, expected {n}", self.frames.len())))
        }
    }
}

fn value_frame(v: &Value) -> Bytes {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    rmpv::encode::write_value(&mut out, v).expect("write to Vec");
    Bytes::from(out)
}

fn msg(frames: impl IntoIterator<Item = Bytes>) -> Message {
    frames.into_iter().collect()
}

/// The `dest` frame of an OBJ message (see [`publish_message`]).
pub fn dest_frame(dest: &[(String, i64)]) -> Bytes {
    map_frame(dest)
}

/// An OBJ message from an already encoded `dest` frame: senders that
/// repeat a destination encode it once.
pub fn publish_message(seq: u64, dest: Bytes, payload: Bytes) -> Message {
    msg([Bytes::from_static(b"OBJ"), u64_frame(seq), dest, payload])
}

/// An OBJS message: several objects to one already encoded `dest`.
pub fn publish_batch_message(first_seq: u64, dest: Bytes, objects: &Packed) -> Message {
    msg([
        Bytes::from_static(b"OBJS"),
        u64_frame(first_seq),
        dest,
        objects.bytes().clone(),
    ])
}

/// Checks the packed frame of an OBJS numbered from `first_seq`: whole
/// objects, and numbers that do not overflow.
///
/// # Errors
/// A description of what is wrong.
pub fn batch_objects(first_seq: u64, frame: &Bytes) -> Result<Packed, String> {
    let objects = Packed::parse(frame.clone())?;
    if first_seq.checked_add(objects.count() as u64).is_none() {
        return Err("seq overflows".into());
    }
    Ok(objects)
}

/// Decodes a `dest` frame (a MessagePack map of group → int).
///
/// # Errors
/// A description of what is wrong.
pub fn decode_dest(frame: &[u8]) -> Result<Vec<(String, i64)>, String> {
    dest_map(frame)
}

impl ToRelay {
    /// The wire form.
    pub fn encode(&self) -> Message {
        match self {
            ToRelay::Hello(h) => {
                let body = Value::Map(vec![
                    (Value::from("v"), Value::from(VERSION)),
                    (Value::from("session"), Value::Binary(h.session.to_vec())),
                    (
                        Value::from("groups"),
                        Value::Array(h.groups.iter().map(|g| Value::from(g.as_str())).collect()),
                    ),
                    (
                        Value::from("epoch"),
                        h.epoch
                            .as_ref()
                            .map_or(Value::Nil, |e| Value::Binary(e.to_vec())),
                    ),
                    (Value::from("seen"), map_value(&h.seen)),
                    (Value::from("credit"), map_value(&h.credit)),
                    (Value::from("batch"), Value::Boolean(h.batch)),
                ]);
                msg([Bytes::from_static(b"HELLO"), value_frame(&body)])
            }
            ToRelay::Publish { seq, dest, payload } => msg([
                Bytes::from_static(b"OBJ"),
                u64_frame(*seq),
                map_frame(dest),
                payload.clone(),
            ]),
            ToRelay::PublishBatch {
                first_seq,
                dest,
                objects,
            } => publish_batch_message(*first_seq, map_frame(dest), objects),
            ToRelay::Notify(credit) => msg([Bytes::from_static(b"NTF"), map_frame(credit)]),
            ToRelay::Ack(upto) => msg([Bytes::from_static(b"ACK"), u64_frame(*upto)]),
        }
    }

    /// Parses a message from an endpoint (without the ROUTER's routing id).
    ///
    /// # Errors
    /// [`Malformed`] for an unknown command or a frame of the wrong shape.
    pub fn decode(m: &Message) -> Result<ToRelay, Malformed> {
        let p = Parse::new(m);
        let (f, cmd) = (p.frames, p.cmd);
        let bad = |reason: &str| p.bad(reason);
        let want = |n: usize| p.want(n);
        match cmd {
            b"HELLO" => {
                want(2)?;
                let v = read_value(&f[1]).map_err(|e| bad(&e))?;
                let entries = as_map(&v).ok_or_else(|| bad("body is not a map"))?;
                let mut h = Hello::default();
                for (k, v) in entries {
                    match k.as_str() {
                        Some("v") if v.as_u64() != Some(VERSION) => {
                            return Err(bad(&format!("unsupported version {v}")));
                        }
                        Some("session") => {
                            let s = v.as_slice().ok_or_else(|| bad("session is not bytes"))?;
                            if s.is_empty() || s.len() > 64 {
                                return Err(bad("session must be 1 to 64 bytes"));
                            }
                            h.session = Bytes::copy_from_slice(s);
                        }
                        Some("groups") => {
                            let a = v.as_array().ok_or_else(|| bad("groups is not a list"))?;
                            h.groups = a
                                .iter()
                                .map(|g| g.as_str().map(str::to_owned))
                                .collect::<Option<_>>()
                                .ok_or_else(|| bad("a group name is not a string"))?;
                        }
                        Some("epoch") => {
                            h.epoch = match v {
                                Value::Nil => None,
                                v => Some(Bytes::copy_from_slice(
                                    v.as_slice().ok_or_else(|| bad("epoch is not bytes"))?,
                                )),
                            }
                        }
                        Some("seen") => h.seen = counts(v).map_err(|e| bad(&e))?,
                        Some("credit") => h.credit = counts(v).map_err(|e| bad(&e))?,
                        Some("batch") => h.batch = v.as_bool().unwrap_or(false),
                        // Unknown keys are for later versions.
                        _ => {}
                    }
                }
                if h.session.is_empty() {
                    return Err(bad("no session"));
                }
                Ok(ToRelay::Hello(h))
            }
            b"OBJ" => {
                want(4)?;
                Ok(ToRelay::Publish {
                    seq: read_u64(&f[1]).ok_or_else(|| bad("seq is not 8 bytes"))?,
                    dest: dest_map(&f[2]).map_err(|e| bad(&e))?,
                    payload: f[3].clone(),
                })
            }
            b"OBJS" => {
                want(4)?;
                let first_seq = read_u64(&f[1]).ok_or_else(|| bad("seq is not 8 bytes"))?;
                Ok(ToRelay::PublishBatch {
                    first_seq,
                    dest: dest_map(&f[2]).map_err(|e| bad(&e))?,
                    objects: batch_objects(first_seq, &f[3]).map_err(|e| bad(&e))?,
                })
            }
            b"NTF" => {
                want(2)?;
                Ok(ToRelay::Notify(dest_map(&f[1]).map_err(|e| bad(&e))?))
            }
            b"ACK" => {
                want(2)?;
                Ok(ToRelay::Ack(
                    read_u64(&f[1]).ok_or_else(|| bad("id is not 8 bytes"))?,
                ))
            }
            _ => Err(bad("unknown command")),
        }
    }
}

impl ToEndpoint {
    /// The wire form.
    pub fn encode(&self) -> Message {
        match self {
            ToEndpoint::Welcome { epoch, accepted } => {
                let body = Value::Map(vec![
                    (Value::from("v"), Value::from(VERSION)),
                    (Value::from("epoch"), Value::Binary(epoch.to_vec())),
                    (Value::from("accepted"), Value::from(*accepted)),
                ]);
                msg([Bytes::from_static(b"WELCOME"), value_frame(&body)])
            }
            ToEndpoint::Reject(reason) => msg([
                Bytes::from_static(b"REJECT"),
                Bytes::copy_from_slice(reason.as_bytes()),
            ]),
            ToEndpoint::Done(upto) => msg([Bytes::from_static(b"DONE"), u64_frame(*upto)]),
            ToEndpoint::Fail { seq, reason } => msg([
                Bytes::from_static(b"FAIL"),
                u64_frame(*seq),
                Bytes::copy_from_slice(reason.as_bytes()),
            ]),
            ToEndpoint::Broadcast {
                group,
                bseq,
                payload,
            } => msg([
                Bytes::from_static(b"BCAST"),
                Bytes::copy_from_slice(group.as_bytes()),
                u64_frame(*bseq),
                payload.clone(),
            ]),
            ToEndpoint::Broadcasts {
                group,
                first_bseq,
                objects,
            } => msg([
                Bytes::from_static(b"BCASTS"),
                Bytes::copy_from_slice(group.as_bytes()),
                u64_frame(*first_bseq),
                objects.bytes().clone(),
            ]),
            ToEndpoint::Item {
                group,
                id,
                credited,
                payload,
            } => msg([
                Bytes::from_static(b"ITEM"),
                Bytes::copy_from_slice(group.as_bytes()),
                u64_frame(*id),
                Bytes::from_static(if *credited { b"\x01" } else { b"\x00" }),
                payload.clone(),
            ]),
            ToEndpoint::Reset => msg([Bytes::from_static(b"RESET")]),
        }
    }

    /// Parses a message from the relay.
    ///
    /// # Errors
    /// [`Malformed`] for an unknown command or a frame of the wrong shape.
    pub fn decode(m: &Message) -> Result<ToEndpoint, Malformed> {
        let p = Parse::new(m);
        let (f, cmd) = (p.frames, p.cmd);
        let bad = |reason: &str| p.bad(reason);
        let want = |n: usize| p.want(n);
        let text = |b: &Bytes| {
            std::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| bad("text is not UTF-8"))
        };
        let num = |b: &Bytes| read_u64(b).ok_or_else(|| bad("number is not 8 bytes"));
        match cmd {
            b"WELCOME" => {
                want(2)?;
                let v = read_value(&f[1]).map_err(|e| bad(&e))?;
                let entries = as_map(&v).ok_or_else(|| bad("body is not a map"))?;
                let (mut epoch, mut accepted) = (None, 0);
                for (k, v) in entries {
                    match k.as_str() {
                        Some("epoch") => epoch = v.as_slice().map(Bytes::copy_from_slice),
                        Some("accepted") => accepted = v.as_u64().unwrap_or(0),
                        _ => {}
                    }
                }
                Ok(ToEndpoint::Welcome {
                    epoch: epoch.ok_or_else(|| bad("no epoch"))?,
                    accepted,
                })
            }
            b"REJECT" => {
                want(2)?;
                Ok(ToEndpoint::Reject(text(&f[1])?))
            }
            b"DONE" => {
                want(2)?;
                Ok(ToEndpoint::Done(num(&f[1])?))
            }
            b"FAIL" => {
                want(3)?;
                Ok(ToEndpoint::Fail {
                    seq: num(&f[1])?,
                    reason: text(&f[2])?,
                })
            }
            b"BCAST" => {
                want(4)?;
                Ok(ToEndpoint::Broadcast {
                    group: text(&f[1])?,
                    bseq: num(&f[2])?,
                    payload: f[3].clone(),
                })
            }
            b"BCASTS" => {
                want(4)?;
                Ok(ToEndpoint::Broadcasts {
                    group: text(&f[1])?,
                    first_bseq: num(&f[2])?,
                    objects: Packed::parse(f[3].clone()).map_err(|e| bad(&e))?,
                })
            }
            b"ITEM" => {
                want(5)?;
                Ok(ToEndpoint::Item {
                    group: text(&f[1])?,
                    id: num(&f[2])?,
                    credited: f[3].first() == Some(&1),
                    payload: f[4].clone(),
                })
            }
            b"RESET" => Ok(ToEndpoint::Reset),
            _ => Err(bad("unknown command")),
        }
    }
}

fn map_value<V: Into<Value> + Copy>(entries: &[(String, V)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| (Value::from(k.as_str()), (*v).into()))
            .collect(),
    )
}

fn read_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

fn read_value(b: &[u8]) -> Result<Value, String> {
    let mut r = b;
    let v = rmpv::decode::read_value(&mut r).map_err(|e| format!("bad MessagePack: {e}"))?;
    if !r.is_empty() {
        return Err("trailing bytes after MessagePack".into());
    }
    Ok(v)
}

fn as_map(v: &Value) -> Option<&Vec<(Value, Value)>> {
    match v {
        Value::Map(m) => Some(m),
        _ => None,
    }
}

/// A MessagePack map of group name → signed count.
fn dest_map(b: &[u8]) -> Result<Vec<(String, i64)>, String> {
    let v = read_value(b)?;
    let m = as_map(&v).ok_or("not a map")?;
    m.iter()
        .map(|(k, v)| {
            let g = k.as_str().ok_or("a group name is not a string")?;
            let n = v.as_i64().ok_or("a count is not an integer")?;
            Ok((g.to_owned(), n))
        })
        .collect()
}

/// A MessagePack map of group name → unsigned count.
fn counts(v: &Value) -> Result<Vec<(String, u64)>, String> {
    let m = as_map(v).ok_or("not a map")?;
    m.iter()
        .map(|(k, v)| {
            let g = k.as_str().ok_or("a group name is not a string")?;
            let n = v.as_u64().ok_or("a count is not a non-negative integer")?;
            Ok((g.to_owned(), n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let hello = Hello {
            session: Bytes::from_static(&[7; 16]),
            groups: vec!["a".into(), "b".into()],
            epoch: Some(Bytes::from_static(b"e")),
            seen: vec![("a".into(), 3)],
            credit: vec![("b".into(), 9)],
            batch: true,
        };
        let objects = {
            let mut b = PackedBuilder::new();
            b.push(b"x");
            b.push(b"yz");
            b.finish().unwrap()
        };
        for m in [
            ToRelay::Hello(hello),
            ToRelay::Publish {
                seq: 5,
                dest: vec![("z".into(), -1), ("a".into(), 3)],
                payload: Bytes::from_static(b"obj"),
            },
            ToRelay::PublishBatch {
                first_seq: 6,
                dest: vec![("z".into(), -1)],
                objects: objects.clone(),
            },
            ToRelay::Notify(vec![("g".into(), -1)]),
            ToRelay::Ack(u64::MAX),
        ] {
            assert_eq!(ToRelay::decode(&m.encode()).unwrap(), m);
        }
        for m in [
            ToEndpoint::Welcome {
                epoch: Bytes::from_static(b"0123"),
                accepted: 4,
            },
            ToEndpoint::Reject("group g is full".into()),
            ToEndpoint::Done(8),
            ToEndpoint::Fail {
                seq: 2,
                reason: "no".into(),
            },
            ToEndpoint::Broadcast {
                group: "g".into(),
                bseq: 1,
                payload: Bytes::from_static(b"x"),
            },
            ToEndpoint::Broadcasts {
                group: "g".into(),
                first_bseq: 2,
                objects,
            },
            ToEndpoint::Item {
                group: "g".into(),
                id: 1,
                credited: true,
                payload: Bytes::new(),
            },
            ToEndpoint::Reset,
        ] {
            assert_eq!(ToEndpoint::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let cases: Vec<Vec<&[u8]>> = vec![
            vec![],
            vec![b"NOPE"],
            vec![b"OBJ", b"short", b"\x80", b""],
            vec![b"OBJ", &[0; 8], b"\xc1", b""],
            vec![b"OBJ", &[0; 8], b"\x81\x01\x02", b""],
            vec![b"HELLO", b"\x80"],
            vec![b"HELLO", b"\x81\xa1v\x02"],
            vec![b"HELLO", b"\x90"],
            vec![b"NTF", b"\x81\xa1g\xa1x"],
            vec![b"ACK"],
            vec![b"OBJS", &[0; 8], b"\x81\xa1g\xff", b""],
            vec![b"OBJS", &[0; 8], b"\x81\xa1g\xff", b"\x00\x00\x00\x09ab"],
            vec![b"OBJS", &[0xff; 8], b"\x81\xa1g\xff", b"\x00\x00\x00\x01a"],
        ];
        for c in cases {
            let m: Message = c.iter().map(|f| Bytes::copy_from_slice(f)).collect();
            assert!(ToRelay::decode(&m).is_err(), "{c:?} accepted");
        }
        let m: Message = [Bytes::from_static(b"ITEM"), Bytes::from_static(b"\xff")]
            .into_iter()
            .collect();
        assert!(ToEndpoint::decode(&m).is_err());
        let m: Message = [
            Bytes::from_static(b"BCASTS"),
            Bytes::from_static(b"g"),
            Bytes::from_static(&[0; 8]),
            Bytes::from_static(b"\x00\x00\x00\x02a"),
        ]
        .into_iter()
        .collect();
        assert!(ToEndpoint::decode(&m).is_err());
    }
}
