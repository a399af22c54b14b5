"""Bare ResNet18 train-step speed: fp32 NCHW 3-channel (the seed) vs bf16 autocast +
channels_last with 1 or 3 channels, on random tensors (no data pipeline). Shows how much of
`boneflow bench train`'s ratio the model itself allows on this machine.

    .venv/bin/python scripts/bench_model_step.py
"""

import time

import torch
import torchvision

torch.manual_seed(0)


def run(ch, bf16, cl, bs=32, steps=6, size=224):
    m = torchvision.models.resnet18(num_classes=2)
    if ch == 1:
        m.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    x = torch.randn(bs, ch, size, size)
    y = torch.randint(0, 2, (bs,))
    if cl:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(m.parameters(), 1e-3)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return bs * steps / (time.perf_counter() - t)


a = run(3, False, False)
b = run(1, True, True)
c = run(3, True, True)
d = run(1, True, False)
print(
    f"fp32 NCHW 3ch {a:.1f}  bf16 CL 1ch {b:.1f} ({b / a:.2f}x)  "
    f"bf16 CL 3ch {c:.1f} ({c / a:.2f}x) bf16 NCHW 1ch {d:.1f} ({d / a:.2f}x)"
)
