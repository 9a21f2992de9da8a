//! `.npy` files (NumPy's format, versions 1–3): float32, float64, int32 and int64, either byte
//! order, C or Fortran order.
//!
//! The reader checks the shape its header claims against the bytes the file actually holds
//! before it allocates anything, so a hostile header cannot make it reserve memory.

use std::path::Path;

use ndarray::{ArrayD, IxDyn, ShapeBuilder};

use crate::error::{Error, Result};

/// The element types this crate reads.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyArray {
    /// `<f4`
    F32(ArrayD<f32>),
    /// `<f8`
    F64(ArrayD<f64>),
    /// `<i4`
    I32(ArrayD<i32>),
    /// `<i8`
    I64(ArrayD<i64>),
}

impl NpyArray {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            NpyArray::F32(a) => a.shape(),
            NpyArray::F64(a) => a.shape(),
            NpyArray::I32(a) => a.shape(),
            NpyArray::I64(a) => a.shape(),
        }
    }

    /// NumPy's name of the element type.
    pub fn dtype(&self) -> &'static str {
        match self {
            NpyArray::F32(_) => "float32",
            NpyArray::F64(_) => "float64",
            NpyArray::I32(_) => "int32",
            NpyArray::I64(_) => "int64",
        }
    }
}

const MAGIC: &[u8] = b"\x93NUMPY";

#[derive(Debug, Clone, Copy)]
enum Kind {
    F32,
    F64,
    I32,
    I64,
}

/// The parsed header: element kind, byte order, layout, shape, and where the data starts.
struct Header {
    kind: Kind,
    big_endian: bool,
    fortran: bool,
    shape: Vec<usize>,
    data_start: usize,
}

/// Reads an `.npy` file.
pub fn read(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes).map_err(|m| Error::invalid_file(path, m))
}

/// Parses the bytes of an `.npy` file; the error is a message without the path.
pub fn parse(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    let h = header(bytes)?;
    let data = &bytes[h.data_start..];
    let n = h
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("the header's shape overflows")?;
    let item = match h.kind {
        Kind::F32 | Kind::I32 => 4,
        Kind::F64 | Kind::I64 => 8,
    };
    let expected = n.checked_mul(item).ok_or("the header's shape overflows")?;
    if data.len() != expected {
        return Err(format!(
            "the header claims shape {} ({expected} bytes) but the file holds {} bytes of data",
            crate::Shape(h.shape.clone()),
            data.len()
        ));
    }
    let shape = if h.fortran {
        IxDyn(&h.shape).f()
    } else {
        IxDyn(&h.shape).into_shape_with_order()
    };
    let words = data.chunks_exact(item);
    macro_rules! build {
        ($t:ty, $variant:ident, $n:expr) => {{
            let v: Vec<$t> = words
                .map(|c| {
                    let b: [u8; $n] = c.try_into().expect("chunk size");
                    if h.big_endian {
                        <$t>::from_be_bytes(b)
                    } else {
                        <$t>::from_le_bytes(b)
                    }
                })
                .collect();
            let a = ArrayD::from_shape_vec(shape, v).map_err(|e| e.to_string())?;
            NpyArray::$variant(a.as_standard_layout().into_owned())
        }};
    }
    Ok(match h.kind {
        Kind::F32 => build!(f32, F32, 4),
        Kind::F64 => build!(f64, F64, 8),
        Kind::I32 => build!(i32, I32, 4),
        Kind::I64 => build!(i64, I64, 8),
    })
}

fn header(bytes: &[u8]) -> std::result::Result<Header, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (bad magic bytes)".into());
    }
    let (len, start) = match bytes[6] {
        1 => (
            usize::from(u16::from_le_bytes([bytes[8], bytes[9]])),
            10usize,
        ),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated .npy header".into());
            }
            let l = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (l as usize, 12)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated .npy header")?;
    let text =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| "the .npy header is not text")?;
    let descr = dict_value(text, "descr").ok_or("the .npy header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let (big_endian, code) = if let Some(c) = descr.strip_prefix('>') {
        (true, c)
    } else if let Some(c) = descr.strip_prefix(['<', '|', '=']) {
        (false, c)
    } else {
        (false, descr)
    };
    let kind = match code {
        "f4" => Kind::F32,
        "f8" => Kind::F64,
        "i4" => Kind::I32,
        "i8" => Kind::I64,
        _ => {
            return Err(format!(
                "element type '{descr}' is not supported (float32, float64, int32 or int64)"
            ))
        }
    };
    let fortran = match dict_value(text, "fortran_order") {
        Some("True") => true,
        Some("False") => false,
        _ => return Err("the .npy header has no valid 'fortran_order'".into()),
    };
    let shape_text = dict_value(text, "shape").ok_or("the .npy header has no 'shape'")?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or("the .npy header's 'shape' is not a tuple")?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad dimension '{s}' in the .npy shape"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Header {
        kind,
        big_endian,
        fortran,
        shape,
        data_start: end,
    })
}

/// The text of `key`'s value in a Python dict literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
fn dict_value<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    let at = text
        .find(&format!("'{key}'"))
        .or_else(|| text.find(&format!("\"{key}\"")))?;
    let rest = text[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else if let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
        rest[1..].find(q)? + 2
    } else {
        rest.find([',', '}'])?
    };
    Some(rest[..end].trim())
}

/// Magic, version 1, length and header dict (padded so data starts at a multiple of 64 bytes).
fn preamble(dict: &str) -> Vec<u8> {
    let mut header = dict.to_string();
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// NumPy's text of a shape tuple: `()`, `(3,)`, `(2, 3)`.
fn shape_tuple(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    }
}

/// The bytes of a float32 `.npy` file (version 1, C order) holding `a`.
pub fn to_bytes(a: &ArrayD<f32>) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}",
        shape_tuple(a.shape())
    );
    let mut out = preamble(&dict);
    out.reserve(a.len() * 4);
    for v in a.iter() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes `a` as a float32 `.npy` file, atomically.
pub fn write(path: &Path, a: &ArrayD<f32>) -> Result<()> {
    super::write_atomic(path, &to_bytes(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let order = if fortran { "True" } else { "False" };
        let mut b = preamble(&format!(
            "{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}"
        ));
        b.extend_from_slice(data);
        b
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn round_trip_and_fortran_order() {
        let a =
            ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let bytes = to_bytes(&a);
        assert_eq!((bytes.len() - a.len() * 4) % 64, 0);
        assert_eq!(parse(&bytes).unwrap(), NpyArray::F32(a.clone()));
        // The same data declared Fortran-ordered is laid out column by column.
        let f = file(
            "<f4",
            true,
            "(2, 3)",
            &f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        );
        let expect =
            ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0f32, 3.0, 5.0, 2.0, 4.0, 6.0]).unwrap();
        assert_eq!(parse(&f).unwrap(), NpyArray::F32(expect));
    }

    #[test]
    fn huge_claimed_shape_is_rejected_before_allocating() {
        let f = file("<f4", false, "(400000000, 4000)", &f32_bytes(&[1.0, 2.0]));
        let e = parse(&f).unwrap_err();
        assert!(
            e.contains("the header claims shape [400000000, 4000]"),
            "{e}"
        );
        let f = file("<f4", false, "(99999999999, 99999999999, 99999999999)", &[]);
        assert!(parse(&f).unwrap_err().contains("overflows"));
    }

    #[test]
    fn scalars_ints_big_endian_and_bad_types() {
        let b = to_bytes(&ArrayD::<f32>::zeros(IxDyn(&[])));
        assert_eq!(parse(&b).unwrap().shape(), &[] as &[usize]);
        let f = file(">i4", false, "(1,)", &7i32.to_be_bytes());
        assert_eq!(
            parse(&f).unwrap(),
            NpyArray::I32(ArrayD::from_elem(IxDyn(&[1]), 7))
        );
        let f = file(
            "<i8",
            false,
            "(2,)",
            &[3i64.to_le_bytes(), (-1i64).to_le_bytes()].concat(),
        );
        assert_eq!(
            parse(&f).unwrap(),
            NpyArray::I64(ArrayD::from_shape_vec(IxDyn(&[2]), vec![3, -1]).unwrap())
        );
        let f = file("<f2", false, "(1,)", &[0, 0]);
        assert!(parse(&f)
            .unwrap_err()
            .contains("element type '<f2' is not supported"));
        assert!(parse(b"not numpy").unwrap_err().contains("bad magic"));
    }
}
