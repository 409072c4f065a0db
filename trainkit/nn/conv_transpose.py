"""``ConvTranspose2d``: the transposed convolution (the input gradient of ``Conv2d``), PyTorch's layout and init."""
from __future__ import annotations

from trainkit.nn import functional as F
from trainkit.nn.conv import _CONV_ARGS, _ConvNd
from trainkit.registry import PADDING, SIZE, Example, Inferred, ShapeProblem, layer, need_image, pair
from trainkit.nn import onnx_rules as _onnx

__all__ = ["ConvTranspose2d"]


@layer("conv_transpose2d", input_arg="in_channels", input_dim=0,
       args={**_CONV_ARGS, "padding": PADDING, "output_padding": PADDING, "dilation": SIZE},
       exclude=("padding_mode",),
       example=Example((2, 2, 3, 3), {"out_channels": 4, "kernel_size": 3, "stride": 2, "output_padding": 1,
                                      "groups": 2}, name="ConvTranspose2d(stride=2,groups=2)"), onnx=_onnx.conv_transpose)
class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution ("deconvolution"): upsamples as the gradient of a ``Conv2d`` would.

    Args:
        in_channels: channels of the input.
        out_channels: channels produced.
        kernel_size: int or ``(kH, kW)``.
        stride: int or pair: the upsampling factor.
        padding: int or pair, removed from each side of the full output.
        output_padding: extra rows/columns on the bottom/right (smaller than stride or dilation); picks
            among the output sizes a strided conv maps to the same input size.
        groups: independent channel groups.
        bias: if False the layer has no bias.
        dilation: spacing between kernel taps.
        padding_mode: only ``'zeros'``, as in PyTorch.
        dtype: parameter dtype (float32 by default).

    Shape:
        ``(N, C_in, H, W)`` -> ``(N, C_out, H_out, W_out)`` with
        ``H_out = (H - 1)*sH - 2*pH + dH*(kH - 1) + output_padding + 1``.

    Attributes:
        weight: ``(in_channels, out_channels/groups, kH, kW)``; kaiming_uniform_(a=sqrt(5)) (fan_in from
            dimension 1, as PyTorch computes it); bias ``(out_channels,)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                 dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype, transposed=True, output_padding=output_padding)

    def _output_padding(self, input, output_size) -> tuple:  # noqa: A002
        """The output_padding giving ``output_size`` (PyTorch's rule), or the layer's own."""
        if output_size is None:
            return self.output_padding
        size = list(output_size)[-2:]
        out = []
        for d in range(2):
            n = input.shape[input.ndim - 2 + d]
            base = (n - 1) * self.stride[d] - 2 * self.padding[d] + self.dilation[d] * (self.kernel_size[d] - 1) + 1
            if not base <= size[d] < base + self.stride[d]:
                raise ValueError(f"requested an output size of {size}, but valid sizes range from "
                                 f"{base} to {base + self.stride[d] - 1} (for an input of {list(input.shape[2:])})")
            out.append(size[d] - base)
        return tuple(out)

    def forward(self, input, output_size=None):  # noqa: A002
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)

    @staticmethod
    def infer_shape(args, x):
        """``(C_in, H, W) -> (out_channels, H_out, W_out)``, ``H_out = (H-1)*s - 2p + d*(k-1) + output_padding + 1``."""
        need_image("conv_transpose2d", x)
        k, s, p = pair(args["kernel_size"]), pair(args["stride"]), pair(args["padding"])
        op, d, g, out = pair(args["output_padding"]), pair(args["dilation"]), args["groups"], args["out_channels"]
        if x[0] % g or out % g:
            raise ShapeProblem(f"{x[0]} input and {out} output channels must both split into {g} groups", "groups")
        for i in range(2):
            if op[i] >= max(s[i], d[i]):
                raise ShapeProblem(f"output_padding {list(op)} must be smaller than the stride or the dilation",
                                   "output_padding")
        size = tuple((x[1 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(2))
        if min(size) < 1:
            raise ShapeProblem(f"the padding leaves no output ({size[0]}x{size[1]})", "padding")
        params = x[0] * (out // g) * k[0] * k[1] + (out if args["bias"] else 0)
        return Inferred((out,) + size, macs=x[0] * (out // g) * k[0] * k[1] * x[1] * x[2], params=params)
