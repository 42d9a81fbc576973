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
# 3. train in float16 with a **`GradScaler`** (and know why bfloat16 needs none), clip its
#    gradients correctly and save its state in a checkpoint;
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
import torch
from torch import nn

from workshop_labs import data, lab04, plots, runtime, timing

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
# Which 16-bit type should you use? It depends on the hardware, so the cell below decides,
# and says why:
#
# * on a **GPU**, float16: every GPU with tensor cores runs it fast, and section 4 shows how
#   to train with it safely. bfloat16 runs fast only on GPUs with bfloat16 units (Ampere,
#   such as the A100, and newer). Careful: `torch.cuda.is_bf16_supported()` also says yes on
#   GPUs that only *emulate* bfloat16 (T4, V100), slowly; `including_emulation=False` asks
#   for real units.
# * on the **CPU**, bfloat16: it is the type CPU autocast uses by default, and the one the
#   16-bit units of recent server CPUs (AVX-512 BF16, AMX) were built for. Other CPUs
#   emulate it, slowly.

# %%
if device.type == "cuda":
    low_precision = torch.float16
    bf16_units = torch.cuda.is_bf16_supported(including_emulation=False)
    print(f"GPU {torch.cuda.get_device_name(device)}: tensor cores run float16")
    print("bfloat16 units:", "yes" if bf16_units else "no (bfloat16 is only emulated, slowly)")
else:
    low_precision = torch.bfloat16
    bf16_units = lab04.cpu_bf16_units()  # reads the CPU's feature flags in /proc/cpuinfo
    print(
        "CPU with bfloat16 units (AVX-512 BF16 or AMX):",
        {True: "yes", False: "no"}.get(bf16_units, "cannot tell (no /proc/cpuinfo)"),
    )
print(f"This lab's low-precision type on {device.type}: {low_precision}")

# %% [markdown]
# ### Exercise 1 · What does a 16-bit type store?
#
# Write `stored_as(value, dtype)`: put the Python number `value` in a tensor (float32, the
# default), convert it to `dtype`, and give back what is stored, as a Python number
# (`.item()`). Before you run the check, predict what float16 and bfloat16 store for
# **70,000** (a large activation), **1e-8** (a tiny gradient) and **1.001** (a weight of 1
# after an update of 0.001). The check tries all three in both types.


# %% tags=["exercise"]
def stored_as(value, dtype):
    # TODO: a tensor of value, converted to dtype, read back as a Python number
    return value


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def stored_as(value, dtype):
#     return torch.tensor(value).to(dtype).item()
# ```
#
# </details>

# %%
stored_as = lab04.check_stored_as(stored_as)

# %% [markdown]
# Each 16-bit type fails one of the three. float16 stores 70,000 as `inf`: its largest number
# is 65,504, and one `inf` in a forward pass turns the loss into `inf` or NaN. It stores 1e-8
# as 0, the underflow we saw above. bfloat16 has the range for both, but keeps only 2–3
# digits: 1.001 comes back as 1.0, **the update of 0.001 is lost**. That is why mixed
# precision keeps the weights, and their updates, in float32 (section 2).

# %% [markdown]
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
# Let us watch it happen. A *forward hook* is a function PyTorch calls right after a module's
# forward, with the module, its inputs and its output. `watch_dtypes` hooks one onto every
# layer of a small model (with the `LayerNorm` that lab 2 introduced) to record the dtype
# going in and coming out, runs the model under autocast, then records the same for a
# softmax, a sum, `exp`, `log` and the loss computed from the model's output.


# %%
def watch_dtypes(model, inputs, targets, dtype) -> list[dict]:
    """What went into and came out of each op under autocast(dtype), in the order they ran."""
    rows = []

    def record(step, op, dtype_in, dtype_out):
        rows.append({"step": step, "op": op, "input": dtype_in, "output": dtype_out})

    def hook(module, args, output):  # PyTorch calls it after each layer's forward
        record(f"layer {len(rows)}", type(module).__name__, args[0].dtype, output.dtype)

    handles = [layer.register_forward_hook(hook) for layer in model]
    with torch.inference_mode(), torch.autocast(inputs.device.type, dtype=dtype):
        logits = model(inputs)
        record("logits → probabilities", "softmax", logits.dtype, logits.softmax(dim=1).dtype)
        record("logits → total", "sum", logits.dtype, logits.sum().dtype)
        record("logits → exp", "exp", logits.dtype, logits.exp().dtype)
        magnitudes = logits.abs()  # abs follows its input, so log gets the low-precision dtype
        record("|logits| → log", "log", magnitudes.dtype, magnitudes.log().dtype)
        loss = nn.functional.cross_entropy(logits, targets)
        record("logits → loss", "cross_entropy", logits.dtype, loss.dtype)
    for handle in handles:
        handle.remove()  # hooks stay until removed: the model runs without them from now on
    return rows


X, y = data.digits()
probe_model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.LayerNorm(32), nn.Linear(32, 10))
rows = lab04.with_reasons(
    watch_dtypes(probe_model.to(device), X[:8].to(device), y[:8].to(device), low_precision)
)
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
# ### Exercise 2 · Predict under autocast
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
predict_amp = lab04.check_predict_amp(predict_amp, device, low_precision)

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
# units (`bf16_units` from section 1: real units, not emulation). The cell builds fresh
# models each time, so re-running it starts again from scratch.

# %%
train_loader, val_loader = data.digits_loaders(batch_size=runtime.pick(full=64, quick=256))
loss_fn = nn.CrossEntropyLoss()
# a GPU without bfloat16 units (bf16_units, section 1) gets section 4's float16 recipe instead
train_dtype = torch.bfloat16 if device.type == "cpu" or bf16_units else None


def make_classifier() -> nn.Module:
    runtime.seed_everything(0)
    return nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    ).to(device)


def train(model: nn.Module, dtype: torch.dtype | None, epochs: int) -> list[float]:
    """Train with autocast in `dtype` (None: plain float32); returns the loss per epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # Adam: lab 2 introduced it
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
# ### Exercise 3 · A bfloat16 training step
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
train_step_bf16 = lab04.check_train_step_bf16(train_step_bf16, device)

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

# %% [markdown]
# ### Exercise 4 · A float16 training step with a GradScaler
#
# Write `train_step_fp16(model, optimizer, scaler, loss_fn, inputs, targets)` with the three
# scaler calls **in the right order**, the forward pass and the loss under
# `torch.autocast(inputs.device.type, dtype=torch.float16)`. The check watches what your
# function does (which `backward()` ran, what was stepped, in which order). The cell after it
# trains a network for one epoch with your function.


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
train_step_fp16 = lab04.check_train_step_fp16(train_step_fp16, device)

# %% [markdown]
# One epoch of float16 training with your step (or, if the check above failed, with the
# stand-in it names: a float32 step, which leaves the scale alone). The cell makes a fresh
# network and a fresh scaler, so re-running it starts again from scratch instead of training
# further. Watch the scale: it starts at 65,536 and changes only when there is a reason. It
# halves only when a step's gradients overflow to inf or NaN (that step is skipped), and it
# doubles only after 2,000 good steps in a row (`growth_interval`), far more than one epoch.
# This small network's gradients rarely overflow, so the scale often stays 65,536 for the
# whole epoch; the cell counts the halvings this run had.

# %%
scaler = torch.amp.GradScaler(device.type)
fp16_model = make_classifier()
optimizer = torch.optim.Adam(fp16_model.parameters(), lr=1e-3)
scales = [scaler.get_scale()]
for inputs, targets in train_loader:
    loss = train_step_fp16(
        fp16_model, optimizer, scaler, loss_fn, inputs.to(device), targets.to(device)
    )
    scales.append(scaler.get_scale())
print(f"one float16 epoch, {len(scales) - 1} steps: last loss {loss.item():.3f}")
halvings = sum(after < before for before, after in zip(scales[:-1], scales[1:], strict=True))
print(f"scale: {scales[0]:,.0f} at the start, {scales[-1]:,.0f} at the end")
print(f"steps whose gradients overflowed (scale halved, step skipped): {halvings}")
print(f"accuracy {accuracy(fp16_model):.1%}")

# %% [markdown]
# ## 5 · Clipping and checkpoints with a scaler
#
# Two habits from PyTorch's AMP recipe complete the float16 loop.
#
# **Clipping needs `scaler.unscale_(optimizer)` first.** Gradient clipping (lab 7 comes
# back to it) shrinks all gradients by one factor when their overall size, the norm, is above
# a limit: `torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)`. After
# `scaler.scale(loss).backward()` the gradients are multiplied by the scale, so clipping
# would see a norm as many times too large as the scale (65,536 at first), and cut far too
# much. `scaler.unscale_(optimizer)` divides them back in place; `scaler.step` then knows
# they are unscaled and does not divide again. Call `unscale_` once per step: a second call
# raises an error.

# %% [markdown]
# ### Exercise 5 · Clip the gradients of a float16 step (if you have time)
#
# Write `train_step_fp16_clipped(model, optimizer, scaler, loss_fn, inputs, targets,
# max_norm)`: your float16 step from Exercise 4, with the gradients clipped to `max_norm`
# before the optimizer step. Put `scaler.unscale_(optimizer)` and
# `torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)` where they belong. The check
# gives your function a `max_norm` a quarter of the gradients' true norm, then measures the
# norm of the gradients the optimizer step used: it must be `max_norm`.


# %% tags=["exercise", "stretch"]
def train_step_fp16_clipped(model, optimizer, scaler, loss_fn, inputs, targets, max_norm):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    # TODO: clip the gradients to max_norm (and make sure clipping sees their true size)
    scaler.step(optimizer)
    scaler.update()
    return loss


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def train_step_fp16_clipped(model, optimizer, scaler, loss_fn, inputs, targets, max_norm):
#     optimizer.zero_grad()
#     with torch.autocast(inputs.device.type, dtype=torch.float16):
#         loss = loss_fn(model(inputs), targets)
#     scaler.scale(loss).backward()
#     scaler.unscale_(optimizer)
#     torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
#     scaler.step(optimizer)
#     scaler.update()
#     return loss
# ```
#
# </details>

# %%
train_step_fp16_clipped = lab04.check_train_step_fp16_clipped(train_step_fp16_clipped, device)

# %% [markdown]
# Your clipped step at work: one more epoch of the float16 network from section 4, with the
# gradients clipped to a norm of at most 0.1. It continues from the weights and the scale that
# section 4 reached, so **running this cell again trains the network further**, and the
# scale goes on from where it was.

# %%
max_norm = 0.1
for inputs, targets in train_loader:
    loss = train_step_fp16_clipped(
        fp16_model, optimizer, scaler, loss_fn, inputs.to(device), targets.to(device), max_norm
    )
print(f"one more float16 epoch, clipped: last loss {loss.item():.3f}")
print(f"accuracy {accuracy(fp16_model):.1%}, scale now {scaler.get_scale():,.0f}")
grads = [p.grad.flatten() for p in fp16_model.parameters() if p.grad is not None]
if grads:  # still there after the step, unless your step zeroes them at its end
    print(f"norm of the gradients the last step used: {torch.cat(grads).norm():.3f}")

# %% [markdown]
# **A checkpoint stores `scaler.state_dict()`** next to the model's and the optimizer's (lab 6
# covers checkpoints in full). A fresh scaler starts again at 65,536 with its count of good
# steps at 0: it may skip steps again while it finds its scale, and it has lost its progress
# towards the next doubling. `load_state_dict` gives it back the scale it had reached and
# that count (`_growth_tracker`). Compare the two lines the cell prints.

# %%
checkpoint = {
    "model": fp16_model.state_dict(),
    "optimizer": optimizer.state_dict(),
    "scaler": scaler.state_dict(),
}
resumed_scaler = torch.amp.GradScaler(device.type)
print("a fresh scaler:       ", resumed_scaler.state_dict())
resumed_scaler.load_state_dict(checkpoint["scaler"])
print("after load_state_dict:", resumed_scaler.state_dict())

# %% [markdown]
# ## 6 · Speed and memory, side by side
#
# Does AMP pay off on *this* machine? We time one training step and one inference pass of a
# wider network, in float32 and with AMP, with warm-up and repeats (lab 3), and judge them
# with lab 3's rule: the median runs give the ratio, and when the middle halves of the runs
# (first to third quartile) overlap, the verdict is "within the noise".
#
# The network's size comes from the device. A GPU's tensor cores only pay off on big matrix
# multiplications: with a few hundred units they finish in microseconds, and launching the
# kernels and casting costs more than the math saves. So on a GPU `lab04.mlp_sizes` takes
# thousands of units and samples (multiples of 64), as large as your share of the GPU's
# memory allows; on the CPU it keeps the network small enough for two cores.
#
# One more precaution: `alternating_runs` times the modes in turns, a few runs of each per
# round. When the machine gets busier half-way (a neighbour starts a job), every mode feels
# it, not only the one that happened to be timed last.

# %%
usable_memory = lab04.usable_gpu_memory(device)  # None on the CPU
width, batch_size = lab04.mlp_sizes(
    device.type, usable_memory, quick=runtime.pick(full=False, quick=True)
)
if usable_memory is not None:
    print(f"GPU memory you may use: {usable_memory / 2**30:.1f} GiB")
print(f"on {device.type}: layer width {width}, batch {batch_size}")


def mlp(width: int) -> nn.Module:
    """Three Linear layers, `width` units wide: this section's network at any size."""
    runtime.seed_everything(0)
    return nn.Sequential(
        nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
    ).to(device)


def random_batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(size, 64, device=device), torch.randint(0, 10, (size,), device=device)


big_model = mlp(width)
big_optimizer = torch.optim.SGD(big_model.parameters(), lr=0.01)
inputs, targets = random_batch(batch_size)

modes = {"float32": None, f"AMP {low_precision}": low_precision}
if device.type == "cuda" and bf16_units:
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


def alternating_runs(fns: dict, repeats: int, rounds: int = 5) -> dict[str, tuple[float, ...]]:
    """Every timed run of each function, in milliseconds: `rounds` rounds of timing.measure,
    the functions in turn, `repeats // rounds` runs each per round."""
    runs = {name: () for name in fns}
    for round_number in range(rounds):
        for name, fn in fns.items():
            warmup = 3 if round_number == 0 else 1
            measured = timing.measure(fn, device=device, warmup=warmup, repeats=repeats // rounds)
            runs[name] += measured.runs
    return runs


repeats = runtime.pick(full=10, quick=20)  # quick: small steps, more runs for the rule
tasks = {"training step": training_step, "inference": inference}
timings = {}  # task → mode → every timed call, in milliseconds
for task, fn in runtime.progress(tasks.items(), desc="measuring", total=len(tasks)):
    timings[task] = alternating_runs({mode: lambda f=fn, m=mode: f(m) for mode in modes}, repeats)
speed = {
    task: {m: timing.quartiles(r)[1] for m, r in runs.items()} for task, runs in timings.items()
}
spread = {
    task: {m: timing.quartiles(r)[::2] for m, r in runs.items()} for task, runs in timings.items()
}

for mode in list(modes)[1:]:
    for task, runs in timings.items():
        print(timing.verdict(f"{mode} {task} vs float32", runs["float32"], runs[mode]))
amp = f"AMP {low_precision}"
amp_speedup = {task: timing.speedup(runs["float32"], runs[amp]) for task, runs in timings.items()}
plots.grouped_bars(
    speed,
    spread=spread,
    title=f"On {device.type}, {amp} against float32, time per call (lower is better):\n"
    f"training step {amp_speedup['training step']}\ninference {amp_speedup['inference']}",
    ylabel="milliseconds (median, whiskers: middle half)",
)
print(lab04.verdict(device, amp_speedup["training step"], amp_speedup["inference"]))

# %% [markdown]
# Speed depends on the hardware: a GPU's tensor cores, or a CPU's bfloat16 units (AVX-512
# BF16 or AMX on recent Intel and AMD server chips), make the big matrix multiplications
# faster. A CPU **without** such units only emulates bfloat16: every cast costs time and the
# multiplications get no faster, so there AMP is usually *slower*. That is the common case
# on laptops, and why AMP is mainly a GPU tool. The sentence under the verdicts says which
# case you measured.
#
# Memory is measured with *saved-tensor hooks*: a pair of functions autograd calls for every
# tensor it stores for the backward pass (`pack`) and when it takes it back (`unpack`). Our
# `pack` adds up the bytes of each stored tensor, once per block of memory. They split into
# the **activations** and the **low-precision copies of the weights** that autocast casts for
# its matrix multiplications and autograd keeps for the backward pass (`lab04.is_weight_copy`
# tells them apart by following the tensor's graph back to a parameter). float32 training
# saves no weight copy: it keeps a reference to the weight itself, which costs no new memory
# and is not counted.
#
# We measure two shapes of the same network: **wide layers with a small batch** (few
# activations, big weights) and **narrow layers with a big batch** (many activations, small
# weights). On a GPU a third group adds the allocator's own count for a training step of the
# network timed above, **peak GPU memory** (`torch.cuda.max_memory_allocated`): everything
# alive at the peak, weights, gradients and optimizer state (float32 with or without AMP)
# included. The CPU has no such counter.


# %%
def saved_for_backward(model, inputs, targets, dtype) -> dict[str, int]:
    """Bytes autograd keeps for the backward pass of one training forward (dtype None: fp32)."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}  # address of a block of memory → (kind, bytes): a block saved twice counts once

    def pack(tensor):
        block = tensor.untyped_storage()
        if block.data_ptr() not in weights:
            kind = "low-precision weight copies" if lab04.is_weight_copy(tensor) else "activations"
            saved.setdefault(block.data_ptr(), (kind, block.nbytes()))
        return tensor  # keep the tensor as it is: we only count

    with (
        torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor),
        torch.autocast(inputs.device.type, dtype=dtype or torch.float32, enabled=bool(dtype)),
    ):
        loss = loss_fn(model(inputs), targets)
    del loss  # the graph, and every tensor it saved, lived until here: no address was reused
    totals = {"activations": 0, "low-precision weight copies": 0}
    for kind, nbytes in saved.values():
        totals[kind] += nbytes
    return totals


shapes = {"wide, small batch": (width, width // 16), "narrow, big batch": (width // 8, 2 * width)}
memory, saved_total = {}, {}  # MiB per bar group and mode; MiB saved in all per shape and mode
for shape, (shape_width, shape_batch) in shapes.items():
    shape_model = mlp(shape_width)
    for mode, dtype in modes.items():
        saved = saved_for_backward(shape_model, *random_batch(shape_batch), dtype)
        for kind, nbytes in saved.items():
            memory.setdefault(f"{shape}:\n{kind}", {})[mode] = nbytes / 2**20
        saved_total.setdefault(shape, {})[mode] = sum(saved.values()) / 2**20
if device.type == "cuda":
    for mode in modes:
        torch.cuda.reset_peak_memory_stats()
        training_step(mode)
        peak = torch.cuda.max_memory_allocated() / 2**20
        memory.setdefault("peak GPU memory of\nthe timed training step", {})[mode] = peak

for shape, (shape_width, shape_batch) in shapes.items():
    totals = ", ".join(f"{mode} {mib:.2f} MiB" for mode, mib in saved_total[shape].items())
    print(f"{shape} (width {shape_width}, batch {shape_batch}), saved for backward: {totals}")
for what, by_mode in memory.items():  # every bar of the figure, every mode measured
    print(
        f"  {' '.join(what.split())}: "
        + ", ".join(f"{m} {mib:.2f} MiB" for m, mib in by_mode.items())
    )
saved_ratio = {shape: totals[amp] / totals["float32"] for shape, totals in saved_total.items()}
plots.grouped_bars(
    memory,
    title=f"What autograd saved for backward, {amp} against float32:\n"
    + "; ".join(f"{ratio:.2f}× float32's with {shape}" for shape, ratio in saved_ratio.items()),
    ylabel="MiB (2**20 bytes), measured (lower is better)",
)

# %% [markdown]
# Read the bars shape by shape, with the printed numbers. The **activations** take 2 bytes
# per number instead of 4 (the loss and a few small tensors stay float32, so a bit more than
# half). The **weight copies** exist only with AMP: 2 bytes per weight of each layer whose
# backward needs its weight (all but the first, whose input needs no gradient). Activations
# grow with the batch size times the layer width, weight copies with the width squared:
#
# * **wide layers, small batch**: the weight copies outweigh what the activations save, and
#   AMP needs *more* memory than float32;
# * **narrow layers, big batch**: the activations dominate, and AMP needs about *half*.
#
# So AMP saves memory where activations dominate: big batches, long sequences, large images,
# which is where memory runs out in practice. On a GPU the **peak** bar adds weights,
# gradients and optimizer state, which AMP keeps in float32, so its ratio stays closer to 1.

# %% [markdown]
# ### Exercise 6 · Time both sides with lab 3's rule
#
# A verdict needs every run of both sides. Write `time_both(before, after)`: time each
# function (it takes no argument) with `timing.measure`, warm-up included, `repeats` times
# (from the cell above) on `device`, and return `(before_runs, after_runs)`, every timed
# run of each, in milliseconds (a `Measurement`'s `.runs`). The check hands your function two
# functions of its own, one taking 6 ms and one 2 ms (and longer on their first call), and
# believes only runs that those calls can have taken.


# %% tags=["exercise"]
def time_both(before, after):
    # TODO: one run is no verdict: warm up, then time each side repeatedly
    before_runs = [timing.measure(before, device=device, warmup=0, repeats=1).mean_ms]
    after_runs = [timing.measure(after, device=device, warmup=0, repeats=1).mean_ms]
    return before_runs, after_runs


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def time_both(before, after):
#     before_runs = timing.measure(before, device=device, warmup=3, repeats=repeats).runs
#     after_runs = timing.measure(after, device=device, warmup=3, repeats=repeats).runs
#     return before_runs, after_runs
# ```
#
# </details>

# %%
time_both = lab04.check_time_both(time_both)

# %% [markdown]
# `print(timing.verdict("what", before_runs, after_runs))` turns such runs into the verdict
# lines printed above.
#
# ## 7 · When AMP does not help
#
# AMP speeds up the matrix math. Where that math is not what takes the time, there is
# nothing to gain and the casts are pure cost. Two typical cases, measured for inference
# beside section 6's network (its bar uses section 6's inference runs):
#
# * a **tiny model** (16 hidden units, 8 samples): each op is so small that fixed per-call
#   costs dominate (lab 3), and autocast adds a cast per op;
# * a **memory-bound op**: an element-wise computation on a big tensor does one addition per
#   number loaded from memory, so its speed is set by memory bandwidth. autocast does not
#   even change it: element-wise ops are not on its lists and run in float32.
#
# Each bar is the ratio of the median runs, drawn from 1× (up: faster, down: slower, on a
# logarithmic scale where 2× faster and 2× slower are as long); its whisker spans the ratios
# the middle halves allow (float32's first quartile over AMP's third, to float32's third over
# AMP's first); its colour is the verdict: green faster, red slower, grey within the noise.

# %%
tiny_model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).to(device)
tiny_inputs = torch.rand(8, 64, device=device)
big_tensor = torch.rand(runtime.pick(full=4096, quick=1024), 1024, device=device)


def under_autocast(fn, enabled: bool):
    """`fn` run for inference, with autocast off (float32) or on."""

    def call():
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=low_precision, enabled=enabled),
        ):
            fn()

    return call


def float32_and_amp_runs(fn) -> tuple[tuple[float, ...], tuple[float, ...]]:
    runs = alternating_runs(
        {"float32": under_autocast(fn, False), "AMP": under_autocast(fn, True)},
        repeats=20,
    )
    return runs["float32"], runs["AMP"]


cases = {
    f"wide MLP ({width} units)": (timings["inference"]["float32"], timings["inference"][amp]),
    "tiny MLP (16 units)": float32_and_amp_runs(lambda: tiny_model(tiny_inputs)),
    "element-wise op": float32_and_amp_runs(lambda: torch.relu(big_tensor) * 2 + 1),
}
for case, (float32_runs, amp_runs) in cases.items():
    print(timing.verdict(f"AMP inference, {case}", float32_runs, amp_runs))
lab04.speedup_bars(
    {case: timing.speedup(*runs) for case, runs in cases.items()},
    title=f"AMP ({low_precision}) against float32 for inference on {device.type}",
)

# %% [markdown]
# Only a big network can gain, and only on hardware with low-precision units (the verdicts
# above say whether yours did). The tiny model loses; by how much depends on the machine: on
# a busy CPU the threads that share even this tiny work wait for one another, and the gap
# can grow to hundreds of times. The element-wise op runs in float32 either way, so AMP can
# only add bookkeeping: expect "within the noise" or a small loss.

# %% [markdown]
# ### Exercise 7 · Where did AMP pay off?
#
# Write `amp_gains(cases)`: `cases` maps a case's name to `(float32_runs, amp_runs)`, like
# `cases` above; return the names of the cases where AMP was **faster beyond the noise**.
# The starter counts every ratio above 1. The check first tries made-up cases, each a way of
# judging speed going wrong, then the cases measured above.


# %% tags=["exercise"]
def amp_gains(cases):
    gains = []
    for case, (float32_runs, amp_runs) in cases.items():
        speedup = timing.speedup(float32_runs, amp_runs)
        if speedup.ratio > 1:  # TODO: a ratio above 1 is not enough: apply lab 3's rule
            gains.append(case)
    return gains


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def amp_gains(cases):
#     gains = []
#     for case, (float32_runs, amp_runs) in cases.items():
#         speedup = timing.speedup(float32_runs, amp_runs)
#         if speedup.direction == timing.FASTER:
#             gains.append(case)
#     return gains
# ```
#
# </details>

# %%
amp_gains = lab04.check_amp_gains(amp_gains, cases)

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
#   `scaler.update()`, in this order; `scaler.unscale_(optimizer)` once, before clipping;
#   save `scaler.state_dict()` in checkpoints.
# * `torch.cuda.is_bf16_supported(including_emulation=False)` tells whether a GPU really has
#   bfloat16 units; without the argument, emulating GPUs (T4, V100) say yes too.
# * Measure before you believe, with lab 3's rule: AMP halves the activations but adds
#   low-precision weight copies, so memory falls only where activations dominate (big
#   batches, long sequences); it speeds up only big matrix math on hardware with
#   low-precision units, and a ratio above 1 is a gain only when the middle halves of the
#   runs do not overlap.
