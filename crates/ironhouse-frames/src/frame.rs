//! Frames: n-dimensional arrays as NetGear sends them — a numpy dtype name, a
//! shape and the C-contiguous bytes, in the machine's (little-endian) byte
//! order.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use crate::FrameError;

/// An element type, named as numpy's `str(dtype)` names it on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// `uint8` (video frames).
    U8,
    /// `int8`.
    I8,
    /// `uint16`.
    U16,
    /// `int16`.
    I16,
    /// `uint32`.
    U32,
    /// `int32`.
    I32,
    /// `uint64`.
    U64,
    /// `int64`.
    I64,
    /// `float16`.
    F16,
    /// `float32`.
    F32,
    /// `float64`.
    F64,
    /// `bool` (one byte per element).
    Bool,
}

impl DType {
    /// Every dtype, for parsing and tests.
    pub const ALL: [DType; 12] = [
        DType::U8,
        DType::I8,
        DType::U16,
        DType::I16,
        DType::U32,
        DType::I32,
        DType::U64,
        DType::I64,
        DType::F16,
        DType::F32,
        DType::F64,
        DType::Bool,
    ];

    /// numpy's name (`str(frame.dtype)`), as NetGear's header carries it.
    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::U16 => "uint16",
            DType::I16 => "int16",
            DType::U32 => "uint32",
            DType::I32 => "int32",
            DType::U64 => "uint64",
            DType::I64 => "int64",
            DType::F16 => "float16",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::Bool => "bool",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 | DType::Bool => 1,
            DType::U16 | DType::I16 | DType::F16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = FrameError;

    /// numpy names (`uint8`) and little-endian or byte-order-free type codes
    /// (`<u1`, `|u1`, `<f4`, …). Big-endian codes are refused: the bytes
    /// would be read wrongly.
    fn from_str(s: &str) -> Result<Self, FrameError> {
        if let Some(d) = DType::ALL.iter().find(|d| d.name() == s) {
            return Ok(*d);
        }
        let code = s.strip_prefix(['<', '|', '=']).unwrap_or(s);
        let d = match code {
            "u1" | "B" => DType::U8,
            "i1" | "b" => DType::I8,
            "u2" | "H" => DType::U16,
            "i2" | "h" => DType::I16,
            "u4" | "I" => DType::U32,
            "i4" | "i" => DType::I32,
            "u8" | "Q" => DType::U64,
            "i8" | "q" => DType::I64,
            "f2" | "e" => DType::F16,
            "f4" | "f" => DType::F32,
            "f8" | "d" => DType::F64,
            "b1" | "?" => DType::Bool,
            _ => {
                return Err(FrameError::BadMessage(format!(
                    "unsupported dtype {s:?} (numeric numpy dtypes in little-endian order only)"
                )))
            }
        };
        Ok(d)
    }
}

/// A C-contiguous n-dimensional array: what NetGear sends as one frame.
///
/// ```
/// use ironhouse_frames::{DType, Frame};
/// let f = Frame::new(DType::U8, vec![2, 3, 3], vec![0u8; 18])?;
/// assert_eq!(f.len_elements(), 18);
/// assert!(Frame::new(DType::U16, vec![2, 3], vec![0u8; 6]).is_err());
/// # Ok::<(), ironhouse_frames::FrameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    dtype: DType,
    shape: Vec<usize>,
    data: Bytes,
}

impl Frame {
    /// A frame of `shape` elements of `dtype`; `data` must hold exactly
    /// that many bytes, C order, little-endian.
    ///
    /// # Errors
    /// [`FrameError::InvalidFrame`] when the sizes disagree or overflow.
    pub fn new(
        dtype: DType,
        shape: Vec<usize>,
        data: impl Into<Bytes>,
    ) -> Result<Frame, FrameError> {
        let data = data.into();
        let want = byte_len(dtype, &shape).ok_or_else(|| {
            FrameError::InvalidFrame(format!("shape {shape:?} of {dtype} overflows"))
        })?;
        if want != data.len() {
            return Err(FrameError::InvalidFrame(format!(
                "shape {shape:?} of {dtype} needs {want} bytes, got {}",
                data.len()
            )));
        }
        Ok(Frame { dtype, shape, data })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape (rows, columns, channels for video).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The raw bytes, C order.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The bytes, giving up the frame.
    pub fn into_data(self) -> Bytes {
        self.data
    }

    /// The number of elements.
    pub fn len_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// A `h`×`w`×`c` `uint8` frame whose bytes are a function of `seq`, for
    /// tests, demos and benchmarks; [`Frame::is_synthetic`] checks one.
    pub fn synthetic(h: usize, w: usize, c: usize, seq: u64) -> Frame {
        let n = h * w * c;
        let data: Vec<u8> = (0..n).map(|i| synthetic_byte(i, seq)).collect();
        Frame {
            dtype: DType::U8,
            shape: if c == 1 { vec![h, w] } else { vec![h, w, c] },
            data: Bytes::from(data),
        }
    }

    /// A smooth `h`×`w`×3 `uint8` picture (gradients, like a camera's
    /// rather than noise), for JPEG tests and demos.
    pub fn gradient(h: usize, w: usize) -> Frame {
        let mut d = Vec::with_capacity(h * w * 3);
        for y in 0..h {
            for x in 0..w {
                d.push((x * 255 / w) as u8);
                d.push((y * 255 / h) as u8);
                d.push(((x + y) * 255 / (w + h)) as u8);
            }
        }
        Frame {
            dtype: DType::U8,
            shape: vec![h, w, 3],
            data: Bytes::from(d),
        }
    }

    /// Whether this is exactly [`Frame::synthetic`]`(.., seq)` of its shape.
    pub fn is_synthetic(&self, seq: u64) -> bool {
        self.dtype == DType::U8
            && self
                .data
                .iter()
                .enumerate()
                .all(|(i, &b)| b == synthetic_byte(i, seq))
    }
}

fn synthetic_byte(i: usize, seq: u64) -> u8 {
    // Varies along the row and with the sequence number; cheap to check.
    (i as u64)
        .wrapping_mul(31)
        .wrapping_add(seq.wrapping_mul(7)) as u8
}

/// `shape`'s byte length, `None` on overflow.
pub(crate) fn byte_len(dtype: DType, shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_names_round_trip_and_codes_parse() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>().unwrap(), d);
        }
        assert_eq!("<f4".parse::<DType>().unwrap(), DType::F32);
        assert_eq!("|u1".parse::<DType>().unwrap(), DType::U8);
        assert!(">f4".parse::<DType>().is_err());
        assert!("object".parse::<DType>().is_err());
    }

    #[test]
    fn frame_checks_sizes() {
        assert!(Frame::new(DType::F32, vec![2, 2], vec![0u8; 16]).is_ok());
        assert!(Frame::new(DType::F32, vec![2, 2], vec![0u8; 15]).is_err());
        assert!(Frame::new(DType::U8, vec![usize::MAX, 2], Vec::new()).is_err());
        let f = Frame::synthetic(4, 5, 3, 9);
        assert!(f.is_synthetic(9));
        assert!(!f.is_synthetic(10));
        assert_eq!(f.shape(), &[4, 5, 3]);
    }
}
