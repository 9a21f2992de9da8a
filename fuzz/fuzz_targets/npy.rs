//! The `.npy` reader on arbitrary bytes: it must return a value or an error, never panic,
//! and never allocate more than the file holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = wgpu_lstm::io::npy::parse(data) {
        // Whatever parsed must fit in the bytes it came from.
        let n: usize = a.shape().iter().product();
        assert!(n <= data.len());
    }
});
