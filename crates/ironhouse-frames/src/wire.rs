//! NetGear's messages (vidgear 0.3.6), byte for byte where it matters:
//!
//! - a frame is two parts: a JSON object (`terminate_flag`, `compression`,
//!   `message`, `pattern`, `dtype`, `shape`, and `port` in multi-server mode),
//!   then the raw C-contiguous bytes;
//! - termination is one part, `{"terminate_flag": true}` (with `port` in
//!   multi-server mode), acknowledged in pattern 1 by a fixed text;
//! - the reply to a frame (patterns 0 and 1) is the text
//!   `Data received on device: <ID> !`, or in bidirectional and multi-client
//!   modes a JSON object `{"return_type", "data"}` (with `port` in
//!   multi-client mode), or for an array a JSON object
//!   `{"return_type": "ndarray", "compression", "array_dtype",
//!   "array_shape", "data": null}` followed by the bytes.
//!
//! Everything read from the network is checked here; nothing panics on it.

use bytes::Bytes;
use ironhouse::Message;
use serde_json::{json, Map, Value};

use crate::frame::{byte_len, DType, Frame};
use crate::{FrameError, Pattern};

/// The acknowledgement of termination in pattern 1.
pub const TERMINATION_ACK: &str = "Termination signal successfully received at Client's end!";
/// The same in multi-server mode.
pub const TERMINATION_ACK_MULTISERVER: &str = "Termination signal successfully received at client!";

/// The default reply text for receiver `id`.
pub fn default_reply(id: &str) -> String {
    format!("Data received on device: {id} !")
}

/// Data a receiver returns with each reply (bidirectional and multi-client
/// modes), or a sender gets back.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum ReturnData {
    /// Python's `None`.
    #[default]
    None,
    /// Any JSON value (Python's str, int, float, bool, list, dict).
    Json(Value),
    /// An array, sent as a second part.
    Array(Frame),
}

/// What a sender got back for a frame.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// The receiver's acknowledgement text (plain patterns 0 and 1).
    Ack(String),
    /// Return data (bidirectional and multi-client modes); `port` is the
    /// replying receiver's in multi-client mode.
    Data {
        /// The receiver's port (multi-client mode).
        port: Option<String>,
        /// What it returned.
        data: ReturnData,
    },
}

/// A message as a receiver sees it.
#[derive(Debug)]
pub(crate) enum Inbound {
    Terminate {
        port: Option<String>,
    },
    Frame {
        port: Option<String>,
        message: Option<Value>,
        frame: Frame,
    },
}

/// A port as NetGear's JSON may carry it (string or number), as text.
fn port_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bad(msg: impl Into<String>) -> FrameError {
    FrameError::BadMessage(msg.into())
}

fn parse_object(part: &[u8], what: &str) -> Result<Map<String, Value>, FrameError> {
    match serde_json::from_slice::<Value>(part) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(bad(format!(
            "{what} is JSON but not an object: {}",
            short(&other.to_string())
        ))),
        Err(e) => Err(bad(format!(
            "{what} is not JSON ({e}): {}",
            short(&String::from_utf8_lossy(part))
        ))),
    }
}

fn short(s: &str) -> String {
    if s.len() <= 80 {
        s.to_string()
    } else {
        let mut end = 80;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

fn parse_shape(v: Option<&Value>, what: &str) -> Result<Vec<usize>, FrameError> {
    let Some(Value::Array(items)) = v else {
        return Err(bad(format!("{what} is missing or not a list")));
    };
    if items.len() > 32 {
        return Err(bad(format!(
            "{what} has {} dimensions (at most 32)",
            items.len()
        )));
    }
    items
        .iter()
        .map(|d| {
            d.as_u64()
                .and_then(|d| usize::try_from(d).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "{what} has a dimension that is not a non-negative integer: {d}"
                    ))
                })
        })
        .collect()
}

fn array_from(
    dtype: Option<&Value>,
    shape: Option<&Value>,
    data: Bytes,
    names: (&str, &str),
) -> Result<Frame, FrameError> {
    let dtype: DType = dtype
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("`{}` is missing or not a string", names.0)))?
        .parse()?;
    let shape = parse_shape(shape, names.1)?;
    let want = byte_len(dtype, &shape).ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    if want != data.len() {
        return Err(bad(format!(
            "shape {shape:?} of {dtype} needs {want} bytes but the frame has {}",
            data.len()
        )));
    }
    Frame::new(dtype, shape, data)
}

/// Parses a message received by a frame receiver.
pub(crate) fn parse_inbound(msg: Message) -> Result<Inbound, FrameError> {
    let mut parts = msg.into_frames();
    let Some(head) = parts.next() else {
        return Err(bad("empty message"));
    };
    let h = parse_object(&head, "the frame header")?;
    let port = h.get("port").and_then(port_text);
    match h.get("terminate_flag") {
        Some(Value::Bool(true)) => return Ok(Inbound::Terminate { port }),
        Some(Value::Bool(false)) => {}
        _ => return Err(bad("the frame header has no boolean `terminate_flag`")),
    }
    let Some(data) = parts.next() else {
        return Err(bad(
            "a frame header without the frame's bytes (one part, two expected)",
        ));
    };
    if parts.next().is_some() {
        return Err(bad("more than two parts in a frame message"));
    }
    let frame = match h.get("compression") {
        Some(Value::Bool(false)) | None => {
            array_from(h.get("dtype"), h.get("shape"), data, ("dtype", "shape"))?
        }
        Some(c) => decode_jpeg(&data, c)?,
    };
    let message = match h.get("message") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.clone()),
    };
    Ok(Inbound::Frame {
        port,
        message,
        frame,
    })
}

/// Largest JPEG accepted, in pixels (8K video is 33 M).
#[cfg(feature = "jpeg")]
const MAX_JPEG_PIXELS: usize = 64 << 20;

#[cfg(feature = "jpeg")]
fn decode_jpeg(data: &[u8], compression: &Value) -> Result<Frame, FrameError> {
    crate::jpeg::decode(data, compression, MAX_JPEG_PIXELS)
}

#[cfg(not(feature = "jpeg"))]
fn decode_jpeg(_data: &[u8], compression: &Value) -> Result<Frame, FrameError> {
    Err(FrameError::Unsupported(format!(
        "JPEG-compressed frame ({compression}); build ironhouse-frames with feature `jpeg`, or send with jpeg_compression=False"
    )))
}

/// The two parts of a raw frame message.
#[cfg(test)]
pub(crate) fn frame_message(
    frame: &Frame,
    message: Option<&Value>,
    pattern: Pattern,
    port: Option<&str>,
) -> Message {
    frame_message_with(frame, message, pattern, port, None)
}

/// The two parts of a frame message; `jpeg`: the compression header and
/// the JPEG bytes in place of the raw ones.
pub(crate) fn frame_message_with(
    frame: &Frame,
    message: Option<&Value>,
    pattern: Pattern,
    port: Option<&str>,
    jpeg: Option<(Value, Bytes)>,
) -> Message {
    let mut h = Map::new();
    if let Some(p) = port {
        h.insert("port".into(), Value::String(p.into()));
    }
    h.insert("terminate_flag".into(), Value::Bool(false));
    let compressed = jpeg.is_some();
    let (compression, body) = match jpeg {
        Some((c, bytes)) => (c, bytes),
        None => (Value::Bool(false), frame.data().clone()),
    };
    h.insert("compression".into(), compression);
    h.insert("message".into(), message.cloned().unwrap_or(Value::Null));
    h.insert(
        "pattern".into(),
        Value::String(pattern.number().to_string()),
    );
    if compressed {
        h.insert("dtype".into(), Value::String(String::new()));
        h.insert("shape".into(), Value::String(String::new()));
    } else {
        h.insert("dtype".into(), Value::String(frame.dtype().name().into()));
        h.insert("shape".into(), json!(frame.shape()));
    }
    let head = serde_json::to_vec(&Value::Object(h)).expect("a JSON map serialises");
    Message::from(vec![Bytes::from(head), body])
}

/// The single-part termination message.
pub(crate) fn terminate_message(port: Option<&str>) -> Message {
    let v = match port {
        Some(p) => json!({"terminate_flag": true, "port": p}),
        None => json!({"terminate_flag": true}),
    };
    Message::from(serde_json::to_vec(&v).expect("JSON serialises"))
}

/// Python's type name of a JSON value, as NetGear's `return_type` says it.
fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// A receiver's reply carrying return data.
pub(crate) fn return_message(data: &ReturnData, port: Option<&str>) -> Message {
    let mut h = Map::new();
    if let Some(p) = port {
        h.insert("port".into(), Value::String(p.into()));
    }
    match data {
        ReturnData::Array(frame) => {
            h.insert("return_type".into(), "ndarray".into());
            h.insert("compression".into(), Value::Bool(false));
            h.insert("array_dtype".into(), frame.dtype().name().into());
            h.insert("array_shape".into(), json!(frame.shape()));
            h.insert("data".into(), Value::Null);
            let head = serde_json::to_vec(&Value::Object(h)).expect("JSON serialises");
            Message::from(vec![Bytes::from(head), frame.data().clone()])
        }
        ReturnData::None | ReturnData::Json(_) => {
            let v = match data {
                ReturnData::Json(v) => v.clone(),
                _ => Value::Null,
            };
            h.insert("return_type".into(), python_type(&v).into());
            h.insert("data".into(), v);
            Message::from(serde_json::to_vec(&Value::Object(h)).expect("JSON serialises"))
        }
    }
}

/// Parses a reply to a frame. `with_data`: bidirectional or multi-client
/// mode, where the reply is return data rather than a text.
pub(crate) fn parse_reply(msg: Message, with_data: bool) -> Result<Reply, FrameError> {
    let mut parts = msg.into_frames();
    let Some(head) = parts.next() else {
        return Err(bad("empty reply"));
    };
    if !with_data {
        return match std::str::from_utf8(&head) {
            Ok(s) => Ok(Reply::Ack(s.to_string())),
            Err(_) => Err(bad("the reply is not UTF-8 text")),
        };
    }
    let h = parse_object(&head, "the reply")?;
    let port = h.get("port").and_then(port_text);
    let data = match h.get("return_type").and_then(Value::as_str) {
        Some("ndarray") => {
            let Some(bytes) = parts.next() else {
                return Err(bad("an ndarray reply without its bytes"));
            };
            match h.get("compression") {
                Some(Value::Bool(false)) | None => ReturnData::Array(array_from(
                    h.get("array_dtype"),
                    h.get("array_shape"),
                    bytes,
                    ("array_dtype", "array_shape"),
                )?),
                Some(c) => ReturnData::Array(decode_jpeg(&bytes, c)?),
            }
        }
        Some(_) => match h.get("data") {
            None | Some(Value::Null) => ReturnData::None,
            Some(v) => ReturnData::Json(v.clone()),
        },
        None => return Err(bad("the reply has no `return_type`")),
    };
    Ok(Reply::Data { port, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_header_has_netgear_keys() {
        let f = Frame::synthetic(2, 3, 3, 1);
        let msg = frame_message(&f, Some(&json!({"seq": 1})), Pattern::ReqRep, Some("5566"));
        let head: Value = serde_json::from_slice(&msg.frames()[0]).unwrap();
        assert_eq!(
            head,
            json!({"port": "5566", "terminate_flag": false, "compression": false,
                   "message": {"seq": 1}, "pattern": "1", "dtype": "uint8", "shape": [2, 3, 3]})
        );
        match parse_inbound(msg).unwrap() {
            Inbound::Frame {
                port,
                message,
                frame,
            } => {
                assert_eq!(port.as_deref(), Some("5566"));
                assert_eq!(message, Some(json!({"seq": 1})));
                assert_eq!(frame, f);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn python_json_is_understood() {
        // What pyzmq's send_json writes (json.dumps defaults, tuple shape).
        let head = br#"{"terminate_flag": false, "compression": false, "message": null, "pattern": "2", "dtype": "uint16", "shape": [2, 2]}"#;
        let msg = Message::from(vec![Bytes::from_static(head), Bytes::from(vec![1u8; 8])]);
        let Inbound::Frame { frame, message, .. } = parse_inbound(msg).unwrap() else {
            panic!()
        };
        assert_eq!(frame.dtype(), DType::U16);
        assert_eq!(message, None);
        let t = Message::from(&br#"{"terminate_flag": true, "port": 5577}"#[..]);
        assert!(
            matches!(parse_inbound(t).unwrap(), Inbound::Terminate { port: Some(p) } if p == "5577")
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let cases: Vec<Message> = vec![
            Message::from(&b"not json"[..]),
            Message::from(&b"[1,2]"[..]),
            Message::from(&br#"{"compression": false}"#[..]),
            Message::from(&br#"{"terminate_flag": false, "dtype": "uint8", "shape": [2]}"#[..]),
            Message::from(vec![
                Bytes::from_static(br#"{"terminate_flag": false, "dtype": "uint8", "shape": [4]}"#),
                Bytes::from_static(b"abc"),
            ]),
            Message::from(vec![
                Bytes::from_static(br#"{"terminate_flag": false, "dtype": "uint8", "shape": [-1]}"#),
                Bytes::from_static(b"abc"),
            ]),
            Message::from(vec![
                Bytes::from_static(br#"{"terminate_flag": false, "dtype": "object", "shape": [3]}"#),
                Bytes::from_static(b"abc"),
            ]),
            Message::from(vec![
                Bytes::from_static(br#"{"terminate_flag": false, "dtype": "uint64", "shape": [4611686018427387904, 4]}"#),
                Bytes::from_static(b"abc"),
            ]),
        ];
        for m in cases {
            assert!(parse_inbound(m).is_err());
        }
    }

    #[test]
    fn replies_round_trip() {
        let arr = Frame::synthetic(2, 2, 1, 3);
        for (data, port) in [
            (ReturnData::None, None),
            (ReturnData::Json(json!("hello")), Some("5567")),
            (ReturnData::Json(json!({"a": [1, 2.5]})), None),
            (ReturnData::Array(arr), Some("1")),
        ] {
            let msg = return_message(&data, port);
            let got = parse_reply(msg, true).unwrap();
            assert_eq!(
                got,
                Reply::Data {
                    port: port.map(String::from),
                    data
                }
            );
        }
        let head: Value =
            serde_json::from_slice(&return_message(&ReturnData::None, None).frames()[0]).unwrap();
        assert_eq!(head, json!({"return_type": "NoneType", "data": null}));
        assert_eq!(
            parse_reply(Message::from(default_reply("ABCD1234")), false).unwrap(),
            Reply::Ack("Data received on device: ABCD1234 !".into())
        );
    }
}
