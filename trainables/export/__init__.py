"""Export a compressed model: packed integer weights (``model.evo.pt``), an ONNX graph with
QuantizeLinear/DequantizeLinear pairs checked in onnxruntime, and a cost report.

onnx and onnxruntime (the ``export`` extra) are imported only by ``export_onnx`` and
``check_onnx``, so the packed file works without them."""

from .check import check_onnx
from .compressed_file import CompressedFile, load_compressed, read_compressed, save_compressed
from .onnx_graph import export_model, export_onnx
from .report import cost_table_markdown, write_report

__all__ = ["CompressedFile", "check_onnx", "cost_table_markdown", "export_model", "export_onnx", "load_compressed",
           "read_compressed", "save_compressed", "write_report"]
