"""benchmarks.throughput's roofline: the FLOPs it counts for an update, against a hand count."""

import torch

from benchmarks.throughput import counted_flops


def test_counted_flops_are_the_products_and_convolutions_of_a_forward_and_backward_pass():
    g = torch.Generator().manual_seed(0)
    n, k, m = 7, 5, 3
    linear = torch.nn.Linear(k, m)
    conv = torch.nn.Conv2d(2, 4, 3, stride=1, padding=1, bias=False)
    x, image = torch.randn(n, k, generator=g), torch.randn(2, 2, 6, 6, generator=g)

    def update():
        loss = linear(x).square().sum() + conv(image).square().sum()  # elementwise work is not counted
        loss.backward()

    linear_flops = 2 * (2 * n * k * m)  # forward and the weight's gradient (the input needs none)
    conv_forward = 2 * (2 * 4 * 6 * 6) * (2 * 3 * 3)  # outputs x multiply-adds per output
    conv_flops = 2 * conv_forward  # forward and the weight's gradient (the input needs none)
    assert counted_flops(update) == linear_flops + conv_flops
    assert counted_flops(lambda: None) == 0
