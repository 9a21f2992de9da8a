//! `wgpu-lstm run`: a model from a safetensors or ONNX file on `.npy` inputs, outputs as
//! `.npy`.
//!
//! Every input is read and checked before anything runs; outputs go to temporary files that
//! are renamed into place only once all of them are written, so a failure never leaves an
//! output file behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::gpu_args::{Dtype, GpuArgs, Storage};
use clap::ValueEnum;
use ndarray::ArrayD;
use wgpu_lstm::io::npy::{self, NpyArray};
use wgpu_lstm::io::onnx::{self, OnnxModel, Roles, Value};
use wgpu_lstm::io::{model_file, PendingFile};
use wgpu_lstm::{CpuModel, Error, Forward, GpuContext, GpuModel, Input, Shape};

/// `run`'s arguments: the model, its input files, and the output files to write (at least
/// one).
#[derive(clap::Args)]
#[command(group(
    clap::ArgGroup::new("outputs")
        .args(["output", "hn", "cn"])
        .required(true)
        .multiple(true)
))]
pub struct RunArgs {
    /// Model weights: safetensors with PyTorch state_dict names.
    #[arg(
        long,
        value_name = "M.safetensors",
        required_unless_present = "model",
        conflicts_with = "model"
    )]
    weights: Option<PathBuf>,
    /// An ONNX model instead (its graph inputs and outputs in their own shapes: --input,
    /// --h0, --c0, --lengths and --output, --hn, --cn name the files of the graph inputs and
    /// outputs that carry the sequence, the states and the lengths; an output flag is refused
    /// where the graph has no such output).
    #[arg(long, value_name = "M.onnx", conflicts_with = "batch_first")]
    model: Option<PathBuf>,
    /// Input sequence: float32/float64 .npy, [T, B, I] ([B, T, I] batch-first) or [T, I].
    #[arg(long, value_name = "X.npy")]
    input: PathBuf,
    /// Where to write the output sequence y (float32 .npy). At least one of --output, --hn
    /// and --cn is required.
    #[arg(long, value_name = "Y.npy")]
    output: Option<PathBuf>,
    /// Initial hidden state, [L·D, B, H_out] ([L·D, H_out] unbatched).
    #[arg(long, value_name = "H0.npy")]
    h0: Option<PathBuf>,
    /// Initial cell state (LSTM), [L·D, B, H] ([L·D, H] unbatched).
    #[arg(long, value_name = "C0.npy")]
    c0: Option<PathBuf>,
    /// Where to write the final hidden state h_n.
    #[arg(long, value_name = "HN.npy")]
    hn: Option<PathBuf>,
    /// Where to write the final cell state c_n (LSTM).
    #[arg(long, value_name = "CN.npy")]
    cn: Option<PathBuf>,
    /// Per-sequence lengths: int32/int64 .npy [B], values in 0..=T.
    #[arg(long, value_name = "LEN.npy")]
    lengths: Option<PathBuf>,
    /// The input (and output) is [B, T, …] (also set by the model's metadata).
    #[arg(long)]
    batch_first: bool,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = Device::Gpu)]
    pub device: Device,
    /// Threads of the CPU engine (default: the cores this process may use).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// How the weights are stored and multiplied: f16 (GPU) halves their memory and
    /// bandwidth, i8 quarters them (the CPU multiplies in integers, the activations quantized
    /// per step; the GPU scales float32 sums over the integers); sums and states stay f32.
    /// Default f32, except that an onnxruntime-quantized --model (DynamicQuantizeLSTM) runs
    /// its own int8 weights.
    #[arg(long, value_enum, value_name = "DTYPE")]
    weights_dtype: Option<Dtype>,
    /// Where the GPU keeps the weights (auto: measured on the device); results are the same
    /// bits either way.
    #[arg(long, value_enum, default_value_t = Storage::Auto)]
    weights_storage: Storage,
    /// Backend and adapter of `--device gpu`.
    #[command(flatten)]
    gpu: GpuArgs,
}

/// `run --device`: where the model runs.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Device {
    /// A GPU adapter (--backend and --adapter choose which).
    Gpu,
    /// The CPU engine.
    Cpu,
}

/// A float tensor from `path` (float32, or float64 converted).
fn read_float(path: &Path) -> Result<ArrayD<f32>, Error> {
    match npy::read(path)? {
        NpyArray::F32(a) => Ok(a),
        NpyArray::F64(a) => Ok(a.mapv(|v| v as f32)),
        other => Err(invalid(
            path,
            format!("expected float32 or float64, got {}", other.dtype()),
        )),
    }
}

/// Lengths from `path`: int32 or int64, one dimension, no value negative.
fn read_lengths(path: &Path) -> Result<Vec<usize>, Error> {
    let values: ArrayD<i64> = match npy::read(path)? {
        NpyArray::I32(a) => a.mapv(i64::from),
        NpyArray::I64(a) => a,
        other => {
            return Err(invalid(
                path,
                format!("expected int32 or int64, got {}", other.dtype()),
            ))
        }
    };
    if values.ndim() != 1 {
        return Err(invalid(
            path,
            format!("expected shape [B], got {}", Shape(values.shape().to_vec())),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            usize::try_from(v).map_err(|_| {
                invalid(
                    path,
                    format!("lengths[{i}] is {v}; a length cannot be negative"),
                )
            })
        })
        .collect()
}

/// An [`Error::InvalidFile`] for `path`.
fn invalid(path: &Path, message: String) -> Error {
    Error::InvalidFile {
        path: path.display().to_string(),
        message,
    }
}

/// Refuses two outputs written to one path (one would silently replace the other).
fn check_distinct_outputs(args: &RunArgs) -> Result<(), Error> {
    let outputs = [
        ("--output", args.output.as_ref()),
        ("--hn", args.hn.as_ref()),
        ("--cn", args.cn.as_ref()),
    ];
    let given: Vec<(&str, &PathBuf)> = outputs
        .iter()
        .filter_map(|(flag, p)| p.map(|p| (*flag, p)))
        .collect();
    for (i, (a, pa)) in given.iter().enumerate() {
        for (b, pb) in &given[i + 1..] {
            // Compare as written and, where both exist, as the files they name.
            let same_file = match (std::fs::canonicalize(pa), std::fs::canonicalize(pb)) {
                (Ok(x), Ok(y)) => x == y,
                _ => false,
            };
            if pa == pb || same_file {
                return Err(Error::InvalidInput(format!(
                    "{a} and {b} name the same file `{}`; give each output its own path",
                    pa.display()
                )));
            }
        }
    }
    Ok(())
}

/// The context `--backend`/`--adapter` choose; without an adapter, the error suggests the CPU.
fn gpu_context(args: &RunArgs) -> Result<GpuContext, Error> {
    GpuContext::new(&args.gpu.options()).map_err(|e| match e {
        Error::NoAdapter { .. } => Error::InvalidInput(format!("{e}; or run with --device cpu")),
        e => e,
    })
}

/// `--model M.onnx`: files mapped to the graph inputs and outputs by their roles. Every
/// output flag given must have a graph output to write; every graph input must be given.
fn run_onnx(args: &RunArgs, path: &Path) -> Result<(), Error> {
    let model = onnx::load(path)?;
    let wanted = onnx_outputs(args, path, model.roles())?;
    let inputs = onnx_inputs(args, path, &model)?;
    let outputs = match args.device {
        Device::Cpu => {
            let threads = args.threads.unwrap_or_else(CpuModel::default_threads);
            let dtype = args.weights_dtype.map(Dtype::weights);
            let cpu = model.cpu_models_with(threads, dtype)?;
            let engines: Vec<&dyn Forward> = cpu.iter().map(|m| m as &dyn Forward).collect();
            model.run(&engines, &inputs)?
        }
        Device::Gpu => {
            let ctx = gpu_context(args)?;
            let gpu: Vec<GpuModel> = model
                .stacks()
                .iter()
                .map(|s| {
                    // A quantized model's own integers unless told otherwise, as on the CPU.
                    let dtype = args.weights_dtype.unwrap_or(if s.weights.quantized() {
                        Dtype::I8
                    } else {
                        Dtype::F32
                    });
                    GpuModel::upload_with(&ctx, &s.weights, &dtype.upload(args.weights_storage))
                })
                .collect::<Result<_, _>>()?;
            let engines: Vec<&dyn Forward> = gpu.iter().map(|m| m as &dyn Forward).collect();
            model.run(&engines, &inputs)?
        }
    };
    let files = wanted
        .into_iter()
        .map(|(name, file)| {
            let value = outputs.get(&name).ok_or_else(|| {
                Error::Internal(format!("graph output `{name}` was not computed"))
            })?;
            Ok((file, value))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    write_all(&files)
}

/// The graph input or output named by `role`, or an error naming `flag` and `what` the graph
/// lacks.
fn role(flag: &str, name: &Option<String>, path: &Path, what: &str) -> Result<String, Error> {
    name.clone().ok_or_else(|| {
        Error::InvalidInput(format!("{flag}: `{}` has no graph {what}", path.display()))
    })
}

/// The graph outputs the output flags ask for, each with the file it goes to.
fn onnx_outputs<'a>(
    args: &'a RunArgs,
    path: &Path,
    roles: &Roles,
) -> Result<Vec<(String, &'a Path)>, Error> {
    let flags = [
        (
            "--output",
            &args.output,
            &roles.output,
            "output carrying the sequence",
        ),
        (
            "--hn",
            &args.hn,
            &roles.hn,
            "output carrying the final hidden state",
        ),
        (
            "--cn",
            &args.cn,
            &roles.cn,
            "output carrying the final cell state",
        ),
    ];
    let mut wanted = Vec::new();
    for (flag, file, name, what) in flags {
        if let Some(file) = file {
            wanted.push((role(flag, name, path, what)?, file.as_path()));
        }
    }
    Ok(wanted)
}

/// The graph inputs from the input flags' files; every run-time graph input must be given.
fn onnx_inputs(
    args: &RunArgs,
    path: &Path,
    model: &OnnxModel,
) -> Result<BTreeMap<String, Value>, Error> {
    let roles = model.roles();
    let mut inputs = BTreeMap::new();
    inputs.insert(
        role("--input", &roles.input, path, "input carrying the sequence")?,
        Value::F32(read_float(&args.input)?),
    );
    for (flag, file, name, what) in [
        (
            "--h0",
            &args.h0,
            &roles.h0,
            "input carrying the initial hidden state",
        ),
        (
            "--c0",
            &args.c0,
            &roles.c0,
            "input carrying the initial cell state",
        ),
    ] {
        if let Some(file) = file {
            inputs.insert(role(flag, name, path, what)?, Value::F32(read_float(file)?));
        }
    }
    if let Some(file) = &args.lengths {
        let name = role(
            "--lengths",
            &roles.lengths,
            path,
            "input carrying sequence lengths",
        )?;
        let v = match npy::read(file)? {
            NpyArray::I32(a) => Value::from(a),
            NpyArray::I64(a) => Value::I64(a),
            other => {
                return Err(invalid(
                    file,
                    format!("expected int32 or int64, got {}", other.dtype()),
                ))
            }
        };
        inputs.insert(name, v);
    }
    if let Some(p) = model
        .inputs()
        .iter()
        .find(|p| !inputs.contains_key(&p.name))
    {
        return Err(Error::InvalidInput(format!(
            "graph input `{}` of `{}` is not given (--input, --h0, --c0 and --lengths give the sequence, the states and the lengths)",
            p.name,
            path.display()
        )));
    }
    Ok(inputs)
}

/// Writes every `(file, array)` under a temporary name first and renames them into place only
/// when all are written, so that an error leaves no output behind.
fn write_all(files: &[(&Path, &ArrayD<f32>)]) -> Result<(), Error> {
    let pending = files
        .iter()
        .map(|(file, a)| PendingFile::write(file, &npy::to_bytes(a)))
        .collect::<Result<Vec<_>, Error>>()?;
    for p in pending {
        p.commit()?;
    }
    Ok(())
}

/// Runs the model `args` name on their inputs and writes the outputs they ask for.
pub fn run(args: &RunArgs) -> Result<(), Error> {
    check_distinct_outputs(args)?;
    if args.device == Device::Cpu && args.weights_dtype == Some(Dtype::F16) {
        return Err(Error::InvalidInput(
            "--weights-dtype f16 applies to --device gpu (the CPU computes with f32 or i8 weights)"
                .into(),
        ));
    }
    let weights_path = match (&args.weights, &args.model) {
        (_, Some(m)) => return run_onnx(args, m),
        (Some(w), None) => w,
        (None, None) => {
            return Err(Error::InvalidInput(
                "give the model with --weights M.safetensors or --model M.onnx".into(),
            ))
        }
    };
    let model = model_file::load(weights_path)?;
    let spec = model.weights.spec().clone();
    if !spec.cell.has_cell_state() {
        for (flag, given) in [("--c0", args.c0.is_some()), ("--cn", args.cn.is_some())] {
            if given {
                return Err(Error::InvalidInput(format!(
                    "{flag}: `{}` is a {} model, which has no cell state",
                    weights_path.display(),
                    spec.cell.name()
                )));
            }
        }
    }
    let x = read_float(&args.input)?;
    if x.ndim() != 2 && x.ndim() != 3 {
        return Err(invalid(
            &args.input,
            format!(
                "expected [T, B, {i}], batch-first [B, T, {i}] or unbatched [T, {i}], got shape {}",
                Shape(x.shape().to_vec()),
                i = spec.input_size
            ),
        ));
    }
    let h0 = args.h0.as_deref().map(read_float).transpose()?;
    let c0 = args.c0.as_deref().map(read_float).transpose()?;
    let lengths = args.lengths.as_deref().map(read_lengths).transpose()?;

    let mut input = Input::new(x.view()).batch_first(args.batch_first || model.batch_first);
    if let Some(h0) = &h0 {
        input = input.h0(h0.view());
    }
    if let Some(c0) = &c0 {
        input = input.c0(c0.view());
    }
    if let Some(l) = &lengths {
        input = input.lengths(l);
    }

    let out = match args.device {
        Device::Cpu => {
            let threads = args.threads.unwrap_or_else(CpuModel::default_threads);
            CpuModel::with_threads(model.weights, threads)?
                .weights_dtype(args.weights_dtype.unwrap_or_default().weights())?
                .forward(&input)?
        }
        Device::Gpu => {
            let ctx = gpu_context(args)?;
            GpuModel::upload_with(
                &ctx,
                &model.weights,
                &args
                    .weights_dtype
                    .unwrap_or_default()
                    .upload(args.weights_storage),
            )?
            .forward(&input)?
        }
    };

    let outputs = [
        (&args.output, Some(&out.y)),
        (&args.hn, Some(&out.h_n)),
        (&args.cn, out.c_n.as_ref()),
    ];
    let files: Vec<(&Path, &ArrayD<f32>)> = outputs
        .into_iter()
        .filter_map(|(file, value)| Some((file.as_deref()?, value?)))
        .collect();
    write_all(&files)
}
