# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 4 · Automatic mixed precision (AMP)
#
# Most of a network's time goes into matrix multiplications, and modern hardware does those
# much faster in 16-bit numbers than in 32-bit ones. *Mixed precision* runs the operations
# that tolerate it in 16 bits and keeps the rest in 32 bits; *automatic* means PyTorch picks
# which is which. By the end of this lab you will be able to:
#
# 1. explain **float32, float16 and bfloat16**: what each one gives up;
# 2. run inference and training under **`torch.autocast`**, and say which ops run in which
#    dtype and why;
# 3. train in float16 with a **`GradScaler`** (and know why bfloat16 needs none);
# 4. **measure** speed and memory of float32 against AMP on your hardware, and recognise when
#    AMP does not help.
#
# You need labs 1–3: tensors, `nn.Module`, a training loop, and timing with warm-up.
#
# **After a kernel restart** (*Kernel › Restart*, or a crash when memory ran out) your edits
# are still here but every variable is gone: click the cell you were working on and choose
# *Run › Run All Above Selected Cell*, then carry on from there.

# %%
from workshop_labs import setup

device = setup()

# %%
import statistics

import torch
from torch import nn

from workshop_labs import data, lab04, plots, runtime, timing

low_precision = lab04.amp_dtype(device)
print(lab04.hardware_line(device))
print(f"This lab's low-precision type on {device.type}: {low_precision}")

# %% [markdown]
# ## 1 · Three ways to store a number
#
# A floating-point number is a sign, an **exponent** (how big: the range) and a **mantissa**
# (the significant digits: the precision). float32 is PyTorch's default. The two 16-bit types
# halve the memory and the data to move, but give up different things:
#
# * **float16** keeps 10 mantissa bits but only 5 exponent bits: nothing above 65,504, and
#   numbers below about 6·10⁻⁸ become **0**. GPUs have run it fast for years.
# * **bfloat16** ("brain float") keeps float32's 8 exponent bits, so the *same range*, but only
#   7 mantissa bits: about 2–3 significant digits. Recent GPUs and some CPUs run it fast.

# %%
lab04.number_formats()

# %% [markdown]
# Watch what happens to a small number, such as a gradient late in training:

# %%
tiny_gradient = torch.tensor(1e-8)
for dtype in (torch.float32, torch.float16, torch.bfloat16):
    print(f"{str(dtype):>15}: 1e-8 is stored as {tiny_gradient.to(dtype).item():.3e}")

# %% [markdown]
# float16 turned the gradient into exactly 0: the weight it belongs to stops learning. Keep
# that in mind for section 4. bfloat16 keeps it (only its last digits are rounded).
#
# ## 2 · `torch.autocast`: which op runs in which dtype
#
# Converting the whole model to 16 bits (`model.half()`) would be simple but harmful: weight
# updates are tiny compared with the weights and would be rounded away, and sums over many
# numbers lose precision. `torch.autocast` is smarter. Inside
# `with torch.autocast(device_type=..., dtype=...):` the **weights stay float32**, and each
# operation is cast on the fly according to lists PyTorch keeps **per device** (the "Autocast
# Op Reference" in PyTorch's AMP documentation prints them):
#
# * a **low-precision list**, the same idea on both devices: matrix multiplications such as
#   `linear`, `matmul`, `mm`, `bmm` and convolutions run in low precision;
# * a **float32 list**, and here the devices differ. On **CUDA** it holds the ops that need
#   range or precision: `exp`, `log`, `pow`, `softmax`, `log_softmax`, `layer_norm`,
#   `group_norm`, `sum`, `cumsum`, `prod`, `norm` and the losses. On the **CPU** it is mostly
#   the losses (`cross_entropy`, `mse_loss`, `nll_loss`, ...) plus delicate linear algebra
#   (`cholesky`, `inverse`, FFTs); `exp`, `log`, `softmax`, `sum` and `layer_norm` are not
#   on it, so with a bfloat16 input they run in bfloat16;
# * everything not on a list (ReLU, additions, and on the CPU the ops just named) runs in the
#   dtype of its input; an op that gets mixed float inputs runs in the widest of them.
#
# Let us watch it happen. Forward hooks (functions PyTorch calls after a module's forward)
# record the dtype going into and coming out of every layer of a small model, then of a
# softmax, a sum, `exp`, `log` and the loss.

# %%
X, y = data.digits()
probe_model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.LayerNorm(32), nn.Linear(32, 10)).to(
    device
)
rows = lab04.dtype_table(probe_model, X[:8].to(device), y[:8].to(device), dtype=low_precision)
plots.table(rows, title=f"What ran in which dtype under autocast({device.type}, {low_precision})")

# %%
lab04.dtype_picture(rows, title=f"The dtype each op produced on {device.type}")

# %% [markdown]
# Read the picture left to right: the float32 input enters the first `Linear`, which autocast
# runs in low precision; the activations then *stay* low precision through ReLU; the loss
# comes out float32 on every device. In between, the devices differ, as the lists say: on the
# CPU, LayerNorm, softmax, the sum, `exp` and `log` follow their bfloat16 input; on a GPU all
# of them come out float32. The table shows what happened on the machine you ran it on.
#
# Inference under autocast is the forward pass inside the `with` block; add
# `torch.inference_mode()` because prediction needs no autograd graph.

# %% [markdown]
# ### Exercise 1 · Predict under autocast
#
# Write `predict_amp(model, inputs)` that returns the model's class scores computed under
# `torch.autocast` with `device_type=inputs.device.type` and `dtype=low_precision`, inside
# `torch.inference_mode()`. Do **not** convert the model itself.


# %% tags=["exercise"]
def predict_amp(model, inputs):
    # TODO: inference mode + autocast with dtype=low_precision
    return model.to(low_precision)(inputs.to(low_precision))


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def predict_amp(model, inputs):
#     with torch.inference_mode(), torch.autocast(inputs.device.type, dtype=low_precision):
#         return model(inputs)
# ```
#
# </details>

# %%
lab04.check_predict_amp(predict_amp, device)

# %% [markdown]
# ## 3 · Training with autocast (bfloat16: no scaler needed)
#
# Training changes three lines of the loop you know: the forward pass **and the loss** go
# inside the `autocast` block; `backward()` and `optimizer.step()` stay outside (autograd runs
# each op's backward in the dtype its forward used). Since bfloat16 has float32's range,
# gradients do not underflow and nothing else is needed. (float16 is section 4.)
#
# We train the same network twice on the digits, once in float32 and once with AMP, and
# compare. On the CPU the AMP run uses bfloat16; on a GPU, bfloat16 when it has bfloat16
# units (the check below asks for real units, not emulation).

# %%
train_loader, val_loader = data.digits_loaders(batch_size=runtime.pick(full=64, quick=256))
loss_fn = nn.CrossEntropyLoss()
train_dtype = torch.bfloat16
# By default is_bf16_supported() also says yes where bf16 is only emulated (T4, V100): slow.
if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
    train_dtype = None  # no bfloat16 units on this GPU: section 4's float16 recipe applies


def make_classifier() -> nn.Module:
    runtime.seed_everything(0)
    return nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    ).to(device)


def train(model: nn.Module, dtype: torch.dtype | None, epochs: int) -> list[float]:
    """Train with autocast in `dtype` (None: plain float32); returns the loss per epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for inputs, targets in train_loader:
            inputs, targets = inputs.to(device), targets.to(device)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=bool(dtype)):
                loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(targets)
        losses.append(total / len(train_loader.dataset))
    return losses


def accuracy(model: nn.Module) -> float:
    with torch.inference_mode():
        hits = sum(
            (model(inputs.to(device)).argmax(1) == targets.to(device)).sum().item()
            for inputs, targets in val_loader
        )
    return hits / len(val_loader.dataset)


epochs = runtime.pick(full=8, quick=1)
runs = {"float32": None, f"AMP {train_dtype}": train_dtype} if train_dtype else {"float32": None}
curves, models = {}, {}
for name, dtype in runtime.progress(runs.items(), desc="training", total=len(runs)):
    models[name] = make_classifier()
    curves[name] = train(models[name], dtype, epochs)
    print(f"{name:>15}: final loss {curves[name][-1]:.4f}, accuracy {accuracy(models[name]):.1%}")

plots.curves(
    curves,
    title="Same network, same data: float32 vs AMP",
    xlabel="epoch",
    ylabel="training loss",
    logy=True,
)

# %% [markdown]
# The curves lie on top of each other: the rounding of bfloat16 is noise that training
# shrugs off, because the weights and their updates stay in float32.

# %% [markdown]
# ### Exercise 2 · A bfloat16 training step
#
# Write `train_step_bf16(model, optimizer, loss_fn, inputs, targets)`: zero the gradients, run
# the forward pass **and** the loss under `torch.autocast(inputs.device.type,
# dtype=torch.bfloat16)`, then call `backward()` and `optimizer.step()` outside the block.


# %% tags=["exercise"]
def train_step_bf16(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    # TODO: the forward pass and the loss belong inside torch.autocast(..., dtype=torch.bfloat16)
    outputs = model(inputs)
    loss = loss_fn(outputs, targets)
    loss.backward()
    optimizer.step()
    return loss


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def train_step_bf16(model, optimizer, loss_fn, inputs, targets):
#     optimizer.zero_grad()
#     with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
#         outputs = model(inputs)
#         loss = loss_fn(outputs, targets)
#     loss.backward()
#     optimizer.step()
#     return loss
# ```
#
# </details>

# %%
lab04.check_train_step_bf16(train_step_bf16, device)

# %% [markdown]
# ## 4 · float16 needs a `GradScaler`
#
# With float16, small gradients underflow to zero during `backward()`, as we saw with 1e-8.
# How many are at risk in a real network? Here are the gradients of the float32 network we
# just trained, on the left as they are, on the right multiplied by 65,536:

# %%
reference = models["float32"]
reference.zero_grad()
inputs, targets = next(iter(train_loader))
loss_fn(reference(inputs.to(device)), targets.to(device)).backward()
gradients = torch.cat([p.grad.flatten() for p in reference.parameters()])
lab04.gradient_underflow(gradients, scale=2.0**16)

# %% [markdown]
# Left of the dashed line float16 stores 0; between the dashed and the dotted line it keeps
# only a few digits. Multiplying the **loss** by a large factor multiplies every gradient by
# the same factor (the chain rule is linear), which lifts them into float16's range. That is
# what `torch.amp.GradScaler` does, automatically:
#
# 1. `scaler.scale(loss).backward()`: backward on the loss times the scale (65,536 at first);
# 2. `scaler.step(optimizer)`: divides the gradients by the scale again (they are float32
#    there), and **skips** the step if any gradient is inf or NaN, i.e. the scale was too big;
# 3. `scaler.update()`: halves the scale after a skipped step, and doubles it after a long run
#    of good ones, so it finds the largest safe factor by itself.
#
# bfloat16 has float32's range, so its gradients do not underflow: no scaler needed.
#
# Two more habits from PyTorch's AMP recipe, both in the loop below:
#
# * **Clipping needs `scaler.unscale_(optimizer)` first.** After `scaler.scale(loss).backward()`
#   the gradients are multiplied by the scale, so `clip_grad_norm_(..., max_norm=1.0)` would
#   compare a norm tens of thousands of times too large. `unscale_` divides them back in
#   place; `scaler.step` then knows they are unscaled and does not divide again.
# * **A checkpoint stores `scaler.state_dict()`** next to the model's and the optimizer's.
#   A fresh scaler starts again at 65,536 with its count of good steps at 0, and has to find
#   the right scale again, skipping steps on the way; `load_state_dict` gives it back the
#   scale it had reached and the count (`_growth_tracker`) towards its next doubling.

# %%
scaler = torch.amp.GradScaler(device.type)
fp16_model = make_classifier()
optimizer = torch.optim.Adam(fp16_model.parameters(), lr=1e-3)
for inputs, targets in train_loader:
    inputs, targets = inputs.to(device), targets.to(device)
    optimizer.zero_grad()
    with torch.autocast(device.type, dtype=torch.float16):
        loss = loss_fn(fp16_model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # the gradients are true-sized again before clipping sees them
    norm = nn.utils.clip_grad_norm_(fp16_model.parameters(), max_norm=1.0)
    scaler.step(optimizer)
    scaler.update()
print(f"one float16 epoch: last loss {loss.item():.3f}, scale now {scaler.get_scale():,.0f}")
print(f"last gradient norm, measured after unscale_: {norm.item():.3f}")

checkpoint = {
    "model": fp16_model.state_dict(),
    "optimizer": optimizer.state_dict(),
    "scaler": scaler.state_dict(),
}
resumed_scaler = torch.amp.GradScaler(device.type)
print("a fresh scaler:             ", resumed_scaler.state_dict())
resumed_scaler.load_state_dict(checkpoint["scaler"])
print("after load_state_dict:      ", resumed_scaler.state_dict())

# %% [markdown]
# ### Exercise 3 · A float16 training step with a GradScaler
#
# Write `train_step_fp16(model, optimizer, scaler, loss_fn, inputs, targets)` with the three
# scaler calls **in the right order**, the forward pass and the loss under
# `torch.autocast(inputs.device.type, dtype=torch.float16)`. The check watches what your
# function does (which `backward()` ran, what was stepped, in which order).


# %% tags=["exercise"]
def train_step_fp16(model, optimizer, scaler, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    # TODO: use the scaler
    loss.backward()
    optimizer.step()
    return loss


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def train_step_fp16(model, optimizer, scaler, loss_fn, inputs, targets):
#     optimizer.zero_grad()
#     with torch.autocast(inputs.device.type, dtype=torch.float16):
#         loss = loss_fn(model(inputs), targets)
#     scaler.scale(loss).backward()
#     scaler.step(optimizer)
#     scaler.update()
#     return loss
# ```
#
# </details>

# %%
lab04.check_train_step_fp16(train_step_fp16, device)

# %% [markdown]
# ## 5 · Speed and memory, side by side
#
# Does AMP pay off on *this* machine? We time one training step and one inference pass of a
# wider network, in float32 and with AMP, with warm-up and repeats, and keep the median
# (lab 3). Memory is measured in two ways, and the bars say which is which:
#
# * **saved for backward**, on every device: saved-tensor hooks
#   (`torch.autograd.graph.saved_tensors_hooks`) see each tensor autograd stores for the
#   backward pass, and we add up their bytes. They split into the **activations** and the
#   **low-precision copies of the weights** that autocast casts for its matrix
#   multiplications and autograd keeps for the backward pass. float32 training saves no weight
#   copy: it keeps a reference to the weight itself, which is not counted.
# * **peak GPU memory of a training step**, on a GPU only: the allocator's own counter
#   (`torch.cuda.max_memory_allocated`). It includes everything alive at the peak: weights,
#   gradients and optimizer state (float32 with or without AMP) on top of the above. The CPU
#   has no such counter.

# %%
width, batch_size = runtime.pick(full=2048, quick=256), runtime.pick(full=512, quick=128)
big_model = nn.Sequential(
    nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
).to(device)
big_optimizer = torch.optim.SGD(big_model.parameters(), lr=0.01)
inputs = torch.rand(batch_size, 64, device=device)
targets = torch.randint(0, 10, (batch_size,), device=device)

modes = {"float32": None, f"AMP {low_precision}": low_precision}
if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
    modes["AMP torch.bfloat16"] = torch.bfloat16
scalers = {name: torch.amp.GradScaler(device.type) for name in modes}


def training_step(mode: str) -> None:
    dtype = modes[mode]
    big_optimizer.zero_grad()
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=bool(dtype)):
        loss = loss_fn(big_model(inputs), targets)
    if dtype == torch.float16:
        scalers[mode].scale(loss).backward()
        scalers[mode].step(big_optimizer)
        scalers[mode].update()
    else:
        loss.backward()
        big_optimizer.step()


def inference(mode: str) -> None:
    dtype = modes[mode]
    with torch.inference_mode():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=bool(dtype)):
            big_model(inputs)


PEAK = "peak GPU memory\nof a training step"


def memory_mb(mode: str) -> dict[str, float]:
    saved = lab04.saved_for_backward(big_model, inputs, targets, dtype=modes[mode])
    measured = {f"{kind}\nsaved for backward": n / 2**20 for kind, n in saved.items()}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        training_step(mode)
        measured[PEAK] = torch.cuda.max_memory_allocated() / 2**20
    return measured


repeats = runtime.pick(full=10, quick=3)
speed, memory = {"training step": {}, "inference": {}}, {}
for mode in runtime.progress(modes, desc="measuring"):
    for task, fn in (("training step", training_step), ("inference", inference)):
        result = timing.measure(lambda f=fn, m=mode: f(m), device=device, warmup=3, repeats=repeats)
        speed[task][mode] = statistics.median(result.runs)
    for what, mb in memory_mb(mode).items():
        memory.setdefault(what, {})[mode] = mb
    print(
        f"{mode:>20}: training step {speed['training step'][mode]:.2f} ms, "
        f"inference {speed['inference'][mode]:.2f} ms"
    )

plots.grouped_bars(
    speed, title=f"Time per call on {device.type} (lower is better)", ylabel="milliseconds"
)

# %%
plots.grouped_bars(
    memory, title=f"Memory on {device.type}, measured (lower is better)", ylabel="MB"
)
amp = f"AMP {low_precision}"
print(f"layer width {width}, batch {batch_size}")
for what, by_mode in memory.items():
    label = " ".join(what.split())
    print(f"{label}: float32 {by_mode['float32']:.2f} MB, {amp} {by_mode[amp]:.2f} MB")
saved_total = {mode: sum(memory[w][mode] for w in memory if w != PEAK) for mode in modes}
memory_measure = "peak GPU memory" if device.type == "cuda" else "memory saved for backward"
memory_ratio = (
    memory[PEAK][amp] / memory[PEAK]["float32"]
    if device.type == "cuda"
    else saved_total[amp] / saved_total["float32"]
)
print(
    lab04.verdict(
        device,
        speedup=speed["training step"]["float32"] / speed["training step"][amp],
        memory_ratio=memory_ratio,
        memory=memory_measure,
    )
)

# %% [markdown]
# Read the memory bars group by group. The **activations** take 2 bytes per number instead
# of 4 (the loss and a few small tensors stay float32, so a bit more than half). The **weight
# copies** exist only with AMP: 2 bytes per weight of each layer whose backward needs its
# weight (all but the first, whose input needs no gradient). Which of the
# two is larger depends on the shapes: activations grow with the batch size times the layer
# width, weight copies with the width squared. Compare the two AMP bars for the sizes used
# here (printed above the verdict): AMP saves memory in total only where the activations
# dominate (big batches, long sequences, large images). On a GPU the **peak** bar
# adds weights, gradients and optimizer state, which AMP keeps in float32, so its ratio stays
# closer to 1 than the activations' ratio.
#
# Speed depends on the hardware: a GPU's tensor cores, or a CPU's bfloat16 units (AVX-512
# BF16 or AMX on recent Intel and AMD server chips), make the big matrix multiplications
# faster. A CPU **without** such units only emulates bfloat16: every cast costs time and the
# multiplications get no faster, so there AMP is usually *slower*. That is the common case
# on laptops, and why AMP is mainly a GPU tool.
#
# ## 6 · When AMP does not help
#
# AMP speeds up the matrix math. Where that math is not what takes the time, there is
# nothing to gain and the casts are pure cost. Two typical cases, measured:
#
# The wide MLP's bar below is section 5's inference measurement (the same runs, so the same
# number); the two new cases are measured here the same way.
#
# * a **tiny model** (16 hidden units, 8 samples): each op is so small that fixed per-call
#   costs dominate (lab 3), and autocast adds a cast per op;
# * a **memory-bound op**: an element-wise computation on a big tensor does one addition per
#   number loaded from memory, so its speed is set by memory bandwidth. autocast does not
#   even change it: element-wise ops are not on its lists and run in float32.

# %%
tiny_model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).to(device)
tiny_inputs = torch.rand(8, 64, device=device)
big_tensor = torch.rand(runtime.pick(full=4096, quick=1024), 1024, device=device)


def autocast_speedup(fn) -> float:
    """float32 time divided by AMP time for `fn` (median of repeated runs after warm-up)."""
    times = {}
    for enabled in (False, True):

        def call(enabled=enabled):
            with (
                torch.inference_mode(),
                torch.autocast(device.type, dtype=low_precision, enabled=enabled),
            ):
                fn()

        result = timing.measure(
            call, device=device, warmup=3, repeats=runtime.pick(full=20, quick=10)
        )
        times[enabled] = statistics.median(result.runs)
    return times[False] / times[True]


speedups = {
    f"wide MLP ({width} units)": speed["inference"]["float32"] / speed["inference"][amp],
    "tiny MLP (16 units)": autocast_speedup(lambda: tiny_model(tiny_inputs)),
    "element-wise op": autocast_speedup(lambda: torch.relu(big_tensor) * 2 + 1),
}
lab04.speedup_bars(speedups, title=f"Where AMP pays off on {device.type} (inference)")

# %% [markdown]
# ## Recap
#
# * float16: fast on GPUs, small range, so gradients underflow: use a `GradScaler`.
#   bfloat16: float32's range with fewer digits: no scaler needed; fast on recent GPUs and
#   CPUs with bf16 units.
# * `with torch.autocast(device_type, dtype=...)` around the forward pass **and the loss**;
#   weights stay float32; `backward()` and `step()` outside. For inference add
#   `torch.inference_mode()`.
# * autocast casts per op from per-device lists: matrix multiplications go low precision;
#   losses stay float32 everywhere; on GPUs also `exp`, `log`, softmax, normalisation and
#   sums; on the CPU those follow their input. The rest follows its input.
# * The float16 recipe: `scaler.scale(loss).backward()`, `scaler.step(optimizer)`,
#   `scaler.update()`, in this order; `scaler.unscale_(optimizer)` before clipping; save
#   `scaler.state_dict()` in checkpoints.
# * `torch.cuda.is_bf16_supported(including_emulation=False)` tells whether a GPU really has
#   bfloat16 units; without the argument, emulating GPUs (T4, V100) say yes too.
# * Measure before you believe: AMP halves the activations but adds low-precision weight
#   copies, so total memory falls only where activations dominate; it speeds up only big
#   matrix math on hardware with low-precision units.
