//! What every GPU layer needs from wgpu and nothing more: errors caught in scopes, buffers
//! filled through the queue, readback, and timestamp queries. Functions here take a device or
//! a queue, never a model or a context.

use crate::error::{Error, Result};

/// Bytes of the two pass timestamps (start, end) of a timed pass.
pub(crate) const TIMESTAMP_BYTES: u64 = 16;

/// A [`Error::Gpu`] for something wgpu reported `during` an operation.
pub(crate) fn gpu_error(during: &str, e: impl std::fmt::Display) -> Error {
    Error::Gpu {
        during: during.to_string(),
        message: one_line(&e.to_string()),
    }
}

/// wgpu's multi-line messages joined into one line.
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Runs `f` inside validation and out-of-memory error scopes and turns what they catch into
/// [`Error::Gpu`]. wgpu's error scopes are per thread, so concurrent calls do not see each
/// other's errors.
pub(crate) fn scoped<T>(
    device: &wgpu::Device,
    during: &str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let result = f();
    let v = pollster::block_on(validation.pop());
    let o = pollster::block_on(oom.pop());
    if let Some(e) = v.or(o) {
        return Err(gpu_error(during, e));
    }
    result
}

/// A buffer of `size` bytes (rounded up to 4), uninitialised.
pub(crate) fn buffer(
    device: &wgpu::Device,
    label: &str,
    size: u64,
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size.next_multiple_of(4).max(4),
        usage,
        mapped_at_creation: false,
    })
}

/// A buffer holding `bytes`, written through the queue (it reaches the GPU before the next
/// submit). Unlike mapping at creation, this reports a lost device as an error, not a panic.
pub(crate) fn upload(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    label: &str,
    bytes: &[u8],
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    let b = buffer(
        device,
        label,
        bytes.len() as u64,
        usage | wgpu::BufferUsages::COPY_DST,
    );
    queue.write_buffer(&b, 0, bytes);
    b
}

/// Waits for `submission` and copies the first `bytes` of the mappable `staging` out.
pub(crate) fn read_back(
    device: &wgpu::Device,
    staging: &wgpu::Buffer,
    bytes: u64,
    submission: wgpu::SubmissionIndex,
) -> Result<Vec<f32>> {
    let (tx, rx) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, ..bytes, move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(submission),
            timeout: None,
        })
        .map_err(|e| gpu_error("waiting for the device", e))?;
    // The map callback runs in a poll after the submission completes; another thread's poll
    // may have run it already, or it may still need one.
    let status = match rx.try_recv() {
        Ok(status) => status,
        Err(_) => {
            device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| gpu_error("waiting for the device", e))?;
            rx.recv().map_err(|e| gpu_error("readback", e))?
        }
    };
    status.map_err(|e| gpu_error("readback", e))?;
    let data = {
        let view = staging
            .get_mapped_range(..bytes)
            .map_err(|e| gpu_error("readback", e))?;
        bytemuck::cast_slice::<u8, f32>(&view).to_vec()
    };
    staging.unmap();
    Ok(data)
}

/// Two timestamp queries (start and end of a pass) and the buffer they resolve into.
#[derive(Debug)]
pub(crate) struct Timestamps {
    pub queries: wgpu::QuerySet,
    pub resolve: wgpu::Buffer,
}

impl Timestamps {
    pub fn new(device: &wgpu::Device, label: &str) -> Self {
        Timestamps {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some(label),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolve: buffer(
                device,
                label,
                TIMESTAMP_BYTES,
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
        }
    }

    /// The pass-timestamp writes that fill these queries.
    pub fn pass_writes(&self) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.queries,
            beginning_of_pass_write_index: Some(0),
            end_of_pass_write_index: Some(1),
        }
    }

    /// Records resolving the queries and copying both timestamps to `dest` at `offset`.
    pub fn copy_to(&self, encoder: &mut wgpu::CommandEncoder, dest: &wgpu::Buffer, offset: u64) {
        encoder.resolve_query_set(&self.queries, 0..2, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, dest, offset, TIMESTAMP_BYTES);
    }
}

/// Milliseconds between two timestamps read back as four 32-bit words (start, end; low word
/// first), `period` nanoseconds per tick.
pub(crate) fn elapsed_ms(words: [u32; 4], period: f32) -> f64 {
    let t0 = u64::from(words[0]) | (u64::from(words[1]) << 32);
    let t1 = u64::from(words[2]) | (u64::from(words[3]) << 32);
    t1.saturating_sub(t0) as f64 * f64::from(period) / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_reads_little_endian_pairs() {
        // 1 000 000 ticks of 1 ns = 1 ms; the end word crosses the 32-bit boundary.
        let t0 = u64::from(u32::MAX) - 10;
        let t1 = t0 + 1_000_000;
        let words = [t0 as u32, (t0 >> 32) as u32, t1 as u32, (t1 >> 32) as u32];
        assert!((elapsed_ms(words, 1.0) - 1.0).abs() < 1e-12);
        // A clock that went backwards reads as zero, not as a huge number.
        assert_eq!(elapsed_ms([5, 0, 1, 0], 1.0), 0.0);
    }

    #[test]
    fn one_line_joins_and_trims() {
        assert_eq!(one_line("a\n  b \n\n c"), "a | b | c");
    }
}
