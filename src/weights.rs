//! Host-side weights with PyTorch's names and layout.
//!
//! For layer `k` and direction suffix `s` (`""` forward, `"_reverse"` backward) PyTorch stores
//! `weight_ih_l{k}{s}` `[G·H, in_k]`, `weight_hh_l{k}{s}` `[G·H, H]` and, when the model has
//! biases, `bias_ih_l{k}{s}` and `bias_hh_l{k}{s}` `[G·H]`. Rows are grouped by gate: for an
//! LSTM (G = 4), rows `0..H` are the input gate i, `H..2H` the forget gate f, `2H..3H` the cell
//! candidate g and `3H..4H` the output gate o; for a GRU (G = 3) r, z, n; an RNN has G = 1.
//!
//! An LSTM with a projection (`proj_size` P) adds `weight_hr_l{k}{s}` `[P, H]`, and its
//! `weight_hh` is `[4H, P]`. A peephole LSTM adds `weight_ph_l{k}{s}` `[3H]`: the peephole
//! weights of the i, f and o gates, in that order.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayD, ArrayViewD, Ix1, Ix2};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::spec::RnnSpec;

/// The parameters of one layer in one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectionWeights {
    /// `weight_ih`: `[G·H, in]`.
    pub w_ih: Array2<f32>,
    /// `weight_hh`: `[G·H, H_out]` (`H_out` = P with a projection, else H).
    pub w_hh: Array2<f32>,
    /// `bias_ih`: `[G·H]`, absent when the model has no biases.
    pub b_ih: Option<Array1<f32>>,
    /// `bias_hh`: `[G·H]`, absent when the model has no biases.
    pub b_hh: Option<Array1<f32>>,
    /// `weight_hr`: `[P, H]`, LSTM with projection only.
    pub w_hr: Option<Array2<f32>>,
    /// `weight_ph`: `[3H]` (i, f, o), peephole LSTM only.
    pub w_ph: Option<Array1<f32>>,
}

impl DirectionWeights {
    /// `b_ih`, or zeros when the model has no biases.
    pub fn bias_ih(&self) -> Array1<f32> {
        self.b_ih
            .clone()
            .unwrap_or_else(|| Array1::zeros(self.w_ih.nrows()))
    }

    /// `b_hh`, or zeros when the model has no biases.
    pub fn bias_hh(&self) -> Array1<f32> {
        self.b_hh
            .clone()
            .unwrap_or_else(|| Array1::zeros(self.w_ih.nrows()))
    }
}

/// All parameters of a model, validated against its [`RnnSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    spec: RnnSpec,
    /// Indexed `layer · D + direction`, like PyTorch's `h_n`.
    params: Vec<DirectionWeights>,
    /// The scales of a quantized model's weight rows, indexed like `params` (see
    /// [`Weights::quantized`]); `None` for float weights.
    row_scales: Option<Vec<RowScales>>,
}

/// The scale of each row of one direction's `W_ih` and `W_hh` in a quantized model (the
/// weights are integers times these).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowScales {
    pub(crate) w_ih: Vec<f32>,
    pub(crate) w_hh: Vec<f32>,
}

/// PyTorch's name of a parameter, e.g. `param_name("weight_hh", 1, true)` is
/// `weight_hh_l1_reverse`.
pub fn param_name(kind: &str, layer: usize, reverse: bool) -> String {
    format!("{kind}_l{layer}{}", if reverse { "_reverse" } else { "" })
}

impl Weights {
    /// Random weights drawn like PyTorch's initialisation, `U(−1/√H, 1/√H)`, from a seeded
    /// generator (the same seed gives the same weights).
    pub fn random(spec: &RnnSpec, seed: u64) -> Result<Self> {
        spec.validate()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let k = 1.0 / (spec.hidden_size as f32).sqrt();
        let g = spec.gate_rows();
        let mut uniform = |shape: (usize, usize)| {
            Array2::from_shape_simple_fn(shape, || rng.random_range(-k..=k))
        };
        let mut params = Vec::new();
        for layer in 0..spec.num_layers {
            for _ in 0..spec.num_directions() {
                let w_ih = uniform((g, spec.layer_input_size(layer)));
                let w_hh = uniform((g, spec.hidden_out()));
                let mut vector = |n: usize| uniform((1, n)).into_shape_with_order(n).expect("1×n");
                let (b_ih, b_hh) = if spec.bias {
                    (Some(vector(g)), Some(vector(g)))
                } else {
                    (None, None)
                };
                let w_ph = spec.peephole.then(|| vector(3 * spec.hidden_size));
                let w_hr =
                    (spec.proj_size > 0).then(|| uniform((spec.proj_size, spec.hidden_size)));
                params.push(DirectionWeights {
                    w_ih,
                    w_hh,
                    b_ih,
                    b_hh,
                    w_hr,
                    w_ph,
                });
            }
        }
        Ok(Weights {
            spec: spec.clone(),
            params,
            row_scales: None,
        })
    }

    /// Builds weights from tensors named as in PyTorch's `state_dict()`; every tensor the spec
    /// needs must be present with its exact shape, and no other tensor may be given.
    pub fn from_tensors<I>(spec: &RnnSpec, tensors: I) -> Result<Self>
    where
        I: IntoIterator<Item = (String, ArrayD<f32>)>,
    {
        spec.validate()?;
        let mut map: BTreeMap<String, ArrayD<f32>> = tensors.into_iter().collect();
        let g = spec.gate_rows();
        let mut take = |name: String, expected: &[usize]| -> Result<ArrayD<f32>> {
            let t = map.remove(&name).ok_or_else(|| Error::MissingTensor {
                tensor: name.clone(),
                expected: expected.into(),
            })?;
            if t.shape() != expected {
                return Err(Error::shape(name, expected, t.shape()));
            }
            Ok(t)
        };
        let mut params = Vec::new();
        for layer in 0..spec.num_layers {
            for d in 0..spec.num_directions() {
                let rev = d == 1;
                let in_size = spec.layer_input_size(layer);
                let w_ih = take(param_name("weight_ih", layer, rev), &[g, in_size])?;
                let w_hh = take(param_name("weight_hh", layer, rev), &[g, spec.hidden_out()])?;
                let (b_ih, b_hh) = if spec.bias {
                    (
                        Some(take(param_name("bias_ih", layer, rev), &[g])?),
                        Some(take(param_name("bias_hh", layer, rev), &[g])?),
                    )
                } else {
                    (None, None)
                };
                let w_hr = if spec.proj_size > 0 {
                    let shape = [spec.proj_size, spec.hidden_size];
                    Some(take(param_name("weight_hr", layer, rev), &shape)?)
                } else {
                    None
                };
                let w_ph = if spec.peephole {
                    Some(take(
                        param_name("weight_ph", layer, rev),
                        &[3 * spec.hidden_size],
                    )?)
                } else {
                    None
                };
                params.push(DirectionWeights {
                    w_ih: into2(w_ih),
                    w_hh: into2(w_hh),
                    b_ih: b_ih.map(into1),
                    b_hh: b_hh.map(into1),
                    w_hr: w_hr.map(into2),
                    w_ph: w_ph.map(into1),
                });
            }
        }
        if let Some((name, t)) = map.into_iter().next() {
            return Err(Error::UnexpectedTensor {
                tensor: name,
                actual: t.shape().into(),
            });
        }
        Ok(Weights {
            spec: spec.clone(),
            params,
            row_scales: None,
        })
    }

    /// These weights marked as a quantized model's: `scales[layer · D + direction]` holds the
    /// scale of each row of that direction's `W_ih` and `W_hh`, whose values are integers in
    /// −127..=127 times them. [`WeightsDtype::I8`] then keeps the model's own integers and
    /// scales instead of choosing its own.
    pub(crate) fn with_row_scales(mut self, scales: Vec<RowScales>) -> Result<Self> {
        let fits = scales.len() == self.params.len()
            && scales
                .iter()
                .zip(&self.params)
                .all(|(s, p)| s.w_ih.len() == p.w_ih.nrows() && s.w_hh.len() == p.w_hh.nrows());
        if !fits {
            return Err(Error::Internal(
                "quantization scales do not match the weights".into(),
            ));
        }
        self.row_scales = Some(scales);
        Ok(self)
    }

    /// The row scales of direction `index` (`layer · D + direction`) of a quantized model.
    pub(crate) fn row_scales(&self, index: usize) -> Option<&RowScales> {
        self.row_scales.as_ref().map(|s| &s[index])
    }

    /// Whether these weights came from a quantized model (an onnxruntime
    /// `DynamicQuantizeLSTM`): their values are the model's eight-bit integers times its
    /// scales, and [`WeightsDtype::I8`] computes with those same integers and scales.
    pub fn quantized(&self) -> bool {
        self.row_scales.is_some()
    }

    /// The model description.
    pub fn spec(&self) -> &RnnSpec {
        &self.spec
    }

    /// Parameters of `layer` in `direction` (0 forward, 1 reverse).
    ///
    /// # Panics
    /// If `layer` or `direction` is out of range for the spec.
    pub fn get(&self, layer: usize, direction: usize) -> &DirectionWeights {
        assert!(layer < self.spec.num_layers && direction < self.spec.num_directions());
        &self.params[layer * self.spec.num_directions() + direction]
    }

    /// Every tensor with its PyTorch name, in `state_dict()` order.
    /// These weights as `dtype` stores them: every weight matrix and the peepholes rounded to
    /// the nearest float16 for [`WeightsDtype::F16`], biases kept (the GPU keeps them in
    /// float32); every weight matrix quantized row by row and back for [`WeightsDtype::I8`]
    /// (each row's integers times its scale, see [`WeightsDtype::I8`]; biases and peepholes
    /// kept); unchanged for [`WeightsDtype::F32`]. This is what a GPU model uploaded with
    /// float16 or int8 weights computes with — except an LSTM with a projection, whose
    /// recurrent weights the GPU folds into `W_hh·W_hr` before rounding the product.
    ///
    /// ```
    /// use wgpu_lstm::{RnnSpec, Weights, WeightsDtype};
    /// let w = Weights::random(&RnnSpec::lstm(3, 4), 0)?;
    /// let half = w.rounded(WeightsDtype::F16);
    /// let (a, b) = (&w.tensors()[0].1, &half.tensors()[0].1);
    /// assert!(a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() <= x.abs() / 2048.0));
    /// # Ok::<(), wgpu_lstm::Error>(())
    /// ```
    pub fn rounded(&self, dtype: WeightsDtype) -> Weights {
        let mut out = self.clone();
        for (index, d) in out.params.iter_mut().enumerate() {
            let given = self.row_scales(index);
            let matrices = [&mut d.w_ih, &mut d.w_hh]
                .into_iter()
                .chain(d.w_hr.as_mut());
            match dtype {
                WeightsDtype::F32 => {}
                WeightsDtype::F16 => {
                    matrices.for_each(|a| a.mapv_inplace(round_f16));
                    if let Some(p) = d.w_ph.as_mut() {
                        p.mapv_inplace(round_f16);
                    }
                }
                WeightsDtype::I8 => {
                    let scales = [given.map(|g| &g.w_ih[..]), given.map(|g| &g.w_hh[..]), None];
                    for (a, s) in matrices.zip(scales) {
                        *a = crate::quant::dequantized(a.view(), s);
                    }
                }
            }
        }
        out
    }

    /// Every tensor under its PyTorch name ([`param_name`]), in PyTorch's order (layer by
    /// layer, forward direction first): what a safetensors file of this model holds.
    pub fn tensors(&self) -> Vec<(String, ArrayViewD<'_, f32>)> {
        let mut out = Vec::new();
        for layer in 0..self.spec.num_layers {
            for d in 0..self.spec.num_directions() {
                let p = self.get(layer, d);
                let rev = d == 1;
                out.push((
                    param_name("weight_ih", layer, rev),
                    p.w_ih.view().into_dyn(),
                ));
                out.push((
                    param_name("weight_hh", layer, rev),
                    p.w_hh.view().into_dyn(),
                ));
                if let (Some(bi), Some(bh)) = (&p.b_ih, &p.b_hh) {
                    out.push((param_name("bias_ih", layer, rev), bi.view().into_dyn()));
                    out.push((param_name("bias_hh", layer, rev), bh.view().into_dyn()));
                }
                if let Some(w) = &p.w_hr {
                    out.push((param_name("weight_hr", layer, rev), w.view().into_dyn()));
                }
                if let Some(w) = &p.w_ph {
                    out.push((param_name("weight_ph", layer, rev), w.view().into_dyn()));
                }
            }
        }
        out
    }
}

fn into2(t: ArrayD<f32>) -> Array2<f32> {
    t.into_dimensionality::<Ix2>().expect("shape checked")
}

fn into1(t: ArrayD<f32>) -> Array1<f32> {
    t.into_dimensionality::<Ix1>().expect("shape checked")
}

/// How a model's weights are stored: on the device for a GPU model
/// ([`UploadOptions`](crate::UploadOptions)), in memory for a CPU model
/// ([`CpuModel::weights_dtype`](crate::CpuModel::weights_dtype)).
///
/// States, biases and the cell updates are float32 whatever the type. `F16` halves the
/// weights' memory and the bandwidth of reading them, at the cost of rounding each weight to
/// 11 significant bits (a relative error of at most 2⁻¹¹ per weight). `I8` quarters them and
/// computes the products in integers (see its own docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WeightsDtype {
    /// float32, exactly as given.
    #[default]
    F32,
    /// float16 (IEEE binary16), unpacked to float32 as the kernels load them.
    F16,
    /// Eight-bit integers with a float32 scale per output row: on the CPU, products in
    /// integers; on the GPU, float32 sums over the integers.
    ///
    /// The scheme: each row of `W_ih`, `W_hh` and `W_hr` is stored as `round(w / s)` in
    /// −127..=127 with `s = max|w| / 127` (symmetric, per output channel: onnxruntime's
    /// `quantize_dynamic` with `per_channel=True`).
    ///
    /// **GPU** ([`UploadOptions::weights`](crate::UploadOptions::weights)): the integers are
    /// packed four to a `u32` (a quarter of float32's memory and bandwidth), unpacked with
    /// WGSL's `unpack4xI8` as the kernels load them; each product sums the float32 operand
    /// times the integers and scales the sum once by its row's scale, so the activations are
    /// not quantized and the results are those of the float32 weights `q · s`
    /// ([`Weights::rounded`]) to float32 rounding. An LSTM with a projection folds
    /// `W_hh·W_hr` of the int8 factors into one matrix and quantizes it row by row again.
    /// Always in a storage buffer (never a texture). Every step kernel and GEMM variant reads
    /// them; the tuner times each with int8 weights.
    ///
    /// **CPU** ([`CpuModel::weights_dtype`](crate::CpuModel::weights_dtype)): the operands
    /// of each product (the layer's input, `h_{t−1}`, an LSTM's `m_t`) are quantized as the
    /// product runs, each sequence's row on its own (so its results do not depend on the others batched with it), to seven
    /// bits over the row's range widened to include zero: `scale = (max − min) / 127`, zero
    /// point `round(−min / scale)`. Sums are int32, exact, then scaled to float32; biases,
    /// peepholes, activations and states stay float32. Seven-bit activations keep a pair of
    /// products inside AVX2's 16-bit `vpmaddubsw` sums, so every instruction set (AVX2,
    /// AVX-VNNI and AVX-512 VNNI `vpdpbusd`, the portable loop) computes the same integers;
    /// the results are the same bits at every thread count and batch composition.
    /// [`Weights::rounded`] gives the float32 weights the integers stand for.
    I8,
}

impl WeightsDtype {
    /// Lowercase name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            WeightsDtype::F32 => "f32",
            WeightsDtype::F16 => "f16",
            WeightsDtype::I8 => "i8",
        }
    }

    /// Bytes of one packed vec4 of weights.
    pub(crate) fn vec4_bytes(self) -> u64 {
        match self {
            WeightsDtype::F32 => 16,
            WeightsDtype::F16 => 8,
            WeightsDtype::I8 => 4,
        }
    }
}

/// `v` rounded to the nearest float16, back as float32.
fn round_f16(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}
