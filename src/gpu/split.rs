//! One batch split across several GPUs (or several models), run at once, joined.

use ndarray::{concatenate, s, Array3, Axis};

use crate::error::{Error, Result};
use crate::gpu::model::GpuModel;
use crate::tensor::{Forward, Input, Output, Prepared};

/// Runs `input` with its batch split into contiguous parts, one per model, each model on its
/// own thread, and joins the results as if one model had run the whole batch. The models must
/// hold the same weights, typically uploaded to different adapters:
///
/// ```no_run
/// use wgpu_lstm::gpu::forward_split;
/// use wgpu_lstm::{list_adapters, ContextOptions, GpuContext, GpuModel, Input, RnnSpec, Weights};
/// let weights = Weights::random(&RnnSpec::lstm(40, 128), 0)?;
/// let mut models = Vec::new();
/// for a in list_adapters(wgpu::Backends::all()) {
///     let ctx = GpuContext::new(&ContextOptions::for_adapter(&a.info))?;
///     models.push(GpuModel::upload(&ctx, &weights)?);
/// }
/// let x = ndarray::Array3::<f32>::zeros((100, 64, 40));
/// let out = forward_split(&models, &Input::new(x.view()))?;
/// # Ok::<(), wgpu_lstm::Error>(())
/// ```
///
/// A batch smaller than the number of models uses as many models as it has sequences.
pub fn forward_split(models: &[GpuModel], input: &Input<'_>) -> Result<Output> {
    let first = models
        .first()
        .ok_or_else(|| Error::InvalidInput("forward_split needs at least one model".into()))?;
    let spec = first.spec();
    if let Some(m) = models.iter().find(|m| m.spec() != spec) {
        return Err(Error::InvalidInput(format!(
            "forward_split needs models of one spec; got {:?} and {:?}",
            spec,
            m.spec()
        )));
    }
    let p = Prepared::new(spec, input)?;
    let parts = models.len().min(p.batch);
    let bounds: Vec<(usize, usize)> = (0..parts)
        .map(|i| (i * p.batch / parts, (i + 1) * p.batch / parts))
        .collect();
    let results: Vec<Result<Output>> = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .iter()
            .zip(models)
            .map(|(&(lo, hi), model)| {
                let p = &p;
                scope.spawn(move || {
                    let mut part = Input::new(p.x.slice(s![.., lo..hi, ..]));
                    if let Some(h0) = &p.h0 {
                        part = part.h0(h0.slice(s![.., lo..hi, ..]));
                    }
                    if let Some(c0) = &p.c0 {
                        part = part.c0(c0.slice(s![.., lo..hi, ..]));
                    }
                    if let Some(l) = &p.lengths {
                        part = part.lengths(&l[lo..hi]);
                    }
                    model.forward(&part)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Internal("a split forward panicked".into())))
            })
            .collect()
    });
    let outs = results.into_iter().collect::<Result<Vec<Output>>>()?;
    let join = |get: &dyn Fn(&Output) -> Option<&ndarray::ArrayD<f32>>| -> Option<Array3<f32>> {
        let views: Option<Vec<_>> = outs
            .iter()
            .map(|o| {
                get(o).map(|a| {
                    a.view()
                        .into_dimensionality::<ndarray::Ix3>()
                        .expect("batched")
                })
            })
            .collect();
        views.map(|v| concatenate(Axis(1), &v).expect("parts share all but the batch axis"))
    };
    let y = join(&|o| Some(&o.y)).expect("every part has y");
    let h_n = join(&|o| Some(&o.h_n)).expect("every part has h_n");
    let c_n = join(&|o| o.c_n.as_ref());
    Ok(p.finish(y, h_n, c_n))
}
