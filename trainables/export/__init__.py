"""Export a compressed model: packed integer weights (``model.evo.pt``), an ONNX graph with
QuantizeLinear/DequantizeLinear pairs checked in onnxruntime, and a cost report."""

from .compressed_file import CompressedFile, load_compressed, read_compressed, save_compressed

__all__ = ["CompressedFile", "load_compressed", "read_compressed", "save_compressed"]
