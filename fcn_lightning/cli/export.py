"""``fcn-lightning export CKPT --out model.onnx``: a checkpoint as ONNX, normalisation inside, checked."""

from __future__ import annotations

from collections.abc import Sequence

from fcn_lightning.cli.errors import command_parser, fail

PROG = "fcn-lightning export"


def main(argv: Sequence[str]) -> int:
    """Export, check with ONNX Runtime at two sizes, print the largest logit difference (1: too large)."""
    from fcn_lightning.export import CHECK_SIZES, LOGIT_TOLERANCE

    parser = command_parser(
        "export",
        "Write a checkpoint as an ONNX model that takes decoded images (float32 N x 3 x H x W, "
        "RGB 0-255; any batch and size) and gives logits N x C x H x W, the model's input normalisation "
        "inside. Checked with ONNX Runtime against PyTorch at two sizes before it is written.",
    )
    parser.add_argument("ckpt", help="a checkpoint of fit / staged (or convert-caffe)")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument(
        "--mean-bgr",
        nargs=3,
        type=float,
        metavar=("B", "G", "R"),
        help="the dataset's mean pixel (0-255) for a Caffe-normalised checkpoint that does not record it",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=LOGIT_TOLERANCE,
        help="largest logit difference allowed, as a fraction of the largest logit "
        f"(default {LOGIT_TOLERANCE})",
    )
    args = parser.parse_args(list(argv))
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        fail(PROG, f"export needs the onnx and onnxruntime packages ({e}): pip install 'fcn-lightning[onnx]'")
    from fcn_lightning.export import ExportError, export_checkpoint

    try:
        report = export_checkpoint(args.ckpt, args.out, args.mean_bgr, CHECK_SIZES, args.tolerance)
    except ExportError as e:
        if "nothing written" in str(e):
            print(f"{PROG}: {e}")
            return 1
        fail(PROG, str(e))
    sizes = " and ".join(f"{h}x{w}" for h, w in report.sizes)
    print(
        f"exported {report.path}: inputs {', '.join(report.inputs)} (float32 N x C x H x W), outputs "
        f"{', '.join(report.outputs)} (N x C x H x W, {report.num_classes} classes). ONNX Runtime vs PyTorch "
        f"at {sizes}: largest logit difference {report.difference:.2e} of the largest logit "
        f"(limit {args.tolerance:.0e})."
    )
    return 0
