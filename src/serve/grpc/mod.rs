//! The protocol over gRPC: `inference.GRPCInferenceService` (messages generated from
//! `inference.proto` into `inference_pb.rs` by `scripts/grpc-proto`), with tensors as
//! `raw_input_contents` or typed `contents`, outputs as `raw_output_contents`, and
//! `ModelStreamInfer` answering each request of a stream in order.

#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    //! The messages, server and client generated from `inference.proto`.
    include!("inference_pb.rs");
}

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use proto::grpc_inference_service_server::GrpcInferenceService;
use proto::infer_parameter::ParameterChoice;
use proto::model_infer_response::InferOutputTensor;
use proto::model_metadata_response::TensorMetadata;
use proto::*;

use super::describe::{self, DATATYPE, VERSION};
use super::error::{ServeError, ServeResult};
use super::infer::{self, Call, InputTensor, OutputTensor, Param};
use super::shared::Shared;

/// The service, on the server's shared state.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub shared: Arc<Shared>,
}

/// A gRPC parameter value.
fn param(p: &InferParameter) -> Param {
    match &p.parameter_choice {
        Some(ParameterChoice::BoolParam(b)) => Param::Bool(*b),
        Some(ParameterChoice::Int64Param(i)) => Param::Int(*i),
        Some(ParameterChoice::StringParam(s)) => Param::Text(s.clone()),
        _ => Param::Other,
    }
}

/// Decodes a `ModelInferRequest` into a call.
pub(crate) fn decode(request: &ModelInferRequest) -> ServeResult<Call> {
    let mut call = Call::default();
    call.set_params(
        request
            .parameters
            .iter()
            .map(|(k, v)| (k.as_str(), param(v))),
    )?;
    let raw = &request.raw_input_contents;
    if !raw.is_empty() && raw.len() != request.inputs.len() {
        return Err(ServeError::bad(format!(
            "{} raw_input_contents for {} inputs; give one per input or none",
            raw.len(),
            request.inputs.len()
        )));
    }
    for (i, input) in request.inputs.iter().enumerate() {
        let name = &input.name;
        if input.datatype != DATATYPE {
            return Err(ServeError::bad(format!(
                "input `{name}` has datatype {}; the model takes {DATATYPE}",
                input.datatype
            )));
        }
        let data = match (raw.get(i), &input.contents) {
            (Some(_), Some(_)) => {
                return Err(ServeError::bad(format!(
                    "input `{name}` has both contents and raw_input_contents"
                )))
            }
            (Some(bytes), None) => {
                if bytes.len() % 4 != 0 {
                    return Err(ServeError::bad(format!(
                        "input `{name}`: {} raw bytes are not a whole number of FP32 elements",
                        bytes.len()
                    )));
                }
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            }
            (None, Some(c)) => c.fp32_contents.clone(),
            (None, None) => Vec::new(),
        };
        call.inputs.push(InputTensor {
            name: name.clone(),
            shape: input.shape.clone(),
            data,
        });
    }
    if !request.outputs.is_empty() {
        call.outputs = Some(request.outputs.iter().map(|o| o.name.clone()).collect());
    }
    Ok(call)
}

/// Encodes the outputs as a `ModelInferResponse` with raw contents.
pub(crate) fn encode(model: &str, id: &str, outputs: Vec<OutputTensor>) -> ModelInferResponse {
    let mut response = ModelInferResponse {
        model_name: model.to_string(),
        model_version: VERSION.to_string(),
        id: id.to_string(),
        ..Default::default()
    };
    for o in outputs {
        response.outputs.push(InferOutputTensor {
            name: o.name,
            datatype: DATATYPE.to_string(),
            shape: o.shape.iter().map(|&d| d as i64).collect(),
            parameters: HashMap::new(),
            contents: None,
        });
        response
            .raw_output_contents
            .push(o.data.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    response
}

impl Service {
    /// Runs one `ModelInferRequest`.
    async fn infer_one(
        shared: &Shared,
        request: ModelInferRequest,
    ) -> ServeResult<ModelInferResponse> {
        let version = Some(request.model_version.as_str()).filter(|v| !v.is_empty());
        let model = shared.model(&request.model_name, version)?;
        let call = decode(&request)?;
        let outputs = infer::infer(model, &call).await?;
        Ok(encode(model.name(), &request.id, outputs))
    }
}

/// The responses of a `ModelStreamInfer` call.
type InferStream = Pin<Box<dyn Stream<Item = Result<ModelStreamInferResponse, Status>> + Send>>;

#[tonic::async_trait]
impl GrpcInferenceService for Service {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.shared.ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let r = request.into_inner();
        let version = Some(r.version.as_str()).filter(|v| !v.is_empty());
        let ready = self.shared.model(&r.name, version).is_ok() && self.shared.ready();
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: describe::SERVER_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            extensions: describe::EXTENSIONS.iter().map(|e| e.to_string()).collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let r = request.into_inner();
        let version = Some(r.version.as_str()).filter(|v| !v.is_empty());
        let model = self.shared.model(&r.name, version).map_err(|e| {
            e.log("grpc", Some(&r.name));
            e.grpc_status()
        })?;
        let tensor = |(name, shape): (String, Vec<i64>)| TensorMetadata {
            name,
            datatype: DATATYPE.to_string(),
            shape,
        };
        Ok(Response::new(ModelMetadataResponse {
            name: model.name().to_string(),
            versions: vec![VERSION.to_string()],
            platform: describe::PLATFORM.to_string(),
            inputs: model
                .inputs()
                .into_iter()
                .map(|(n, s, _)| tensor((n, s)))
                .collect(),
            outputs: model.outputs().into_iter().map(tensor).collect(),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let request = request.into_inner();
        let name = request.model_name.clone();
        Self::infer_one(&self.shared, request)
            .await
            .map(Response::new)
            .map_err(|e| {
                e.log("grpc", Some(&name));
                e.grpc_status()
            })
    }

    type ModelStreamInferStream = InferStream;

    /// Each request is queued on its model as it arrives (the requests of a sequence run in
    /// the order sent) and answered in that order; an error answers its request alone (in
    /// `error_message`) and the stream goes on.
    async fn model_stream_infer(
        &self,
        request: Request<Streaming<ModelInferRequest>>,
    ) -> Result<Response<InferStream>, Status> {
        let mut inbound = request.into_inner();
        let shared = self.shared.clone();
        let (answers, rx) =
            tokio::sync::mpsc::channel::<Result<ModelStreamInferResponse, Status>>(64);
        let (order, mut queued) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            while let Ok(Some(request)) = inbound.message().await {
                let task = submit_in_order(&shared, request);
                if order.send(tokio::spawn(task)).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(task) = queued.recv().await {
                let answer = match task.await {
                    Ok(a) => a,
                    Err(e) => ModelStreamInferResponse {
                        error_message: format!("internal error: {e}"),
                        infer_response: None,
                    },
                };
                if answers.send(Ok(answer)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Queues `request` on its model now and returns the future of its answer.
fn submit_in_order(
    shared: &Arc<Shared>,
    request: ModelInferRequest,
) -> impl std::future::Future<Output = ModelStreamInferResponse> + Send + 'static {
    let submitted = (|| {
        let version = Some(request.model_version.as_str()).filter(|v| !v.is_empty());
        let model = shared.model(&request.model_name, version)?.clone();
        let call = decode(&request)?;
        let submitted = infer::submit_counted(&model, &call)?;
        Ok::<_, ServeError>((model, submitted))
    })();
    let (name, id) = (request.model_name, request.id);
    async move {
        let result = match submitted {
            Ok((model, s)) => infer::finish_counted(&model, s)
                .await
                .map(|out| encode(model.name(), &id, out)),
            Err(e) => Err(e),
        };
        match result {
            Ok(r) => ModelStreamInferResponse {
                error_message: String::new(),
                infer_response: Some(r),
            },
            Err(e) => {
                e.log("grpc", Some(&name));
                ModelStreamInferResponse {
                    error_message: e.message,
                    infer_response: None,
                }
            }
        }
    }
}
