//! The zlib layer of the wire: `zlib.decompress` with Python's errors and
//! a size limit, and `zlib.compress` either deflated or in stored blocks
//! ([`Compression`]), which every zlib reader takes alike.

use std::cell::RefCell;
use std::io::Write;

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

use super::PyError;

fn zlib_error(code: i32, what: &str) -> PyError {
    PyError::new(
        "zlib",
        "error",
        format!("Error {code} while decompressing data: {what}"),
    )
}

/// `zlib.decompress(body)`, refusing to inflate past `limit` bytes. Trailing
/// bytes after the end of the stream are ignored, as Python does.
///
/// # Errors
/// The `zlib.error` Python would raise (header, truncation, corrupt data), or
/// one naming the limit.
pub fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, PyError> {
    if body.len() >= 2 {
        let (cmf, flg) = (body[0], body[1]);
        if (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0 {
            return Err(zlib_error(-3, "incorrect header check"));
        }
        if cmf & 0x0f != 8 {
            return Err(zlib_error(-3, "unknown compression method"));
        }
        if cmf >> 4 > 7 {
            return Err(zlib_error(-3, "invalid window size"));
        }
        if flg & 0x20 != 0 {
            return Err(PyError::new(
                "zlib",
                "error",
                "Error 2 while decompressing data",
            ));
        }
    }
    INFLATER.with(|cell| {
        let mut inflater = cell.borrow_mut();
        inflater.reset(true);
        inflate(&mut inflater, body, limit)
    })
}

thread_local! {
    // zlib states are large (tens to hundreds of KiB): one per thread,
    // reset for each message, instead of a fresh allocation each time.
    static INFLATER: RefCell<Decompress> = RefCell::new(Decompress::new(true));
    static DEFLATER: RefCell<Compress> =
        RefCell::new(Compress::new(flate2::Compression::fast(), true));
    static STORER: RefCell<Compress> =
        RefCell::new(Compress::new(flate2::Compression::none(), true));
}

fn inflate(inflater: &mut Decompress, body: &[u8], limit: usize) -> Result<Vec<u8>, PyError> {
    let mut out: Vec<u8> =
        Vec::with_capacity((body.len() * 4).clamp(64, 1 << 20).min(limit.max(1)));
    loop {
        if out.len() == out.capacity() {
            if out.len() >= limit {
                return Err(PyError::new(
                    "zlib",
                    "error",
                    format!("the request inflates to more than {limit} bytes (the server's limit)"),
                ));
            }
            out.reserve_exact(out.len().max(64).min(limit - out.len()));
        }
        let consumed = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
        let input = body.get(consumed..).unwrap_or_default();
        let before_out = inflater.total_out();
        let status = inflater.decompress_vec(input, &mut out, FlushDecompress::None);
        match status {
            Ok(Status::StreamEnd) => return Ok(out),
            Ok(Status::Ok) | Ok(Status::BufError) => {
                let progressed = inflater.total_out() != before_out
                    || usize::try_from(inflater.total_in()).unwrap_or(usize::MAX) != consumed;
                let room = out.len() < out.capacity();
                if !progressed && room {
                    return Err(zlib_error(-5, "incomplete or truncated stream"));
                }
            }
            Err(_) => {
                // The deflate data may be fine and only the Adler-32 trailer
                // wrong: zlib says so, and so do we.
                let what = if deflate_ends(body.get(2..).unwrap_or_default(), limit) {
                    "incorrect data check"
                } else {
                    "invalid data"
                };
                return Err(zlib_error(-3, what));
            }
        }
    }
}

/// Whether raw deflate data inflates to its end (within `limit` bytes).
fn deflate_ends(data: &[u8], limit: usize) -> bool {
    let mut d = Decompress::new(false);
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).clamp(64, limit.max(64)));
    loop {
        let before = (d.total_in(), d.total_out());
        let input = data
            .get(usize::try_from(d.total_in()).unwrap_or(usize::MAX)..)
            .unwrap_or_default();
        match d.decompress_vec(input, &mut out, FlushDecompress::None) {
            Ok(Status::StreamEnd) => return true,
            Ok(_) if (d.total_in(), d.total_out()) != before => {
                if out.len() == out.capacity() {
                    if out.len() >= limit {
                        return false;
                    }
                    out.reserve_exact(out.len().max(64).min(limit - out.len()));
                }
            }
            _ => return false,
        }
    }
}

/// How a body's zlib stream is made. Every choice is read the same way by
/// every client (`zlib.decompress`), sqlite_rx's included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    /// [`Compression::Stored`] when the link is local (see
    /// [`Compression::for_link`]), else [`Compression::Deflate`].
    #[default]
    Auto,
    /// Deflate at the fastest level (sqlite_rx uses level 6).
    Deflate,
    /// Stored blocks: the bytes as they are, in the zlib container. On a
    /// loopback or ipc link deflate only costs CPU: a 20 KB result takes
    /// ~65 µs to deflate and ~45 µs to inflate, far more than moving the
    /// bytes it saves.
    Stored,
}

impl Compression {
    /// What `Auto` means for a link to or from `endpoint`: stored if only
    /// this machine can be at the other end ([`Endpoint::is_local`]).
    /// An endpoint that does not parse counts as remote.
    ///
    /// [`Endpoint::is_local`]: ironhouse::Endpoint::is_local
    pub fn for_link(self, endpoint: &str) -> Compression {
        match self {
            Compression::Auto => match endpoint.parse::<ironhouse::Endpoint>() {
                Ok(e) if e.is_local() => Compression::Stored,
                _ => Compression::Deflate,
            },
            chosen => chosen,
        }
    }
}

/// `zlib.compress(data)`: the zlib container Python's `zlib.decompress`
/// reads, at the fastest level (replies are made for loopback and LAN
/// links; sqlite_rx uses level 6, any level decodes the same).
pub fn compress(data: &[u8]) -> Vec<u8> {
    compress_as(data, Compression::Deflate)
}

/// [`compress`] as `how` says (`Auto` deflates: resolve it first with
/// [`Compression::for_link`]).
pub fn compress_as(data: &[u8], how: Compression) -> Vec<u8> {
    if data.len() <= STORED_MAX {
        return stored(data);
    }
    let (cell, capacity) = if how == Compression::Stored {
        // 5 bytes per stored block of up to 65,535, plus header and Adler-32.
        (&STORER, data.len() + data.len() / 65_535 * 5 + 16)
    } else {
        (&DEFLATER, data.len() / 2 + 64)
    };
    cell.with(|cell| {
        let mut deflater = cell.borrow_mut();
        deflater.reset();
        let mut out = Vec::with_capacity(capacity);
        loop {
            let consumed = usize::try_from(deflater.total_in()).unwrap_or(usize::MAX);
            let input = data.get(consumed..).unwrap_or_default();
            match deflater.compress_vec(input, &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => return out,
                Ok(_) => out.reserve(out.capacity().max(64)),
                // Compressing into a Vec with room cannot fail; fall back to
                // the one-shot encoder if it ever does.
                Err(_) => {
                    let mut enc =
                        flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                    let _ = enc.write_all(data);
                    return enc.finish().unwrap_or_default();
                }
            }
        }
    })
}

/// Up to this size a message is sent in a stored (uncompressed) deflate
/// block: deflating a few dozen bytes saves nothing and costs a
/// compressor reset (tens of KiB of tables).
const STORED_MAX: usize = 256;

/// A zlib stream with one stored block: header, block, Adler-32.
fn stored(data: &[u8]) -> Vec<u8> {
    let len = data.len() as u16;
    let mut out = Vec::with_capacity(data.len() + 11);
    out.extend_from_slice(&[0x78, 0x01, 0x01]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zlib_round_trip_and_python_errors() {
        let c = compress(b"hello");
        assert_eq!(c[0], 0x78);
        assert_eq!((u16::from(c[0]) << 8 | u16::from(c[1])) % 31, 0);
        let long: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        assert_eq!(decompress(&compress(&long), 1 << 24).unwrap(), long);
        assert_eq!(decompress(&compress(b""), 10).unwrap(), b"");
        // Small messages go in a stored block; a full inflater reads them.
        let small: Vec<u8> = (0..=255u8).collect();
        let z = compress(&small);
        assert_eq!(z.len(), small.len() + 11);
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&z[..]), &mut plain)
            .unwrap();
        assert_eq!(plain, small);
        let mut bad = z.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(
            decompress(&bad, 1000).unwrap_err().message,
            "zlib.error: Error -3 while decompressing data: incorrect data check"
        );
        assert_eq!(decompress(&c, 1 << 20).unwrap(), b"hello");
        let mut trailing = c.clone();
        trailing.extend_from_slice(b"zz");
        assert_eq!(decompress(&trailing, 1 << 20).unwrap(), b"hello");
        assert_eq!(
            decompress(b"abc", 100).unwrap_err().message,
            "zlib.error: Error -3 while decompressing data: incorrect header check"
        );
        for truncated in [&b""[..], b"x\x9c", &c[..c.len() - 2]] {
            assert_eq!(
                decompress(truncated, 100).unwrap_err().message,
                "zlib.error: Error -5 while decompressing data: incomplete or truncated stream"
            );
        }
        let big = compress(&vec![0u8; 100_000]);
        let e = decompress(&big, 1000).unwrap_err().message;
        assert!(e.contains("more than 1000 bytes"), "{e}");
        assert_eq!(decompress(&big, 200_000).unwrap().len(), 100_000);
    }

    #[test]
    fn stored_bodies_are_plain_zlib_and_auto_means_stored_only_on_local_links() {
        // 200 KB: several stored blocks (at most 65,535 bytes each).
        let long: Vec<u8> = (0..200_000u32).map(|i| (i % 7) as u8).collect();
        let stored = compress_as(&long, Compression::Stored);
        assert!(stored.len() > long.len(), "{}", stored.len());
        assert!(stored.len() < long.len() + 64, "{}", stored.len());
        let deflated = compress_as(&long, Compression::Deflate);
        assert!(deflated.len() < long.len() / 20, "{}", deflated.len());
        for body in [&stored, &deflated] {
            assert_eq!(decompress(body, 1 << 20).unwrap(), long);
            let mut plain = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&body[..]), &mut plain)
                .unwrap();
            assert_eq!(plain, long);
        }
        // The same decoder state is reused: a second stored body is right too.
        assert_eq!(
            decompress(&compress_as(&long[..70_000], Compression::Stored), 1 << 20).unwrap(),
            &long[..70_000]
        );

        let auto = |e: &str| Compression::Auto.for_link(e);
        for local in [
            "tcp://127.0.0.1:5000",
            "tcp://[::1]:1",
            "tcp://localhost:5000",
            "ipc:///tmp/x",
        ] {
            assert_eq!(auto(local), Compression::Stored, "{local}");
        }
        for remote in [
            "tcp://0.0.0.0:5000",
            "tcp://*:5000",
            "tcp://10.0.0.2:5000",
            "tcp://db:1",
            "junk",
        ] {
            assert_eq!(auto(remote), Compression::Deflate, "{remote}");
        }
        assert_eq!(
            Compression::Deflate.for_link("tcp://127.0.0.1:1"),
            Compression::Deflate
        );
        assert_eq!(
            Compression::Stored.for_link("tcp://*:1"),
            Compression::Stored
        );
    }
}
