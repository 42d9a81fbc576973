# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 7 · Advanced training techniques
#
# The training loop of Labs 1 and 2 works, but real training runs need a few more tools: a
# learning rate that changes over time, protection against one bad step destroying the model,
# a big batch on a small GPU, weight decay done right, and knowing when to stop. At the end you
# assemble your own pieces into one production-style training loop.
#
# **By the end of this lab you can**
# 1. choose a **learning-rate scheduler** (StepLR, CosineAnnealingLR, OneCycleLR, warm-up,
#    ReduceLROnPlateau) and call it at the right place in the loop;
# 2. recognise **exploding gradients** and tame them with **gradient clipping**;
# 3. train with a big effective batch on a small GPU by **gradient accumulation**;
# 4. explain why **AdamW** applies weight decay differently from Adam, and keep biases and
#    norms out of the decay;
# 5. implement **early stopping** with patience;
# 6. assemble a complete training loop: device, DataLoader, AMP, accumulation, clipping,
#    scheduler, early stopping, best-checkpoint saving, progress bar;
# 7. run data-parallel training in two processes with `torchrun`, and average gradients
#    across processes with an all-reduce.
#
# **After a kernel restart** (*Kernel › Restart*, or a crash when memory ran out) your edits
# are still here but every variable is gone: click the cell you were working on and choose
# *Run › Run All Above Selected Cell*, then carry on from there.

# %%
from workshop_labs import setup

device = setup()

# %%
import math

import torch
from torch import nn
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LinearLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)

from workshop_labs import data, lab07, plots, runtime, timing

# %% [markdown]
# All experiments use the digits from the earlier labs, through `DataLoader`s (Lab 2), and
# one small network. `make_model()` seeds the generator first, so every variant we compare
# starts from exactly the same weights: differences come from the technique, not from luck.

# %%
train_loader, val_loader = data.digits_loaders(batch_size=64)
loss_fn = nn.CrossEntropyLoss()


def make_model():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
    )
    return model.to(device)


epochs = runtime.pick(full=40, quick=2)
steps_per_epoch = len(train_loader)
total_steps = epochs * steps_per_epoch
print(f"{len(train_loader.dataset)} training digits → {steps_per_epoch} batches per epoch")
print(f"{epochs} epochs → {total_steps} optimizer steps")

# %% [markdown]
# `evaluate(model, loader)` returns the mean loss and the accuracy over a loader, in
# `torch.no_grad()` (lab 1). It asks `cross_entropy` for `reduction="sum"` (lab 2 introduced
# `reduction`): the sum over each batch, added up and divided once by the number of digits,
# is the exact mean even though the last batch is smaller. On a GPU with bf16 units it runs
# under `torch.autocast` (lab 4); section 6 explains the rest of its habits.

# %%
# bf16 autocast pays off only on a GPU with bf16 units (Lab 4). is_bf16_supported() alone also
# says yes for GPUs that merely emulate bf16 (T4, V100), where it would be slower.
use_amp = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
print("AMP (bf16 autocast):", "on" if use_amp else "off")


def evaluate(model, loader):
    """Mean loss and accuracy over a loader, without building autograd graphs."""
    model.eval()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            logits = model(xb)
            total_loss += nn.functional.cross_entropy(logits.float(), yb, reduction="sum")
            correct += (logits.argmax(dim=1) == yb).sum()
    count = len(loader.dataset)
    return total_loss.item() / count, correct.item() / count


# %% [markdown]
# ## 1 · Learning-rate schedulers
#
# The learning rate (lr) is the size of each step downhill, and one fixed value is a
# compromise. Early in training the weights are far from good and big steps make fast
# progress; late in training big steps bounce around the minimum and small steps settle into
# it. And at the very start, with random weights (and an Adam that has not yet estimated
# its statistics), a full-size step can throw the model somewhere bad: a short **warm-up**
# from a tiny lr avoids that.
#
# A **scheduler** wraps the optimizer and rewrites `optimizer.param_groups[i]["lr"]` every
# time you call `scheduler.step()`. The common ones:
#
# | scheduler | shape of the lr over time |
# | --- | --- |
# | `StepLR(step_size, gamma)` | multiplied by `gamma` every `step_size` steps: stairs |
# | `CosineAnnealingLR(T_max)` | a smooth half-cosine from lr down to 0 over `T_max` steps |
# | `OneCycleLR(max_lr, total_steps)` | warm up to `max_lr`, then anneal far below the start |
# | `LinearLR(start_factor, total_iters)` | a straight ramp, e.g. a warm-up |
# | `LambdaLR(fn)` | lr × any factor `fn(step)` you compute |
# | `SequentialLR([...], milestones)` | several schedules one after another |
# | `ReduceLROnPlateau(factor, patience)` | multiplied by `factor` when a metric stops improving |
#
# Here is each of them except the last, at every step of our training run, traced by stepping
# a real optimizer (with a throw-away parameter) and reading its learning rate:

# %%
peak_lr = 0.1
schedulers = {
    "constant (no scheduler)": lambda opt: LambdaLR(opt, lambda step: 1.0),
    "StepLR(step_size=total/3, gamma=0.1)": lambda opt: StepLR(
        opt, step_size=total_steps // 3, gamma=0.1
    ),
    "CosineAnnealingLR(T_max=total)": lambda opt: CosineAnnealingLR(opt, T_max=total_steps),
    "OneCycleLR(max_lr, total)": lambda opt: OneCycleLR(
        opt, max_lr=peak_lr, total_steps=total_steps
    ),
    "LinearLR warm-up (10 %)": lambda opt: LinearLR(
        opt, start_factor=0.01, total_iters=total_steps // 10
    ),
    "SequentialLR: warm-up, then cosine": lambda opt: SequentialLR(
        opt,
        [
            LinearLR(opt, start_factor=0.01, total_iters=total_steps // 10),
            CosineAnnealingLR(opt, T_max=total_steps - total_steps // 10),
        ],
        milestones=[total_steps // 10],
    ),
}
lab07.lr_schedule_curves(
    {name: lab07.lr_trace(make, total_steps, lr=peak_lr) for name, make in schedulers.items()},
    steps_per_epoch=steps_per_epoch,
)

# %% [markdown]
# **Where `scheduler.step()` goes.** A scheduler counts its own `step()` calls, and its
# arguments are in *those* units. `OneCycleLR(total_steps=...)` and the schedules above are
# defined in **optimizer steps**, so they are stepped once per batch. A schedule defined in
# epochs (e.g. `StepLR(step_size=10)` meaning "every 10 epochs") is stepped once per epoch.
# Either way it comes **after** `optimizer.step()`: the optimizer uses the current lr, then
# the scheduler prepares the next one.

# %%
model = make_model()
optimizer = torch.optim.SGD(model.parameters(), lr=peak_lr, momentum=0.9)
scheduler = OneCycleLR(optimizer, max_lr=peak_lr, total_steps=total_steps)

for step, (xb, yb) in enumerate(train_loader):
    xb, yb = xb.to(device), yb.to(device)
    optimizer.zero_grad()
    loss = loss_fn(model(xb), yb)
    loss.backward()
    optimizer.step()  # uses the current lr ...
    scheduler.step()  # ... then moves the schedule on by one batch
    print(f"batch {step}: loss {loss.item():.3f}, next lr {scheduler.get_last_lr()[0]:.5f}")
    if step == 3:
        break  # four batches show the pattern; section 6 trains for real

# %% [markdown]
# **A scheduler that watches a metric.** All the schedules above are fixed in advance: they
# only count steps. `ReduceLROnPlateau` instead reacts to a number you give it, usually the
# validation loss: it is stepped once per epoch **with the metric**, `scheduler.step(val_loss)`,
# and multiplies the lr by `factor` once the metric has not improved for `patience` epochs in a
# row. Below we feed it a made-up validation-loss curve that improves, then stalls twice (a
# real curve comes after Exercise 3), and record the lr each epoch uses.

# %%
made_up_val_losses = [1.0, 0.7, 0.55, 0.5, 0.5, 0.51, 0.52, 0.45, 0.44, 0.45, 0.46, 0.45, 0.44]
parameter = nn.Parameter(torch.zeros(1))  # a throw-away parameter: nothing is trained here
optimizer = torch.optim.SGD([parameter], lr=peak_lr)
plateau = ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=2)
lr_per_epoch = []
for val_loss in made_up_val_losses:
    lr_per_epoch.append(optimizer.param_groups[0]["lr"])  # the lr this epoch trained with
    optimizer.step()
    plateau.step(val_loss)  # the metric decides the next epoch's lr
lab07.plateau_picture(made_up_val_losses, lr_per_epoch, factor=0.5, patience=2)

# %% [markdown]
# `patience` is how many epochs without a new lowest loss the scheduler tolerates: each cut
# (dotted line) comes at the end of the epoch after them, the third bad epoch in a row for
# `patience=2`, not at the first: like early stopping (section 5), it tolerates noise. Use
# it when you cannot tell in advance how long training will take: it needs no `total_steps`.
#
# ### Exercise 1 · warm-up, then cosine (if you have time)
#
# Large-model recipes (transformers especially) combine a **linear warm-up** with a
# **cosine decay**. Write `warmup_cosine(optimizer, warmup_steps, total_steps)` returning a
# scheduler whose factor (multiplied with the optimizer's lr) rises linearly from near 0 to
# 1 over the first `warmup_steps` steps, then follows half a cosine from 1 down to 0 at
# `total_steps`. Use `LambdaLR` with your own factor function (the cosine part is
# `0.5 * (1 + math.cos(math.pi * progress))` for `progress` going from 0 to 1), or chain
# `LinearLR` and `CosineAnnealingLR` with `SequentialLR`.


# %% tags=["exercise", "stretch"]
def warmup_cosine(optimizer, warmup_steps, total_steps):
    # TODO: return a scheduler: linear warm-up over warmup_steps, then cosine to 0 at total_steps
    return None


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def warmup_cosine(optimizer, warmup_steps, total_steps):
#     def factor(step):
#         if step < warmup_steps:
#             return (step + 1) / warmup_steps
#         progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
#         return 0.5 * (1 + math.cos(math.pi * progress))
#
#     return LambdaLR(optimizer, factor)
# ```
#
# The same with built-in schedulers:
# `SequentialLR(optimizer, [LinearLR(optimizer, start_factor=0.01, total_iters=warmup_steps),
# CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps)], milestones=[warmup_steps])`.
#
# </details>

# %%
warmup_cosine = lab07.check_warmup_cosine(warmup_cosine)

# %% [markdown]
# ### Exercise 2 · the OneCycle bug
#
# The function below trains for one epoch with a `OneCycleLR` built for
# `total_steps = epochs × batches`. It runs without any error, yet the schedule barely moves:
# fix it.


# %% tags=["exercise"]
def train_one_epoch(model, loader, optimizer, scheduler, loss_fn, device):
    model.train()
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
    scheduler.step()  # TODO: is this the right place?


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def train_one_epoch(model, loader, optimizer, scheduler, loss_fn, device):
#     model.train()
#     for xb, yb in loader:
#         xb, yb = xb.to(device), yb.to(device)
#         optimizer.zero_grad()
#         loss = loss_fn(model(xb), yb)
#         loss.backward()
#         optimizer.step()
#         scheduler.step()  # OneCycleLR counts batches: step it after every optimizer step
# ```
#
# </details>

# %%
train_one_epoch = lab07.check_one_cycle_epoch(train_one_epoch, device)

# %% [markdown]
# ### Exercise 3 · ReduceLROnPlateau in a training loop (if you have time)
#
# `train_with_plateau` trains for `epochs` epochs with a `ReduceLROnPlateau` and records,
# every epoch, the lr it trained with and the validation loss. Its scheduler call is written
# as for OneCycleLR in Exercise 2, and that is wrong here: give the scheduler the number it
# watches, at the moment that number exists. The check trains it on a tiny problem whose
# validation loss gets worse every epoch, and re-measures the number each call got.


# %% tags=["exercise", "stretch"]
def train_with_plateau(model, optimizer, scheduler, train_loader, val_loader, epochs):
    history = {"lr": [], "validation loss": []}
    for _ in range(epochs):
        history["lr"].append(optimizer.param_groups[0]["lr"])  # the lr this epoch trains with
        model.train()
        for xb, yb in train_loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            scheduler.step()  # TODO: the right call, at the right place?
        val_loss, val_accuracy = evaluate(model, val_loader)
        history["validation loss"].append(val_loss)
    return history


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def train_with_plateau(model, optimizer, scheduler, train_loader, val_loader, epochs):
#     history = {"lr": [], "validation loss": []}
#     for _ in range(epochs):
#         history["lr"].append(optimizer.param_groups[0]["lr"])  # the lr this epoch trains with
#         model.train()
#         for xb, yb in train_loader:
#             xb, yb = xb.to(device), yb.to(device)
#             optimizer.zero_grad()
#             loss = loss_fn(model(xb), yb)
#             loss.backward()
#             optimizer.step()
#         val_loss, val_accuracy = evaluate(model, val_loader)
#         history["validation loss"].append(val_loss)
#         scheduler.step(val_loss)  # once per epoch, with the metric it watches
#     return history
# ```
#
# </details>

# %%
train_with_plateau = lab07.check_plateau(train_with_plateau, device, use_amp)

# %% [markdown]
# Now on the digits, with a real validation loss and your function. SGD with momentum at a
# constant lr soon stops improving the validation loss; each time more than `patience` epochs
# in a row bring no new best, the scheduler halves the lr. The title lists when it did.

# %%
plateau_epochs = runtime.pick(full=30, quick=3)
model = make_model()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
plateau = ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=2)
history = train_with_plateau(model, optimizer, plateau, train_loader, val_loader, plateau_epochs)
lab07.plateau_picture(history["validation loss"], history["lr"], factor=0.5, patience=2)

# %% [markdown]
# ## 2 · Exploding gradients and gradient clipping
#
# The **gradient norm** is the length of the gradient of *all* parameters taken as one long
# vector: `sqrt(sum of every gradient element squared)`. How it turns into a step depends on
# the optimizer: plain SGD steps by `lr × gradient`, so its step length is proportional to the
# norm; SGD with momentum steps by a running sum of past gradients, so one large gradient
# moves the weights for many steps after it; Adam divides every element by its own running
# size, so its step grows far less than the norm. Usually the norm is modest, but sometimes it
# **explodes**: one batch gives a gradient hundreds of times larger than usual, the weights
# (or, with momentum and Adam, the optimizer's running state) are thrown far away, and the
# model may never recover (a loss stuck at "guessing", or `nan`). Typical causes are badly
# scaled inputs, a too-high learning rate, and very deep or recurrent networks.
#
# **Gradient clipping** caps what any single batch can contribute. It runs after
# `backward()` has computed the gradients and before `optimizer.step()` uses them, and it
# changes the **gradient**, not the optimizer: what the optimizer makes of the capped gradient
# (momentum, Adam's scaling) is unchanged.
#
# - `nn.utils.clip_grad_norm_(params, max_norm)` rescales the whole gradient so its norm is
#   at most `max_norm`. Its direction is kept; only its length is capped. It returns
#   the norm *before* clipping: log it, it is the best early warning you have.
# - `nn.utils.clip_grad_value_(params, clip_value)` clamps every element into
#   `[-clip_value, clip_value]`. Simple, but it changes the direction of the step.

# %%
lab07.clipping_picture(torch.tensor([3.0, 1.2]), max_norm=1.5, clip_value=0.8)

# %% [markdown]
# Now let's make gradients explode for real. A very common mistake: forgetting to scale the
# inputs. scikit-learn's digits come as pixel values 0…16, and the loaders we used so far
# divided them by 16. Below, one model trains on the raw 0…16 pixels with SGD at lr 0.1
# (with momentum, lab 2 §10); a second, identical model does the same with
# `clip_grad_norm_(max_norm=1.0)`. We record the gradient norm before and after clipping at
# every step. Where nothing is clipped, `nn.utils.get_total_norm(tensors)` measures it: it
# returns the norm of all the given tensors taken as one vector and changes nothing (it is
# new in PyTorch 2.6; `clip_grad_norm_` computes the same number before it clips).

# %%
clip_steps = runtime.pick(full=150, quick=30)
max_norm = 1.0
pixels, labels = data.digits()
unscaled = pixels * 16  # the raw pixels 0..16: the "forgot to normalise" bug
batch_order = torch.randint(
    0, len(labels), (clip_steps, 64), generator=torch.Generator().manual_seed(0)
)

grad_norms, losses = {}, {}
for clip in (False, True):
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before, after, step_losses = [], [], []
    for batch_idx in batch_order:
        xb, yb = unscaled[batch_idx].to(device), labels[batch_idx].to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        if clip:
            norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        else:
            norm = nn.utils.get_total_norm([p.grad for p in model.parameters()])
        before.append(norm.item())
        after.append(nn.utils.get_total_norm([p.grad for p in model.parameters()]).item())
        optimizer.step()
        step_losses.append(loss.item())
    if clip:
        grad_norms["with clipping: norm before clip"] = before
        grad_norms[f"with clipping: norm after clip (≤ {max_norm:g})"] = after
        losses[f"clip_grad_norm_(max_norm={max_norm:g})"] = step_losses
    else:
        grad_norms["no clipping"] = before
        losses["no clipping"] = step_losses

lab07.clipping_curves(grad_norms, losses)

# %% [markdown]
# Without clipping (blue), the gradient norm grows step after step until one huge step throws
# the weights so far that most ReLUs end up always off ("dead"): the gradient norm then
# collapses and the loss sits at ln 10 ≈ 2.3, the loss of guessing uniformly among 10
# classes. With clipping, the raw gradient norm (orange) stays well above `max_norm`, but the
# gradient the optimizer receives is capped (green, flat at 1), and the same model trains
# fine. Note what is capped: the *gradient*. The step this SGD takes is `lr` times its momentum
# buffer, a running sum of the last gradients (each weighted by 0.9 per step of age), so a
# step can be longer than `lr × max_norm`: at most `lr × max_norm / (1 − 0.9)`, ten times
# more, and only after many large gradients in a row. What clipping guarantees is that no
# single batch can throw the weights away. Clipping is a seat belt, not a cure: the real fix
# here is to normalise the inputs, but the seat belt costs nothing.
#
# ### Exercise 4 · clip at the right moment
#
# Complete `clipped_step`: one training step that clips the gradient norm to `max_norm` and
# returns the norm measured **before** clipping (a Python float).


# %% tags=["exercise"]
def clipped_step(model, optimizer, loss_fn, xb, yb, max_norm):
    optimizer.zero_grad()
    loss = loss_fn(model(xb), yb)
    loss.backward()
    optimizer.step()
    # TODO: clip the gradients to max_norm at the right place; return the norm before clipping
    return None


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def clipped_step(model, optimizer, loss_fn, xb, yb, max_norm):
#     optimizer.zero_grad()
#     loss = loss_fn(model(xb), yb)
#     loss.backward()
#     norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm)
#     optimizer.step()
#     return norm.item()
# ```
#
# </details>

# %%
clipped_step = lab07.check_clipped_step(clipped_step)

# %% [markdown]
# ## 3 · Gradient accumulation: a big batch on a small GPU
#
# The activations a forward pass keeps for `backward()` grow with the batch: a batch of 256
# keeps 256 samples' worth in memory at once. When a recipe asks for a batch bigger than your
# GPU can hold, you do not have to change the recipe: run the big batch as `k`
# **micro-batches** one after another, let their gradients add up, and step once. The
# **effective batch** is k × the micro-batch.
#
# Two facts from earlier labs make this work. `backward()` **adds** to `.grad` (lab 1: that is
# why every step starts with `zero_grad()`), so k backward passes in a row sum their
# gradients. And the loss is a **mean** over the batch (`reduction="mean"`, the default, lab 2):
# the gradient of one batch of 256 is the *mean* of the four micro-batch gradients, not their
# sum. So each micro-batch's loss is divided by k before `backward()`:
#
# ```python
# loss = loss_fn(model(xb), yb) / accumulation_steps
# loss.backward()                                  # adds to .grad
# if batch % accumulation_steps == 0:              # every k-th micro-batch
#     optimizer.step()
#     optimizer.zero_grad()
# ```
#
# Let us measure it: the gradient of one batch of 256 digits, against four micro-batches of 64
# done right, and done with the two typical mistakes.

# %%
accumulation_steps = 4
model = make_model()
big_x, big_y = pixels[:256].to(device), labels[:256].to(device)
micro_batches = list(
    zip(big_x.chunk(accumulation_steps), big_y.chunk(accumulation_steps), strict=True)
)


def gradient_vector(model):
    """Every parameter's .grad, flattened into one vector."""
    return torch.cat([p.grad.flatten() for p in model.parameters()])


model.zero_grad()
loss_fn(model(big_x), big_y).backward()
gradients = {"one batch of 256": gradient_vector(model)}

model.zero_grad()
for xb, yb in micro_batches:
    loss = loss_fn(model(xb), yb) / accumulation_steps
    loss.backward()
gradients["4 × 64, loss / 4"] = gradient_vector(model)

model.zero_grad()
for xb, yb in micro_batches:
    loss = loss_fn(model(xb), yb)  # mistake 1: not divided by accumulation_steps
    loss.backward()
gradients["4 × 64, not divided"] = gradient_vector(model)

for xb, yb in micro_batches:
    model.zero_grad()  # mistake 2: zeroed at every micro-batch
    loss = loss_fn(model(xb), yb) / accumulation_steps
    loss.backward()
gradients["4 × 64, zeroed every time"] = gradient_vector(model)

one_batch = gradients["one batch of 256"]
for name, gradient in gradients.items():
    difference = (gradient - one_batch).abs().max().item()
    print(f"{name:26} norm {gradient.norm():.4f}, largest difference {difference:.1e}")
lab07.accumulation_bars({name: gradient.norm().item() for name, gradient in gradients.items()})

# %% [markdown]
# Done right, the accumulated gradient equals the big batch's up to float rounding (the
# largest difference printed above). Without the division it is 4 times too long, as if the
# lr were 4 times bigger. Zeroed at every micro-batch, only the last 64 digits count, divided
# by 4. Two limits: a layer that looks at the whole batch, like BatchNorm (lab 2), sees only
# the micro-batch; and a schedule counts **optimizer steps**, so with k micro-batches per
# step an epoch has k times fewer of them.
#
# What accumulation buys is memory, not time: the same 256 digits now go through the model in
# four passes instead of one. Let us time both ways to the same gradient with lab 3's rule
# (warm-up, repeated runs, the middle halves compared). They are timed in turns, a few runs
# of each per round, so that a moment when the machine is busier slows both, not only one.


# %%
# The same gradient two ways: one pass over 256 digits, or four accumulated passes over 64.
def one_big_batch():
    model.zero_grad()
    loss_fn(model(big_x), big_y).backward()


def accumulated_micro_batches():
    model.zero_grad()
    for xb, yb in micro_batches:
        (loss_fn(model(xb), yb) / accumulation_steps).backward()


big_batch_runs, accumulated_runs = [], []
for _ in range(runtime.pick(full=8, quick=3)):  # rounds: both ways in turns
    big_batch = timing.measure(one_big_batch, device=device, warmup=1, repeats=5)
    accumulated = timing.measure(accumulated_micro_batches, device=device, warmup=1, repeats=5)
    big_batch_runs += big_batch.runs
    accumulated_runs += accumulated.runs
for name, runs in [("one batch of 256", big_batch_runs), ("4 × 64 accumulated", accumulated_runs)]:
    low, median, high = timing.quartiles(runs)
    print(f"{name:19} median {median:.2f} ms (middle half {low:.2f}–{high:.2f} ms)")
print(
    timing.verdict(
        "4 accumulated micro-batches of 64 vs one batch of 256", big_batch_runs, accumulated_runs
    )
)

# %% [markdown]
# The verdict line says what this machine measured. For a network this small, each pass
# costs mostly fixed overhead (launching the operations), so four small passes are expected
# to take longer than one big one, and the verdict says whether this run could tell them
# apart. With a big network on a busy GPU the difference shrinks, but accumulation does not
# make a step faster: use it when the batch you want does not fit.
#
# ### Exercise 5 · accumulate gradients
#
# Complete `train_accumulated`: one epoch in which every `accumulation_steps` batches give one
# optimizer step, with the gradient one batch of all of them together would give. (The
# check's loader has a multiple of `accumulation_steps` batches.)


# %% tags=["exercise"]
def train_accumulated(model, loader, optimizer, loss_fn, device, accumulation_steps):
    model.train()
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
    # TODO: step once every accumulation_steps batches, with the gradient of their mean loss


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def train_accumulated(model, loader, optimizer, loss_fn, device, accumulation_steps):
#     model.train()
#     optimizer.zero_grad()
#     for batch, (xb, yb) in enumerate(loader, start=1):
#         xb, yb = xb.to(device), yb.to(device)
#         loss = loss_fn(model(xb), yb) / accumulation_steps
#         loss.backward()
#         if batch % accumulation_steps == 0:
#             optimizer.step()
#             optimizer.zero_grad()
# ```
#
# </details>

# %%
train_accumulated = lab07.check_accumulation(train_accumulated, device)

# %% [markdown]
# ## 4 · Weight decay and AdamW
#
# **Weight decay** pulls every weight a little towards 0 at every step. Large weights make a
# model sensitive to tiny input changes, so keeping weights small is a simple, effective
# defence against overfitting. With plain SGD, adding `λ/2·‖w‖²` to the loss (an "L2 penalty")
# and shrinking the weights by `lr·λ·w` each step are the same thing.
#
# With **Adam** they are not. Adam divides every gradient by a running estimate of its own
# size, so that each weight takes steps of similar length. `Adam(weight_decay=λ)` adds `λ·w`
# to the *gradient*, so the decay is divided too: a weight whose gradients are large barely
# decays, and a weight whose gradients are tiny decays at full speed. **AdamW** *decouples*
# the decay: it shrinks the weights directly, `w ← w − lr·λ·w`, outside Adam's rescaling,
# so every weight decays at the same rate. That is why AdamW is the default optimizer of
# most modern training recipes.
#
# The experiment below makes this visible. Two groups of weights start at 1.0 and get pure
# noise as gradients (no signal pulling them anywhere): large noise for one group, tiny noise
# for the other. Weight decay is the only force that can shrink them.


# %%
decay_steps = runtime.pick(full=1000, quick=400)


def decay_under(optimizer_class, steps):
    torch.manual_seed(0)
    weights = torch.ones(2, 256, requires_grad=True)  # row 0: big gradients, row 1: tiny
    noise_scale = torch.tensor([[10.0], [0.01]])
    optimizer = optimizer_class([weights], lr=0.01, weight_decay=0.1)
    mean_size = {"big gradients": [], "tiny gradients": []}
    for _ in range(steps):
        optimizer.zero_grad()
        weights.grad = noise_scale * torch.randn_like(weights)  # gradient of a noise-only loss
        optimizer.step()
        big, tiny = weights.detach().abs().mean(dim=1).tolist()
        mean_size["big gradients"].append(big)
        mean_size["tiny gradients"].append(tiny)
    return mean_size


adam = decay_under(torch.optim.Adam, decay_steps)
adamw = decay_under(torch.optim.AdamW, decay_steps)
plots.curves(
    {
        "Adam(weight_decay): big gradients": adam["big gradients"],
        "Adam(weight_decay): tiny gradients": adam["tiny gradients"],
        "AdamW(weight_decay): big gradients": adamw["big gradients"],
        "AdamW(weight_decay): tiny gradients": adamw["tiny gradients"],
    },
    title="Same weight_decay=0.1, lr=0.01: how far the weights shrink",
    xlabel="optimizer step",
    ylabel="mean |weight|",
)

# %% [markdown]
# With `Adam`, how much a weight decays depends on the size of its gradients: the weights
# with big gradients hardly shrink, the ones with tiny gradients collapse to 0 within about
# 200 steps. With `AdamW` both groups shrink along the same curve, `(1 − lr·λ)^step`,
# exactly what you asked for with `weight_decay`. (Setting the gradient by hand, as here, is
# only for the experiment; normally `backward()` fills it.)
#
# **What to decay.** Weight decay keeps *weight matrices* small. Biases and the scale and
# shift of a normalisation layer (LayerNorm, lab 4) are not what makes a model fragile, and
# pulling them to 0 only fights the training, so common recipes leave them out. An optimizer
# takes **parameter groups** for that: a list of dictionaries, each with its own `params` and
# its own options, which override the defaults given after the list.
#
# ```python
# groups = [{"params": some, "weight_decay": 0.05}, {"params": others, "weight_decay": 0.0}]
# optimizer = torch.optim.AdamW(groups, lr=3e-3)
# ```
#
# ### Exercise 6 · AdamW without decay on biases and norms
#
# Complete `adamw_decay_groups(model, lr, weight_decay)`: an `AdamW` in which every parameter
# with two or more dimensions (`p.ndim >= 2`: the weight matrices) decays by `weight_decay`,
# and every 1-dimensional one (biases, LayerNorm's weight and bias) has `weight_decay=0.0`.
# Section 6 trains with it.


# %% tags=["exercise"]
def adamw_decay_groups(model, lr, weight_decay):
    # TODO: two parameter groups: p.ndim >= 2 decays by weight_decay, the others by 0.0
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def adamw_decay_groups(model, lr, weight_decay):
#     decay = [p for p in model.parameters() if p.ndim >= 2]
#     no_decay = [p for p in model.parameters() if p.ndim < 2]
#     groups = [
#         {"params": decay, "weight_decay": weight_decay},
#         {"params": no_decay, "weight_decay": 0.0},
#     ]
#     return torch.optim.AdamW(groups, lr=lr)
# ```
#
# </details>

# %%
adamw_decay_groups = lab07.check_decay_groups(adamw_decay_groups)

# %% [markdown]
# ## 5 · Early stopping
#
# Train long enough and the model starts memorising the training digits: training loss keeps
# falling while **validation loss** stops improving, or turns back up. The best model is the
# one at the bottom of the validation curve. **Early stopping** watches the validation loss
# after every epoch:
#
# - a new best → remember it (and save a checkpoint, Lab 6), reset a counter to 0;
# - no new best → add 1 to the counter;
# - counter reaches `patience` → stop.
#
# Why patience instead of stopping at the first bad epoch? Validation loss is noisy: it often
# goes up for an epoch or two and then reaches a new low. Patience is how many bad epochs in a
# row we tolerate. You will see it on a real run in section 6.
#
# ### Exercise 7 · an early stopper
#
# Complete `EarlyStopping.step(val_loss)`: it records one epoch's validation loss and
# returns `True` when training should stop (after `patience` epochs in a row without a new
# best). Keep the best loss so far in `self.best`.


# %% tags=["exercise"]
class EarlyStopping:
    def __init__(self, patience):
        self.patience = patience
        self.best = math.inf
        self.bad_epochs = 0

    def step(self, val_loss):
        # TODO: update self.best and self.bad_epochs; return True when training should stop
        return False


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# class EarlyStopping:
#     def __init__(self, patience):
#         self.patience = patience
#         self.best = math.inf
#         self.bad_epochs = 0
#
#     def step(self, val_loss):
#         if val_loss < self.best:
#             self.best = val_loss
#             self.bad_epochs = 0
#         else:
#             self.bad_epochs += 1
#         return self.bad_epochs >= self.patience
# ```
#
# </details>

# %%
EarlyStopping = lab07.check_early_stopping(EarlyStopping)

# %% [markdown]
# ## 6 · Putting it all together: a production-style training loop
#
# Now you assemble everything from the day into one function, `fit`, from your own pieces.
# Each line of it is a habit with a reason, taught in the lab named here:
#
# | line | lab | why |
# | --- | --- | --- |
# | `.to(device)` for every batch | 1 | compute where the model is |
# | `optimizer.zero_grad()` | 1 | gradients add up until you clear them |
# | `torch.no_grad()` for validation | 1 | no graph: less memory, faster |
# | `DataLoader`, shuffled | 2 | batches in a new order every epoch |
# | `model.train()` / `model.eval()` | 2 | dropout and BatchNorm behave differently |
# | `reduction="sum"` in `evaluate` | 2 | add up every sample's loss, divide once by the count |
# | loss summed on the device, `.item()` once per epoch | 7 (below) | `.item()` waits for the GPU |
# | `torch.autocast(...)` | 4 | bf16 where the GPU has bf16 units; off on a CPU |
# | best checkpoint, loaded with `weights_only=True` | 6 | keep the best model, not the last one |
# | `scheduler.step()` after `optimizer.step()` | 7 (§1) | once per optimizer step here |
# | `clip_grad_norm_` after `backward` | 7 (§2) | one bad batch cannot wreck the model |
# | loss / `accumulation_steps`, step every k batches | 7 (§3) | a big batch in small pieces |
# | AdamW, no decay on biases and norms | 7 (§4) | decay that means the same for every weight |
# | early stopping | 7 (§5) | stop once validation stops improving |
#
# One habit in the table is new here. On a GPU, PyTorch queues operations and returns at once,
# so the Python loop runs ahead of the GPU. `.item()` brings a number back to the CPU, so it
# has to wait until the GPU has run everything queued before it. Called on every batch's
# loss, it makes the loop wait for the GPU every batch; adding the losses up in a tensor on
# the device and calling `.item()` once per epoch waits once.
#
# Two habits you will meet in other people's loops are left out on purpose.
# `zero_grad(set_to_none=True)` is not a choice you need to make: `set_to_none=True` has been
# the default since PyTorch 2.0, so plain `zero_grad()` already frees the gradients instead of
# filling them with zeros. `.to(device, non_blocking=True)` lets the copy to the GPU overlap
# with computation only when the batch sits in page-locked ("pinned") memory, which
# `DataLoader(..., pin_memory=True)` provides. From ordinary memory, as here, it is an ordinary
# copy; on the CPU there is no copy at all, so it does nothing.
#
# The validation half of the loop is `evaluate`, from the top of the lab.

# %% [markdown]
# ### Exercise 8 · assemble `fit`
#
# The loop below already trains, validates and keeps the best checkpoint. Fill in its TODOs
# with the pieces of this lab: accumulation (as in your `train_accumulated`, section 3),
# clipping (as in your `clipped_step`, section 2), the scheduler step (section 1) and early
# stopping with your `EarlyStopping` class (section 5). Each option must do nothing when it is
# left at its default. The check trains your `fit` for a few steps on a tiny problem; the
# comparison below then trains with it.


# %% tags=["exercise"]
def fit(
    model,
    optimizer,
    train_loader,
    val_loader,
    *,
    epochs,
    checkpoint_path,
    scheduler=None,
    max_norm=None,
    patience=None,
    accumulation_steps=1,
    name="training",
):
    """Train, validate every epoch, keep the best weights on disk, stop early if asked."""
    history = {"training loss": [], "validation loss": [], "validation accuracy": []}
    best_loss = math.inf
    # TODO (section 5): an EarlyStopping(patience) when patience is not None
    for epoch in runtime.progress(range(epochs), desc=name):
        model.train()
        running_loss = torch.zeros((), device=device)
        optimizer.zero_grad()
        for xb, yb in train_loader:  # TODO (section 3): count the batches with enumerate
            xb, yb = xb.to(device), yb.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = loss_fn(model(xb), yb)
            loss.backward()  # TODO (section 3): backward on the loss / accumulation_steps
            # TODO (section 3): do what follows only every accumulation_steps batches
            # TODO (section 2): clip the gradient norm to max_norm when it is not None
            optimizer.step()
            optimizer.zero_grad()
            # TODO (section 1): step the scheduler when there is one
            running_loss += loss.detach() * len(xb)
        val_loss, val_accuracy = evaluate(model, val_loader)
        history["training loss"].append(running_loss.item() / len(train_loader.dataset))
        history["validation loss"].append(val_loss)
        history["validation accuracy"].append(val_accuracy)
        if val_loss < best_loss:
            best_loss = val_loss
            checkpoint = {"epoch": epoch + 1, "val_loss": val_loss, "model": model.state_dict()}
            torch.save(checkpoint, checkpoint_path)
        # TODO (section 5): stop when the early stopper says so
    return history


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def fit(
#     model,
#     optimizer,
#     train_loader,
#     val_loader,
#     *,
#     epochs,
#     checkpoint_path,
#     scheduler=None,
#     max_norm=None,
#     patience=None,
#     accumulation_steps=1,
#     name="training",
# ):
#     """Train, validate every epoch, keep the best weights on disk, stop early if asked."""
#     history = {"training loss": [], "validation loss": [], "validation accuracy": []}
#     best_loss = math.inf
#     stopper = EarlyStopping(patience) if patience is not None else None
#     for epoch in runtime.progress(range(epochs), desc=name):
#         model.train()
#         running_loss = torch.zeros((), device=device)
#         optimizer.zero_grad()
#         for batch, (xb, yb) in enumerate(train_loader, start=1):
#             xb, yb = xb.to(device), yb.to(device)
#             with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
#                 loss = loss_fn(model(xb), yb)
#             (loss / accumulation_steps).backward()
#             if batch % accumulation_steps == 0:
#                 if max_norm is not None:
#                     nn.utils.clip_grad_norm_(model.parameters(), max_norm)
#                 optimizer.step()
#                 optimizer.zero_grad()
#                 if scheduler is not None:
#                     scheduler.step()
#             running_loss += loss.detach() * len(xb)
#         val_loss, val_accuracy = evaluate(model, val_loader)
#         history["training loss"].append(running_loss.item() / len(train_loader.dataset))
#         history["validation loss"].append(val_loss)
#         history["validation accuracy"].append(val_accuracy)
#         if val_loss < best_loss:
#             best_loss = val_loss
#             checkpoint = {"epoch": epoch + 1, "val_loss": val_loss, "model": model.state_dict()}
#             torch.save(checkpoint, checkpoint_path)
#         if stopper is not None and stopper.step(val_loss):
#             break
#     return history
# ```
#
# </details>

# %%
fit = lab07.check_fit(fit, device, use_amp)

# %% [markdown]
# Now the comparison. Each recipe below returns what `fit` needs (optimizer, scheduler,
# options); each trains the same model from the same starting weights for
# at most the same number of epochs, and adds one more technique:
#
# 1. **SGD, constant lr**: what Lab 1 did (plus momentum, lab 2 §10);
# 2. **SGD + OneCycleLR**: the same optimizer with a schedule;
# 3. **Adam + L2, warm-up + cosine**: Adam (lab 2) with its coupled weight decay, and your
#    `warmup_cosine` from Exercise 1;
# 4. **AdamW, warm-up + cosine, clipping, early stopping**: the full production recipe, with
#    your `adamw_decay_groups` from Exercise 6.
#
# Every run saves its best epoch to its own checkpoint file in the work folder. Every run
# starts from `make_model()`, so re-running the cell trains new models instead of training
# the old ones further; the shuffled batches then come in a new order, so the numbers move a
# little.

# %%
weight_decay = 0.05
warmup_steps = max(1, total_steps // 10)
patience = runtime.pick(full=5, quick=1)


def sgd_constant(model):
    return {"optimizer": torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)}


def sgd_one_cycle(model):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return {
        "optimizer": optimizer,
        "scheduler": OneCycleLR(optimizer, max_lr=0.1, total_steps=total_steps),
    }


def adam_l2(model):
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=weight_decay)
    return {
        "optimizer": optimizer,
        "scheduler": warmup_cosine(optimizer, warmup_steps, total_steps),
    }


def adamw_production(model):
    optimizer = adamw_decay_groups(model, lr=3e-3, weight_decay=weight_decay)
    return {
        "optimizer": optimizer,
        "scheduler": warmup_cosine(optimizer, warmup_steps, total_steps),
        "max_norm": 1.0,
        "patience": patience,
    }


recipes = {
    "SGD, constant lr": sgd_constant,
    "SGD + OneCycleLR": sgd_one_cycle,
    "Adam + L2, warm-up + cosine": adam_l2,
    "AdamW, warm-up + cosine, clip, early stop": adamw_production,
}

histories, rows, checkpoints = {}, [], {}
for index, (name, recipe) in enumerate(recipes.items(), start=1):
    model = make_model()
    checkpoints[name] = runtime.work_dir() / f"lab07_recipe{index}_best.pt"
    history = fit(
        model,
        train_loader=train_loader,
        val_loader=val_loader,
        epochs=epochs,
        checkpoint_path=checkpoints[name],
        name=name,
        **recipe(model),
    )
    best_epoch = min(
        range(len(history["validation loss"])), key=history["validation loss"].__getitem__
    )
    histories[name] = history
    rows.append(
        {
            "variant": name,
            "epochs run": len(history["validation loss"]),
            "best epoch": best_epoch + 1,
            "best val. loss": history["validation loss"][best_epoch],
            "val. accuracy at best": f"{history['validation accuracy'][best_epoch]:.1%}",
        }
    )

plots.curves(
    {name: h["validation loss"] for name, h in histories.items()},
    title="Validation loss per epoch, per variant",
    xlabel="epoch",
    ylabel="cross-entropy loss (log scale)",
    logy=True,
)

# %% [markdown]
# Early stopping, as it happened in the last run: the best epoch (where the checkpoint was
# saved) and the patience window after it.

# %%
production = "AdamW, warm-up + cosine, clip, early stop"
lab07.early_stopping_picture(
    histories[production],
    patience=patience,
    title=f"Early stopping: {production}",
)

# %% [markdown]
# And the summary of all variants. The accuracy is measured at each run's best epoch, which
# is the model its checkpoint holds.

# %%
plots.table(rows, title="Four training recipes on the digits (same model, same start)")
best_val_loss = {row["variant"]: row["best val. loss"] for row in rows}
for first, second in [(1, 0), (2, 3)]:
    a, b = list(best_val_loss)[first], list(best_val_loss)[second]
    print(f"best validation loss: {a} {best_val_loss[a]:.3f} vs {b} {best_val_loss[b]:.3f}")

# %% [markdown]
# Things to look for in the table and the two lines under it (the exact numbers depend on the
# machine and on the number of epochs):
# - Does the schedule help SGD? OneCycle's large middle steps make fast progress and its tiny
#   final steps are meant to settle into a lower validation loss than the constant lr reaches.
#   It needs the whole schedule to do that: in a short (quick-mode) run it may not.
# - `Adam` and `AdamW` got the *same* `weight_decay=0.05`. In Adam the decay is part of the
#   gradient (section 4), and for the many weights with small gradients it dominates, pulling
#   them to 0 at full speed, so expect Adam's row to be the worse one. Values that work for
#   Adam's coupled decay are typically 100× smaller, which is one more reason to use AdamW,
#   where `weight_decay` means the same thing for every weight.
# - Early stopping: the picture above says whether it ended the production run early, and
#   the checkpoint holds the best epoch, not the last.
#
# **Loading the best checkpoint.** The file holds a small dictionary: the epoch, its
# validation loss and the model's `state_dict` (tensors by name), so we rebuild the model and
# load the weights into it. `weights_only=True` (the default since PyTorch 2.6; we say it
# explicitly) only accepts tensors and plain Python values and refuses to run code hidden in a
# file: always use it for checkpoints you did not write yourself (Lab 6).

# %%
best_name = min(rows, key=lambda row: row["best val. loss"])["variant"]
checkpoint = torch.load(checkpoints[best_name], map_location=device, weights_only=True)
restored = make_model()
restored.load_state_dict(checkpoint["model"])
restored_loss, restored_accuracy = evaluate(restored, val_loader)
print(f"best variant: {best_name}, saved at epoch {checkpoint['epoch']}")
print(f"validation loss stored in the checkpoint: {checkpoint['val_loss']:.4f}")
print(f"validation loss of the restored model:    {restored_loss:.4f} ({restored_accuracy:.1%})")

# %% [markdown]
# The restored model reproduces the best epoch's validation loss: the checkpoint is the model
# to ship.

# %% [markdown]
# ## 7 · A first look at data-parallel training
#
# Everything so far ran in one process. When one device is too slow, **data-parallel**
# training runs the same model in several processes (one per GPU; here, two CPU processes),
# and splits every batch between them. After `backward()` each process holds the gradient of
# *its* share of the batch. The processes then **average** their gradients: every one sends
# its gradient and receives the mean (an **all-reduce**). With equal shares, that mean is the
# gradient of the whole batch (the same reasoning as accumulation in section 3), so every
# process takes the same step and the copies of the model stay identical.
#
# PyTorch's pieces, each one line in the script below:
#
# - `torchrun` (`python -m torch.distributed.run`) starts N copies of a script and tells each
#   its **rank** (0 … N−1) and the **world size** N;
# - `dist.init_process_group("gloo")` connects them: gloo works on CPUs (NVIDIA GPUs use nccl);
# - `DistributedSampler(dataset)` gives each rank its own share of the samples, and
#   `sampler.set_epoch(epoch)` reshuffles them every epoch, the same way on every rank;
# - `DistributedDataParallel(model)` (DDP) copies rank 0's weights to every rank, then averages
#   the gradients during `backward()`;
# - `dist.all_reduce(tensor, op=dist.ReduceOp.SUM)` replaces `tensor`, on every rank, by the
#   sum of everyone's.
#
# ### Exercise 9 · average the gradients yourself
#
# Before DDP does it for you, do it by hand. Write `average_gradients(model)`: every process
# calls it after its own `backward()`, and it must replace each parameter's `.grad` by the
# mean over all processes: `dist.all_reduce` with `op=dist.ReduceOp.SUM` adds the gradients
# up in place, then divide by `dist.get_world_size()`. The check starts three processes
# (on this machine, over loopback) and runs your function in each.


# %%
import inspect
import json
import os
import subprocess
import sys
import textwrap

import torch.distributed as dist

from workshop_labs import data_parallel_diagram

print("gloo, the CPU backend, is available:", dist.is_gloo_available())


# %% tags=["exercise"]
def average_gradients(model):
    # TODO: replace every p.grad by its mean over all processes (all_reduce, then divide)
    pass


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def average_gradients(model):
#     world_size = dist.get_world_size()
#     for p in model.parameters():
#         dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
#         p.grad /= world_size
# ```
#
# </details>

# %%
average_gradients = lab07.check_average_gradients(average_gradients)

# %% [markdown]
# Now a complete data-parallel training script. The cell below writes it into your work
# folder, with your `average_gradients` copied in and the digits saved beside it. It trains a
# small network on the digits. For the first batch it runs `backward()` inside
# `model.no_sync()` (which stops DDP from averaging), so each process prints its **own**
# gradient, then the gradient after your `average_gradients`, then the one DDP computes.
# After that it trains normally, and at the end each process compares its weights with the
# others' (`dist.all_gather` collects every process's copy).

# %%
DATA_PARALLEL_SCRIPT = r'''"""Data-parallel training: torchrun runs this file in every process."""
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.nn  # before init_process_group: the end of this file says why
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

# average_gradients


def first_numbers(tensor):
    return [round(value, 6) for value in tensor[:3].tolist()]


def say(line):
    sys.stdout.write(line + "\n")  # one write per line: the processes' lines do not mix
    sys.stdout.flush()


dist.init_process_group("gloo")  # torchrun told this process its rank and the world size
rank, world_size = dist.get_rank(), dist.get_world_size()
epochs = int(sys.argv[1])

torch.manual_seed(0)
model = DistributedDataParallel(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)))
pixels, labels = torch.load(Path(__file__).with_name("lab07_digits.pt"))  # saved by the lab
dataset = TensorDataset(pixels, labels)
sampler = DistributedSampler(dataset, seed=0)  # this rank's share of the samples
loader = DataLoader(dataset, batch_size=32, sampler=sampler)  # 32 per rank: 64 per step
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()
bias = model.module[2].bias  # the parameter we look at: the last layer's bias

xb, yb = next(iter(loader))  # the first batch, by hand
first_batch = list(sampler)[: len(xb)]  # the dataset indices in it
with model.no_sync():  # no averaging: this process's own gradient
    loss_fn(model(xb), yb).backward()
own = first_numbers(bias.grad)
average_gradients(model)
yours = first_numbers(bias.grad)
optimizer.zero_grad()
loss_fn(model(xb), yb).backward()  # DDP averages during backward
averaged = first_numbers(bias.grad)
say(f"rank {rank}: own gradient {own}, after average_gradients {yours}, DDP's {averaged}")

steps = 0
for epoch in range(epochs):
    sampler.set_epoch(epoch)  # a new shuffle every epoch, the same one on every rank
    for xb, yb in loader:
        optimizer.zero_grad()
        loss_fn(model(xb), yb).backward()  # gradients averaged across the ranks here
        optimizer.step()
        steps += 1

weights = torch.cat([p.detach().flatten() for p in model.parameters()])
copies = [torch.empty_like(weights) for _ in range(world_size)]
dist.all_gather(copies, weights)  # every rank's weights, on every rank
identical = all(torch.equal(weights, copy) for copy in copies)
say(f"rank {rank}: {steps} steps on {len(sampler)} of {len(dataset)} samples per epoch; "
    f"weights identical on all {world_size} ranks: {identical}")
report = {"rank": rank, "world_size": world_size, "parameter": "the last layer's bias",
          "samples": first_batch, "own": own, "yours": yours, "averaged": averaged,
          "steps": steps, "identical": identical}
Path(__file__).with_name(f"lab07_data_parallel_rank{rank}.json").write_text(json.dumps(report))
# A clean goodbye: wait until every rank is done talking, let go of the DDP model (it holds
# the process group), then close the group, which ends gloo's threads while Python still runs.
# A gloo thread left running as Python shuts down can abort the process after all its work is
# done: "terminate called without an active exception". DDP imports torch.distributed.nn,
# which keeps the process group there is at its import for good; imported at the top, before
# init_process_group, it keeps none.
dist.barrier()
del model
dist.destroy_process_group()
'''
script = runtime.work_dir() / "lab07_data_parallel.py"
torch.save(data.digits(), script.with_name("lab07_digits.pt"))
your_function = textwrap.dedent(inspect.getsource(average_gradients))
script.write_text(DATA_PARALLEL_SCRIPT.replace("# average_gradients\n", your_function))
print(f"wrote {script}")

# %% [markdown]
# Run it with `torchrun`: two processes on this machine (`--nnodes=1`: no other machine takes
# part) that meet at `127.0.0.1`, the loopback address every machine has, on a free port. The
# command is what you would type in a terminal; `sys.executable` makes sure it is this
# notebook's Python.

# %%
ddp_epochs = runtime.pick(full=2, quick=1)
reports = [script.with_name(f"lab07_data_parallel_rank{rank}.json") for rank in range(2)]
for report in reports:
    report.unlink(missing_ok=True)  # no stale report from an earlier run
command = [
    *(sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2"),
    *("--master-addr=127.0.0.1", f"--master-port={lab07.free_port()}"),
]
# One thread per process: the two share this machine's cores; gloo talks over loopback too.
environment = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
# Three more Python processes with torch: first make sure they fit in this JupyterLab's memory.
runtime.make_room_for("torchrun with two processes", lab07.DATA_PARALLEL_MEMORY)
finished = subprocess.run(
    [*command, str(script), str(ddp_epochs)],
    capture_output=True,
    text=True,
    timeout=300,
    env=environment,
)
print(finished.stdout)
if finished.returncode != 0:
    print(finished.stderr[-3000:])
finished.check_returncode()
data_parallel_diagram.data_parallel_picture([json.loads(r.read_text()) for r in reports])

# %% [markdown]
# Each rank saw different digits, so the two "own" gradients differ. After the all-reduce
# (DDP's, and yours once Exercise 9 passes) both hold the same mean, every step applies the
# same update, and the weights stay equal to the last bit (`torch.equal`, printed above).
# On GPUs the same script needs three changes: the "nccl" backend, the model and each batch
# on `cuda:{local_rank}` (torchrun also sets `LOCAL_RANK`), and `--nproc_per_node` set to the
# number of GPUs. Here both processes share the same CPU cores, so this run shows what data
# parallelism computes, not how fast it is.

# %% [markdown]
# ## Recap
#
# - A **scheduler** changes the lr during training; call `scheduler.step()` after
#   `optimizer.step()`, once per batch for schedules measured in steps (OneCycleLR, and
#   warm-up + cosine as here), once per epoch for schedules measured in epochs.
#   `ReduceLROnPlateau` is stepped with the metric it watches: `scheduler.step(val_loss)`.
# - **Exploding gradients** show up as spikes in the gradient norm; `clip_grad_norm_` between
#   `backward()` and `step()` caps the gradient (not the step momentum or Adam builds from it)
#   and returns the norm to log.
# - **Gradient accumulation** runs a big batch as k micro-batches: divide each loss by k,
#   let `backward()` add the gradients up, step and zero every k batches.
# - **AdamW** decouples weight decay from Adam's rescaling, so every weight decays at the
#   same rate; prefer it to `Adam(weight_decay=...)`, and use parameter groups to keep
#   biases and norm parameters out of the decay.
# - **Early stopping** with patience ends training when validation loss stops improving;
#   combined with best-checkpoint saving you keep the best model, not the last one.
# - The production loop puts it all together: device, DataLoader, `train()`/`eval()`,
#   `zero_grad`, autocast, backward with accumulation, clipping, step, scheduler, validation
#   without grad, checkpoint, early stopping, progress bar.
# - **Data-parallel training** runs one process per device (`torchrun`), each on its share of
#   the data (`DistributedSampler`); `DistributedDataParallel` averages the gradients with an
#   all-reduce during `backward()`, so every process takes the same step.
#
# That completes the day: you can now build, benchmark, speed up, checkpoint and train
# PyTorch models the way production code does. Good luck with the certification!
