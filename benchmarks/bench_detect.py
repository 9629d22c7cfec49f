"""Benchmark: the detector's training step time and inference speed for both presets at their input sizes.

Run: ``.venv/bin/python benchmarks/bench_detect.py [cpu|cuda]`` (default: cuda when available). Random
inputs of the presets' shapes (cpu-small: batches of 8 crops of 3 x 192 x 192 for training, whole slices
of 3 x 416 x 416 for inference; paper: batches of 8 of 9 x 512 x 512), one lesion box per image. Times
are medians over the measured steps after one warm-up step. No accuracy here: see the README.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from deeplesion.detect.config import load_config
from deeplesion.detect.model import build_model
from machine import machine_header

SHAPES = {
    # preset: (training image side, inference image side, training steps measured, inference batches)
    "cpu-small": (192, 416, 10, 10),
    "paper": (512, 512, 2, 3),
}


def measure(preset: str, device: torch.device) -> tuple[float, float, int]:
    config = load_config(preset)
    train_side, infer_side, steps, batches = SHAPES[preset]
    torch.manual_seed(0)
    model = build_model(config.model, **config.model_options()).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    images = [torch.rand(config.slices, train_side, train_side, device=device) * 255 for _ in range(8)]
    box = torch.tensor([[40.0, 50.0, 80.0, 86.0]], device=device)
    targets = [{"boxes": box, "labels": torch.ones(1, dtype=torch.int64, device=device)} for _ in images]
    model.train()
    times = []
    for step in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.autocast(device.type, enabled=use_amp):
            loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - started)
    model.eval()
    batch = 4
    inputs = [torch.rand(config.slices, infer_side, infer_side, device=device) * 255 for _ in range(batch)]
    rates = []
    with torch.no_grad():
        for step in range(batches + 1):
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            with torch.autocast(device.type, enabled=use_amp):
                model(inputs)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step:
                rates.append(batch / (time.perf_counter() - started))
    return statistics.median(times), statistics.median(rates), sum(p.numel() for p in model.parameters())


def main() -> None:
    wanted = sys.argv[1] if len(sys.argv) > 1 else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(wanted)
    print(machine_header())
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {name}; torch {torch.__version__}\n")
    print(
        "| preset | parameters | training input | s per step (batch 8) | images/s training | inference input "
        "| slices/s inference |"
    )
    print("|---|---:|---|---:|---:|---|---:|")
    for preset, (train_side, infer_side, _, _) in SHAPES.items():
        step, rate, parameters = measure(preset, device)
        slices = load_config(preset).slices
        print(
            f"| {preset} | {parameters / 1e6:.1f} M | 8 x {slices}x{train_side}x{train_side} | {step:.2f} | "
            f"{8 / step:.1f} | {slices}x{infer_side}x{infer_side} | {rate:.1f} |"
        )


if __name__ == "__main__":
    main()
