"""The Open Inference Protocol's (KServe v2) REST bodies (pydantic only), as :mod:`ticketpack.serve.v2` speaks them.

The protocol: https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/ (also spoken by Triton
Inference Server, Seldon MLServer and TorchServe). Field names are the protocol's; ``parameters`` maps names to
booleans, numbers or strings.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

Parameters = dict[str, Any]
ParameterValue = StrictBool | StrictInt | StrictFloat | StrictStr
Dim = Annotated[StrictInt, Field(ge=0)]


class RequestInput(BaseModel):
    """One input tensor: ``data`` holds its elements flat in row-major order (nested lists are flattened), or
    ``parameters.binary_data_size`` says how many bytes of the binary part after the JSON header hold them (the
    binary tensor data extension; BYTES elements there are each a 4-byte little-endian length and the UTF-8 bytes)."""

    name: StrictStr = Field(description="The model's input name, as its metadata lists it.")
    shape: list[Dim] = Field(description="The tensor's shape; the first dimension is the batch.")
    datatype: StrictStr = Field(description="BYTES for text models; UINT8 or FP32 (or FP64) for image models, in "
                                "(N, H, W, C) layout; FP32 (or FP64) for tabular models, (N, features).")
    parameters: Parameters | None = None
    data: list[Any] | None = Field(None, description="The elements, flat row-major (or nested lists).")


class RequestOutput(BaseModel):
    name: StrictStr = Field(description="label, probabilities or logits.")
    parameters: Parameters | None = Field(None, description="binary_data: true answers this output in binary.")


class InferRequest(BaseModel):
    """An inference request: one input; ``outputs`` picks the answered outputs (default: label and probabilities)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"inputs": [
        {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["great battery life", "broke after a week"]}]}]})

    id: StrictStr | None = Field(None, description="Echoed in the answer.")
    parameters: Parameters | None = Field(None, description="binary_data_output: true answers every output in binary.")
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str = Field(description="BYTES (label) or FP32 (probabilities, logits).")
    parameters: dict[str, ParameterValue] | None = None
    data: list[str] | list[float] | None = Field(None, description="Flat row-major; absent when sent in binary.")


class InferResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, ParameterValue] | None = Field(
        None, description="warning: which inputs lie beyond the range of the model's training inputs, if any.")
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1: any size (the batch, or an image side a resizing model takes).")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class V2ErrorBody(BaseModel):
    """The protocol's error answer."""

    error: str = Field(description="What went wrong, for a person.")
