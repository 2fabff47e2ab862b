"""Reads a TensorBoard log directory with TensorBoard's own EventAccumulator; prints JSON.

Usage: python tb_read.py <logdir>

Nothing is sampled away (every size guidance is 0). Floats are printed with repr() as
strings ("nan", "inf", "0.1"), so NaN/Inf survive JSON and values compare exactly.
Used by tests/tensorboard.rs.
"""

import io
import json
import sys

from PIL import Image
from tensorboard import data_compat
from tensorboard.backend.event_processing import event_accumulator as ea_mod
from tensorboard.compat.proto import summary_pb2
from tensorboard.util import tensor_util


def f(x):
    return repr(float(x))


def drawn(tag, h):
    """The buckets TensorBoard's histogram dashboard draws: [left, right, count] each, from
    TensorBoard's own conversion of the stored histogram."""
    proto = summary_pb2.HistogramProto(
        min=h.min,
        max=h.max,
        num=h.num,
        sum=h.sum,
        sum_squares=h.sum_squares,
        bucket_limit=h.bucket_limit,
        bucket=h.bucket,
    )
    value = data_compat.migrate_value(summary_pb2.Summary.Value(tag=tag, histo=proto))
    return [[f(x) for x in row] for row in tensor_util.make_ndarray(value.tensor).tolist()]


def main(logdir):
    guidance = {k: 0 for k in ea_mod.DEFAULT_SIZE_GUIDANCE}
    ea = ea_mod.EventAccumulator(logdir, size_guidance=guidance)
    ea.Reload()
    tags = ea.Tags()
    out = {
        "file_version": ea.file_version,
        "tags": {k: v for k, v in tags.items() if isinstance(v, list)},
        "scalars": {
            t: [[e.step, f(e.value)] for e in ea.Scalars(t)] for t in tags["scalars"]
        },
        "tensors": {
            t: [
                [e.step, [s.decode("utf-8") for s in e.tensor_proto.string_val]]
                for e in ea.Tensors(t)
            ]
            for t in tags["tensors"]
        },
        "images": {},
        "histograms": {},
    }
    for t in tags["images"]:
        rows = []
        for e in ea.Images(t):
            decoded = Image.open(io.BytesIO(e.encoded_image_string))
            decoded.load()
            rows.append(
                {
                    "step": e.step,
                    "width": e.width,
                    "height": e.height,
                    "decoded_size": list(decoded.size),
                    "png_hex": e.encoded_image_string.hex(),
                }
            )
        out["images"][t] = rows
    for t in tags["histograms"]:
        out["histograms"][t] = [
            {
                "step": e.step,
                "num": f(e.histogram_value.num),
                "min": f(e.histogram_value.min),
                "max": f(e.histogram_value.max),
                "sum": f(e.histogram_value.sum),
                "sum_squares": f(e.histogram_value.sum_squares),
                "bucket_total": f(sum(e.histogram_value.bucket)),
                "buckets": len(e.histogram_value.bucket),
                "bucket_limit": [f(x) for x in e.histogram_value.bucket_limit],
                "bucket": [f(x) for x in e.histogram_value.bucket],
                "drawn": drawn(t, e.histogram_value),
            }
            for e in ea.Histograms(t)
        ]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
