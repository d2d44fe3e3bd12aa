"""Convert OpenCV Zoo's YuNet face detector (ONNX) into a float32 TFLite model (build time).

YuNet is fully convolutional: the converted graph takes a ``WIDTH`` x ``HEIGHT`` input
(the ONNX file is fixed at 640x640, its weights are not). Input: [1, H, W, 3] float32
**BGR** in 0..255, as OpenCV feeds it. Outputs, per stride 8, 16, 32 (in that order):
class score, objectness (both after the sigmoid), box and five keypoints, each flattened
from [1, H/stride, W/stride, channels] (``OUTPUTS``).
"""

from models.tools.onnx_import import OnnxImporter, load
from models.tools.tflite_writer import GraphWriter

#: A 640x480 camera frame at half scale; LFW's 250x250 images at their own.
WIDTH, HEIGHT = 320, 256
INPUT = "face_bgr"
STRIDES = (8, 16, 32)
OUTPUTS = tuple(f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES)


def build_tflite(onnx_model: bytes, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """The TFLite flatbuffer of YuNet's ONNX bytes for a ``width`` x ``height`` input."""
    if width % max(STRIDES) or height % max(STRIDES):
        raise ValueError(f"YuNet's input sides must be multiples of {max(STRIDES)}")
    g = GraphWriter("YuNet face_detection_yunet_2023mar (OpenCV Zoo), converted by lifecert")
    x = g.input(INPUT, (1, height, width, 3))
    return g.finish(OnnxImporter(g, load(onnx_model)).run(x))
