//! Frames to and from [`ndarray`] arrays (feature `ndarray`): the element
//! type picks the dtype, the array's shape is the frame's, and the bytes are
//! laid out in C order, little-endian, whatever the array's own layout.

use ndarray::{ArrayBase, ArrayD, Data, Dimension, IxDyn};

use crate::frame::{DType, Frame};
use crate::FrameError;

/// Element types a frame can hold.
pub trait Element: Copy + 'static {
    /// The frame's dtype for this element type.
    const DTYPE: DType;
    /// Appends the little-endian bytes of `self`.
    fn put(self, out: &mut Vec<u8>);
    /// Reads one element from exactly [`DType::size`] bytes.
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! element {
    ($t:ty, $d:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                b.copy_from_slice(bytes);
                <$t>::from_le_bytes(b)
            }
        }
    };
}

element!(u8, DType::U8);
element!(i8, DType::I8);
element!(u16, DType::U16);
element!(i16, DType::I16);
element!(u32, DType::U32);
element!(i32, DType::I32);
element!(u64, DType::U64);
element!(i64, DType::I64);
element!(f32, DType::F32);
element!(f64, DType::F64);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn put(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
    fn get(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
}

impl Frame {
    /// A frame holding `array` (any layout; copied into C order).
    ///
    /// ```
    /// use ironhouse_frames::Frame;
    /// let a = ndarray::Array3::<u8>::from_shape_fn((2, 3, 3), |(y, x, c)| (y * 9 + x * 3 + c) as u8);
    /// let f = Frame::from_array(&a);
    /// assert_eq!(f.shape(), &[2, 3, 3]);
    /// assert_eq!(f.to_array::<u8>()?, a.into_dyn());
    /// # Ok::<(), ironhouse_frames::FrameError>(())
    /// ```
    pub fn from_array<T: Element, S: Data<Elem = T>, D: Dimension>(
        array: &ArrayBase<S, D>,
    ) -> Frame {
        let mut bytes = Vec::with_capacity(array.len() * T::DTYPE.size());
        // `iter` walks in logical (C) order whatever the memory layout.
        for &x in array.iter() {
            x.put(&mut bytes);
        }
        Frame::new(T::DTYPE, array.shape().to_vec(), bytes).expect("sizes agree by construction")
    }

    /// The frame as an array of `T`.
    ///
    /// # Errors
    /// [`FrameError::InvalidFrame`] when `T` is not the frame's dtype.
    pub fn to_array<T: Element>(&self) -> Result<ArrayD<T>, FrameError> {
        if T::DTYPE != self.dtype() {
            return Err(FrameError::InvalidFrame(format!(
                "the frame holds {}, not {}",
                self.dtype(),
                T::DTYPE
            )));
        }
        let items: Vec<T> = self
            .data()
            .chunks_exact(T::DTYPE.size())
            .map(T::get)
            .collect();
        ArrayD::from_shape_vec(IxDyn(self.shape()), items)
            .map_err(|e| FrameError::InvalidFrame(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Axis};

    #[test]
    fn arrays_round_trip_in_c_order_whatever_the_layout() {
        let a = Array2::<f32>::from_shape_fn((3, 4), |(y, x)| y as f32 * 10.0 + x as f32);
        let f = Frame::from_array(&a);
        assert_eq!(f.dtype(), DType::F32);
        assert_eq!(&f.data()[..4], &0.0f32.to_le_bytes());
        assert_eq!(f.to_array::<f32>().unwrap(), a.clone().into_dyn());
        // A transposed view (Fortran layout) is written in its logical C order.
        let t = a.t();
        let ft = Frame::from_array(&t);
        assert_eq!(ft.shape(), &[4, 3]);
        assert_eq!(ft.to_array::<f32>().unwrap(), t.to_owned().into_dyn());
        // Selected columns too.
        let sl = a.select(Axis(1), &[0, 2]);
        assert_eq!(
            Frame::from_array(&sl).to_array::<f32>().unwrap(),
            sl.to_owned().into_dyn()
        );
        assert!(f.to_array::<u8>().is_err());
        let b = Frame::from_array(&ndarray::arr1(&[true, false]));
        assert_eq!(b.data().as_ref(), &[1, 0]);
    }

    #[test]
    fn synthetic_frames_become_arrays() {
        let f = Frame::synthetic(4, 5, 3, 2);
        let a = f.to_array::<u8>().unwrap();
        assert_eq!(a.shape(), &[4, 5, 3]);
        assert_eq!(Frame::from_array(&a), f);
    }
}
