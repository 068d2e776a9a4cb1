//! What `ironhouse cert` reads from certificates besides what
//! `ironhouse::security::pki` gives: validity, basic constraints, extended
//! key usages, the subject key identifier, the public key and the subject's
//! attributes (to sign with a CA made elsewhere). A small bounds-checked DER
//! reader: anything unexpected is `None`, never a panic.

/// One TLV from the front of `input`: (tag, contents), advancing `input`.
fn next<'a>(input: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, r) = rest.split_at_checked(n)?;
        rest = r;
        bytes.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b))
    };
    let (body, rest) = rest.split_at_checked(len)?;
    *input = rest;
    Some((tag, body))
}

/// The next TLV, which must have tag `want`; returns its contents.
fn expect<'a>(input: &mut &'a [u8], want: u8) -> Option<&'a [u8]> {
    match next(input)? {
        (tag, body) if tag == want => Some(body),
        _ => None,
    }
}

/// The next TLV with its header (tag and length), whole.
fn whole<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let start = *input;
    next(input)?;
    Some(&start[..start.len() - input.len()])
}

const SEQ: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];
const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

/// A point in time from a certificate, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time {
    /// Seconds since 1970-01-01 00:00:00 UTC.
    pub unix: i64,
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days = self.unix.div_euclid(86_400);
        let secs = self.unix.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn time(tag: u8, body: &[u8]) -> Option<Time> {
    let s = std::str::from_utf8(body).ok()?;
    let s = s.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if s.len() == 12 => {
            let yy: i64 = s.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
        }
        0x18 if s.len() == 14 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let days = days_from_civil(year, n(0)?, n(2)?);
    Some(Time {
        unix: days * 86_400 + n(4)? * 3600 + n(6)? * 60 + n(8)?,
    })
}

/// One subject attribute: OID arcs, string tag, raw value.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub oid: Vec<u64>,
    pub tag: u8,
    pub value: Vec<u8>,
}

/// What `cert show` and `cert issue` need from a certificate.
#[derive(Debug, Clone, Default)]
pub struct Details {
    pub not_before: Option<Time>,
    pub not_after: Option<Time>,
    /// basicConstraints cA.
    pub is_ca: bool,
    pub server_auth: bool,
    pub client_auth: bool,
    /// Whether the certificate has an extended key usage extension at all.
    pub has_eku: bool,
    pub subject_key_id: Option<Vec<u8>>,
    /// The whole SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
    /// The whole subject Name, DER (with its header).
    pub subject_der: Vec<u8>,
    /// The whole issuer Name, DER (with its header).
    pub issuer_der: Vec<u8>,
    /// The subject's attributes, one per RDN; `None` if an RDN has several.
    pub subject_attrs: Option<Vec<Attribute>>,
}

/// Reads a certificate; `None` if it is not one.
pub fn details(der: &[u8]) -> Option<Details> {
    let mut input = der;
    let mut cert = expect(&mut input, SEQ)?;
    let mut tbs = expect(&mut cert, SEQ)?;
    let mut peek = tbs;
    if let Some((0xa0, _)) = next(&mut peek) {
        tbs = peek;
    }
    expect(&mut tbs, 0x02)?; // serial
    expect(&mut tbs, SEQ)?; // signature algorithm
    let issuer = whole(&mut tbs)?;
    let mut validity = expect(&mut tbs, SEQ)?;
    let subject = whole(&mut tbs)?;
    let spki = whole(&mut tbs)?;
    let mut d = Details {
        spki: spki.to_vec(),
        subject_der: subject.to_vec(),
        issuer_der: issuer.to_vec(),
        subject_attrs: attributes(subject),
        ..Details::default()
    };
    if let Some((tag, body)) = next(&mut validity) {
        d.not_before = time(tag, body);
    }
    if let Some((tag, body)) = next(&mut validity) {
        d.not_after = time(tag, body);
    }
    while let Some((tag, mut body)) = next(&mut tbs) {
        if tag == 0xa3 {
            extensions(expect(&mut body, SEQ)?, &mut d);
        }
    }
    Some(d)
}

fn extensions(mut list: &[u8], d: &mut Details) {
    while let Some(mut ext) = expect(&mut list, SEQ) {
        let Some(oid) = expect(&mut ext, OID) else {
            return;
        };
        let mut peek = ext;
        if let Some((0x01, _)) = next(&mut peek) {
            ext = peek; // critical
        }
        let Some(mut value) = expect(&mut ext, 0x04) else {
            return;
        };
        match oid {
            BASIC_CONSTRAINTS => {
                if let Some(mut bc) = expect(&mut value, SEQ) {
                    if let Some((0x01, flag)) = next(&mut bc) {
                        d.is_ca = flag.first().is_some_and(|&b| b != 0);
                    }
                }
            }
            SUBJECT_KEY_ID => d.subject_key_id = expect(&mut value, 0x04).map(<[u8]>::to_vec),
            EXT_KEY_USAGE => {
                d.has_eku = true;
                if let Some(mut ekus) = expect(&mut value, SEQ) {
                    while let Some(eku) = expect(&mut ekus, OID) {
                        d.server_auth |= eku == SERVER_AUTH;
                        d.client_auth |= eku == CLIENT_AUTH;
                    }
                }
            }
            _ => {}
        }
    }
}

fn attributes(name: &[u8]) -> Option<Vec<Attribute>> {
    let mut name = name;
    let mut rdns = expect(&mut name, SEQ)?;
    let mut out = Vec::new();
    while !rdns.is_empty() {
        let mut set = expect(&mut rdns, SET)?;
        let mut atv = expect(&mut set, SEQ)?;
        if !set.is_empty() {
            return None; // multi-valued RDN
        }
        let oid = arcs(expect(&mut atv, OID)?)?;
        let (tag, value) = next(&mut atv)?;
        out.push(Attribute {
            oid,
            tag,
            value: value.to_vec(),
        });
    }
    Some(out)
}

fn arcs(oid: &[u8]) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    let mut acc: u64 = 0;
    for (i, &b) in oid.iter().enumerate() {
        acc = acc.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if out.is_empty() {
                let first = (acc / 40).min(2);
                out.push(first);
                out.push(acc - first * 40);
            } else {
                out.push(acc);
            }
            acc = 0;
        } else if i + 1 == oid.len() {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Base64 (standard alphabet, padded), for writing PEM.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A DER certificate as a PEM block.
pub fn cert_pem(der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_base64() {
        assert_eq!(
            time(0x17, b"250102030405Z").unwrap().to_string(),
            "2025-01-02 03:04:05 UTC"
        );
        assert_eq!(
            time(0x18, b"40960101000000Z").unwrap().to_string(),
            "4096-01-01 00:00:00 UTC"
        );
        assert_eq!(time(0x17, b"991231235959Z").unwrap().unix, 946_684_799);
        assert!(time(0x17, b"9912312359Z").is_none());
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        for n in 0..64 {
            let noise: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            let _ = details(&noise);
        }
    }
}
