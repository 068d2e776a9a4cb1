//! Times this crate's JPEG codecs (jpeg-encoder, zune-jpeg) on a 640×480×3
//! picture at quality 90, 4:2:2, as NetGear's simplejpeg is used, for the
//! codec choice recorded in BENCHMARKS.md:
//! `cargo run --release -p ironhouse-frames --features jpeg --example jpeg_speed`.

#[cfg(feature = "jpeg")]
fn main() {
    use ironhouse_frames::{Frame, Jpeg};
    use std::time::Instant;
    let picture = Frame::gradient(480, 640);
    let noise = Frame::synthetic(480, 640, 3, 1);
    let j = Jpeg::default();
    for (name, f) in [("gradient", &picture), ("noise", &noise)] {
        let n = 200;
        let t = Instant::now();
        let mut bytes = Vec::new();
        for _ in 0..n {
            bytes = j.encode(f).expect("encode");
        }
        let enc = t.elapsed().as_secs_f64() * 1e3 / f64::from(n);
        let t = Instant::now();
        for _ in 0..n {
            ironhouse_frames::jpeg::decode_bgr(&bytes).expect("decode");
        }
        let dec = t.elapsed().as_secs_f64() * 1e3 / f64::from(n);
        println!(
            "{name}: {} bytes, encode {enc:.3} ms, decode {dec:.3} ms",
            bytes.len()
        );
    }
}

#[cfg(not(feature = "jpeg"))]
fn main() {
    eprintln!("build with --features jpeg");
}
