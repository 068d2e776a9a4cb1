//! `ironhouse frames send|recv`: NetGear-compatible frame streaming on the
//! command line (ironhouse-frames), for demos, debugging and the frames
//! benchmark. Either end can be a Python NetGear.
//!
//! `send` makes synthetic frames (`--size WxHxC`, byte i of frame n is
//! (31 i + 7 n) mod 256, each with the message `{"seq": n}`) or reads raw
//! frames from a file (`--file`, looped); `recv` counts frames and bytes,
//! optionally checks the synthetic pattern (`--verify`), and prints frames/s
//! and MB/s from the first frame to the last. `--json` prints one JSON
//! object instead (for bench/frames.py). Bound endpoints are announced on
//! stderr as `bound <endpoint>`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ironhouse_frames::{
    Colorspace, DType, Frame, FrameReceiver, FrameSender, Jpeg, KeyStore, Pattern, ReceiverConfig,
    SecureMode, SenderConfig, Value,
};

/// `ironhouse frames` subcommands.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Connect and send frames (NetGear's server, receive_mode=False).
    Send(SendArgs),
    /// Bind and receive frames (NetGear's client, receive_mode=True).
    Recv(RecvArgs),
}

#[derive(clap::Args, Debug)]
struct Common {
    /// NetGear pattern: 0 PAIR, 1 REQ/REP, 2 PUB/SUB.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    pattern: u8,
    /// NetGear secure mode: 0 none, 1 StoneHouse, 2 IronHouse (CURVE).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    secure: u8,
    /// Key location (NetGear's custom_cert_location; `.vidgear` is appended
    /// unless present) [default: ~/.vidgear].
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Accept secret key files others can read (NetGear writes them 0644).
    #[arg(long)]
    allow_insecure_key_permissions: bool,
    /// Make new server and client key pairs in the key location first,
    /// replacing any (NetGear's overwrite_cert); peers need the new public keys.
    #[arg(long)]
    regenerate_keys: bool,
    /// Bidirectional mode (patterns 0, 1).
    #[arg(long)]
    bidirectional: bool,
    /// Print one JSON object with the results instead of text.
    #[arg(long)]
    json: bool,
    /// Frames queued per peer (pattern 2 drops beyond it) [default: 1 for
    /// pattern 2, as NetGear; 1000 otherwise].
    #[arg(long)]
    hwm: Option<usize>,
}

#[derive(clap::Args, Debug)]
struct SendArgs {
    /// Receiver endpoint; several: multi-client mode.
    #[arg(long, required = true)]
    connect: Vec<String>,
    #[command(flatten)]
    common: Common,
    /// Synthetic frame size, WIDTHxHEIGHTxCHANNELS.
    #[arg(long, default_value = "640x480x3")]
    size: String,
    /// Raw frames from this file (each WIDTH*HEIGHT*CHANNELS bytes, looped).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Frames to send.
    #[arg(long, default_value_t = 100)]
    count: u64,
    /// Stop sending after this many seconds, even before --count frames
    /// (for pattern 2 benchmarks: publish as fast as possible for a while).
    #[arg(long)]
    duration: Option<f64>,
    /// Multi-server mode: this sender's port, sent with every frame.
    #[arg(long)]
    multiserver_port: Option<String>,
    /// Send JPEG with this colorspace (RGB, BGR, GRAY).
    #[arg(long)]
    jpeg: Option<String>,
    /// JPEG quality, 10-100.
    #[arg(long, default_value_t = 90)]
    jpeg_quality: u8,
    /// Seconds to wait for each reply (patterns 0, 1).
    #[arg(long, default_value_t = 4.0)]
    timeout: f64,
    /// Replies lost in a row before giving up.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Pattern 1: frames in flight before waiting for a reply (1: NetGear's
    /// lock-step REQ; more: a DEALER, same wire for the receiver).
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// Send at this many frames per second, as a camera would (the last
    /// frame gets its interval too before the termination message)
    /// [default: as fast as the receiver takes them].
    #[arg(long)]
    fps: Option<f64>,
}

#[derive(clap::Args, Debug)]
struct RecvArgs {
    /// Endpoint to bind; several: multi-server mode.
    #[arg(long, required = true)]
    bind: Vec<String>,
    #[command(flatten)]
    common: Common,
    /// Stop after this many frames (default: until the sender terminates).
    #[arg(long)]
    count: Option<u64>,
    /// Check every frame is the sender's synthetic frame `seq`.
    #[arg(long)]
    verify: bool,
    /// Give up after this many seconds without a frame.
    #[arg(long)]
    timeout: Option<f64>,
    /// Multi-client mode: this receiver's port, sent with every reply.
    #[arg(long)]
    multiclient_port: Option<String>,
    /// IronHouse: folder of allowed client `.key` files [default: the key
    /// location's public_keys/].
    #[arg(long)]
    allow_list: Option<PathBuf>,
}

fn key_store(c: &Common) -> Result<KeyStore, crate::BoxError> {
    let ks = match &c.keys {
        Some(dir) => KeyStore::at(dir),
        None => KeyStore::default_location()?,
    };
    let ks = ks.allow_insecure_permissions(c.allow_insecure_key_permissions);
    if c.regenerate_keys {
        ks.regenerate()?;
        eprintln!("new key pairs in {}", ks.dir().join("keys").display());
    }
    Ok(ks)
}

fn pattern(c: &Common) -> Pattern {
    Pattern::from_number(c.pattern).expect("clap checked 0..=2")
}

fn secure(c: &Common) -> SecureMode {
    SecureMode::from_number(c.secure).expect("clap checked 0..=2")
}

fn parse_size(s: &str) -> Result<(usize, usize, usize), crate::BoxError> {
    let parts: Vec<usize> = s
        .split('x')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| format!("--size {s:?}: expected WIDTHxHEIGHTxCHANNELS, like 640x480x3"))?;
    match parts[..] {
        [w, h, c] if w > 0 && h > 0 && c > 0 => Ok((w, h, c)),
        _ => Err(format!("--size {s:?}: expected WIDTHxHEIGHTxCHANNELS, like 640x480x3").into()),
    }
}

/// Runs `ironhouse frames`.
pub fn run(args: Args) -> Result<ExitCode, crate::BoxError> {
    // One thread for the application loop and the connections' I/O. A
    // frame then goes from the socket to the loop (and a reply back) with no
    // hand-off between threads, each of which costs tens of µs on a VM: on
    // this 2-vCPU VM, pattern 1 raw went from ~2,000–2,700 to ~3,100–3,400
    // frames/s, IronHouse from ~470 to ~540, and pattern 2 to two receivers
    // from ~1,300 to ~2,100–2,400 per receiver, against 2 workers.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.cmd {
        Cmd::Send(a) => rt.block_on(send(a)),
        Cmd::Recv(a) => rt.block_on(recv(a)),
    }
}

fn report(json: bool, role: &str, frames: u64, bytes: u64, secs: f64, extra: &[(&str, Value)]) {
    let fps = if secs > 0.0 {
        frames as f64 / secs
    } else {
        0.0
    };
    let mbps = if secs > 0.0 {
        bytes as f64 / secs / 1e6
    } else {
        0.0
    };
    if json {
        let mut m = serde_json::Map::new();
        m.insert("role".into(), role.into());
        m.insert("frames".into(), frames.into());
        m.insert("bytes".into(), bytes.into());
        m.insert("seconds".into(), secs.into());
        m.insert("frames_per_sec".into(), fps.into());
        m.insert("mb_per_sec".into(), mbps.into());
        for (k, v) in extra {
            m.insert((*k).into(), v.clone());
        }
        println!("{}", Value::Object(m));
    } else {
        println!("{role}: {frames} frames, {bytes} bytes in {secs:.3} s: {fps:.1} frames/s, {mbps:.1} MB/s");
        for (k, v) in extra {
            println!("{k}: {v}");
        }
    }
}

async fn send(a: SendArgs) -> Result<ExitCode, crate::BoxError> {
    let c = &a.common;
    let p = pattern(c);
    let mut cfg = SenderConfig::new(p)
        .bidirectional(c.bidirectional)
        .multiclient(a.connect.len() > 1)
        .timeouts(
            Duration::from_secs_f64(a.timeout),
            a.retries,
            Duration::from_secs_f64(a.timeout.max(10.0)),
        );
    if secure(c) != SecureMode::Grassland {
        cfg = cfg.secure(secure(c), key_store(c)?);
    }
    if let Some(port) = &a.multiserver_port {
        cfg = cfg.multiserver_port(port.clone());
    }
    if let Some(h) = c.hwm {
        cfg = cfg.hwm(h);
    }
    cfg = cfg.window(a.window);
    if let Some(cs) = &a.jpeg {
        let colorspace = Colorspace::from_name(&cs.to_uppercase())
            .ok_or_else(|| format!("--jpeg {cs:?}: RGB, BGR or GRAY"))?;
        cfg = cfg.jpeg(Some(Jpeg {
            quality: a.jpeg_quality.clamp(10, 100),
            colorspace,
            ..Jpeg::default()
        }));
    }
    let (w, h, ch) = parse_size(&a.size)?;
    let frame_len = w * h * ch;
    let shape = if ch == 1 { vec![h, w] } else { vec![h, w, ch] };
    // Up to 16 distinct frames, reused round-robin: the cost measured is
    // the transport's, not making frames.
    let frames: Vec<Frame> = match &a.file {
        Some(path) => {
            let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            if data.len() < frame_len {
                return Err(format!(
                    "{}: shorter than one {}x{}x{} frame",
                    path.display(),
                    w,
                    h,
                    ch
                )
                .into());
            }
            data.chunks_exact(frame_len)
                .take(16)
                .map(|chunk| Frame::new(DType::U8, shape.clone(), chunk.to_vec()))
                .collect::<Result<_, _>>()?
        }
        None => (0..a.count.clamp(1, 16))
            .map(|i| Frame::synthetic(h, w, ch, i))
            .collect(),
    };
    let interval = match a.fps {
        Some(r) if r.is_finite() && r > 0.0 => Some(Duration::from_secs_f64(1.0 / r)),
        Some(r) => return Err(format!("--fps {r}: expected a positive number").into()),
        None => None,
    };
    let eps: Vec<&str> = a.connect.iter().map(String::as_str).collect();
    let mut tx = FrameSender::connect(&eps, cfg).await?;
    let start = Instant::now();
    // Frame n leaves at start + n intervals.
    let paced = |n: u64| async move {
        if let Some(i) = interval {
            let due = start + i.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
            tokio::time::sleep_until(due.into()).await;
        }
    };
    let mut bytes = 0u64;
    let mut replies = 0u64;
    let stop = a.duration.map(|d| start + Duration::from_secs_f64(d));
    let mut sent = 0u64;
    for n in 0..a.count {
        if stop.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        paced(n).await;
        sent += 1;
        let f = &frames[(n % frames.len() as u64) as usize];
        // The synthetic frame's seq, so a receiver can --verify it.
        let seq = n % frames.len() as u64;
        let msg = serde_json::json!({ "seq": seq });
        if tx.send(f, Some(&msg)).await?.is_some() {
            replies += 1;
        }
        bytes += f.data().len() as u64;
    }
    paced(sent).await;
    let secs = start.elapsed().as_secs_f64();
    let acks = tx.close().await?;
    report(
        c.json,
        "send",
        sent,
        bytes,
        secs,
        &[
            ("replies", replies.into()),
            ("terminated", Value::from(acks)),
        ],
    );
    Ok(ExitCode::SUCCESS)
}

async fn recv(a: RecvArgs) -> Result<ExitCode, crate::BoxError> {
    let c = &a.common;
    let p = pattern(c);
    let mut cfg = ReceiverConfig::new(p)
        .bidirectional(c.bidirectional)
        .multiserver(a.bind.len() > 1)
        .recv_timeout(a.timeout.map(Duration::from_secs_f64));
    if secure(c) != SecureMode::Grassland {
        let mut ks = key_store(c)?;
        if let Some(dir) = &a.allow_list {
            ks = ks.allow_list(dir);
        }
        cfg = cfg.secure(secure(c), ks);
    }
    if let Some(port) = &a.multiclient_port {
        cfg = cfg.multiclient_port(port.clone());
    }
    if let Some(h) = c.hwm {
        cfg = cfg.hwm(h);
    }
    let eps: Vec<&str> = a.bind.iter().map(String::as_str).collect();
    let mut rx = FrameReceiver::bind(&eps, cfg).await?;
    for ep in rx.endpoints() {
        eprintln!("bound {ep}");
    }
    let mut frames = 0u64;
    let mut bytes = 0u64;
    let mut bad = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    while a.count.is_none_or(|n| frames < n) {
        let r = match rx.recv().await {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(ironhouse_frames::FrameError::Timeout { .. }) if frames > 0 => break,
            Err(e) => return Err(e.into()),
        };
        let now = Instant::now();
        first.get_or_insert(now);
        last = now;
        frames += 1;
        bytes += r.frame.data().len() as u64;
        if a.verify {
            let seq = r
                .message
                .as_ref()
                .and_then(|m| m.get("seq"))
                .and_then(Value::as_u64);
            if !seq.is_some_and(|s| r.frame.is_synthetic(s)) {
                bad += 1;
            }
        }
    }
    // The first frame starts the clock: count the frames after it.
    let secs = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let timed = frames.saturating_sub(1);
    let timed_bytes = bytes - bytes.checked_div(frames).unwrap_or(0);
    let mut extra = vec![("terminated", Value::from(rx.is_terminated()))];
    if a.verify {
        extra.push(("verify_failed", bad.into()));
    }
    report(c.json, "recv", timed, timed_bytes, secs, &extra);
    rx.close().await;
    if bad > 0 {
        return Err(format!(
            "{bad} of {frames} frames are not the synthetic frames they claim to be"
        )
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
