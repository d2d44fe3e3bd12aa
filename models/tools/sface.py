"""Convert OpenCV Zoo's SFace (ONNX) into a float32 TFLite model (build time only).

Input: [1, 112, 112, 3] float32 RGB in 0..255, the 112x112 aligned chip (the graph's
own ``(v - 127.5) * 0.0078125`` stays in it). Every BatchNormalization after a
convolution or the final fully connected layer is folded into it; the FC's weight
columns are re-ordered for the NHWC flatten. Output: [1, 128], not normalised.
"""

from models.tools.onnx_import import OnnxImporter, load
from models.tools.tflite_writer import GraphWriter

CHIP_SIZE = 112
INPUT = "chip_rgb"
OUTPUT = "fc1"


def build_tflite(onnx_model: bytes) -> bytes:
    """The TFLite flatbuffer of SFace's ONNX bytes."""
    g = GraphWriter("SFace face_recognition_sface_2021dec (OpenCV Zoo), converted by lifecert")
    x = g.input(INPUT, (1, CHIP_SIZE, CHIP_SIZE, 3))
    (embedding,) = OnnxImporter(g, load(onnx_model)).run(x)
    return g.finish([embedding])
