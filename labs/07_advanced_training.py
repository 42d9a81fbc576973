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
# The training loop of Lab 1 works, but real training runs need a few more tools: a learning
# rate that changes over time, protection against one bad step destroying the model, weight
# decay done right, and knowing when to stop. At the end you put everything from the day into
# one production-style training loop.
#
# **By the end of this lab you can**
# 1. choose a **learning-rate scheduler** (StepLR, CosineAnnealingLR, OneCycleLR, warm-up) and
#    call it at the right place in the loop;
# 2. recognise **exploding gradients** and tame them with **gradient clipping**;
# 3. explain why **AdamW** applies weight decay differently from Adam;
# 4. implement **early stopping** with patience;
# 5. write a complete training loop: device, DataLoader, AMP, clipping, scheduler, early
#    stopping, best-checkpoint saving, progress bar.
#
# **After a kernel restart** (*Kernel › Restart*, or a crash when memory ran out) your edits
# are still here but every variable is gone: click the cell you were working on and choose
# *Run › Run All Above Selected Cell*, then carry on from there.

# %%
from workshop_labs import setup

device = setup()

# %%
import math
import time

import torch
from torch import nn
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LinearLR,
    OneCycleLR,
    SequentialLR,
    StepLR,
)

from workshop_labs import data, lab07, plots, runtime

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
#
# Here is every one of them at every step of our training run, traced by stepping a real
# optimizer (with a throw-away parameter) and reading its learning rate:

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
        break  # four batches show the pattern; section 5 trains for real

# %% [markdown]
# ### Exercise 1 · warm-up, then cosine
#
# Large-model recipes (transformers especially) combine a **linear warm-up** with a
# **cosine decay**. Write `warmup_cosine(optimizer, warmup_steps, total_steps)` returning a
# scheduler whose factor (multiplied with the optimizer's lr) rises linearly from near 0 to
# 1 over the first `warmup_steps` steps, then follows half a cosine from 1 down to 0 at
# `total_steps`. Use `LambdaLR` with your own factor function (the cosine part is
# `0.5 * (1 + math.cos(math.pi * progress))` for `progress` going from 0 to 1), or chain
# `LinearLR` and `CosineAnnealingLR` with `SequentialLR`.


# %% tags=["exercise"]
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
lab07.check_warmup_cosine(warmup_cosine)

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
lab07.check_one_cycle_epoch(train_one_epoch, device)

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
# divided them by 16. Below, one model trains on the raw 0…16 pixels with SGD at lr 0.1;
# a second, identical model does the same with `clip_grad_norm_(max_norm=1.0)`. We record
# the gradient norm before and after clipping at every step.

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
# ### Exercise 3 · clip at the right moment
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
lab07.check_clipped_step(clipped_step)

# %% [markdown]
# ## 3 · Weight decay and AdamW
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

# %% [markdown]
# ## 4 · Early stopping
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
# row we tolerate. You will see it on a real run in section 5.
#
# ### Exercise 4 · an early stopper
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
lab07.check_early_stopping(EarlyStopping)

# %% [markdown]
# ## 5 · Putting it all together: a production-style training loop
#
# Here is everything from the day in one function. Read it top to bottom; each line is a
# habit with a reason:
#
# | line | lab | why |
# | --- | --- | --- |
# | `.to(device)` for every batch | 1 | compute where the model is |
# | `DataLoader`, shuffled | 2 | batches in a new order every epoch |
# | `model.train()` / `model.eval()` | 2 | layers like dropout behave differently |
# | `optimizer.zero_grad()` | 1 | gradients accumulate until you clear them |
# | `torch.autocast(...)` | 4 | bf16 where the GPU has bf16 units; off on a CPU |
# | `clip_grad_norm_` after `backward` | 7 | one bad batch cannot wreck the model |
# | `scheduler.step()` after `optimizer.step()` | 7 | once per batch for step-based schedules |
# | loss summed on the device | 3, 7 | `.item()` waits for the GPU's queue (lab 3): once per epoch |
# | `torch.no_grad()` for validation | 1 | no graph: less memory, faster |
# | best checkpoint | 6 | keep the best model, not the last one |
# | early stopping | 7 | stop once validation stops improving |
#
# Two habits you will meet in other people's loops are left out on purpose.
# `zero_grad(set_to_none=True)` is no choice any more: `None` has been the default since
# PyTorch 2.0, so plain `zero_grad()` already frees the gradients instead of filling them with
# zeros. `.to(device, non_blocking=True)` lets the copy to the GPU overlap with computation
# only when the batch sits in page-locked memory (`DataLoader(..., pin_memory=True)`); from
# ordinary memory, as here, it is an ordinary copy, and on the CPU there is no copy at all.

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


def fit(
    model,
    optimizer,
    *,
    epochs,
    checkpoint_path,
    scheduler=None,
    max_norm=None,
    patience=None,
    name="training",
):
    """Train, validate every epoch, keep the best weights on disk, stop early if asked."""
    history = {"training loss": [], "validation loss": [], "validation accuracy": []}
    best_loss, bad_epochs = math.inf, 0
    for epoch in runtime.progress(range(epochs), desc=name):
        model.train()
        running_loss = torch.zeros((), device=device)
        for xb, yb in train_loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = loss_fn(model(xb), yb)
            loss.backward()
            if max_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            running_loss += loss.detach() * len(xb)
        val_loss, val_accuracy = evaluate(model, val_loader)
        history["training loss"].append(running_loss.item() / len(train_loader.dataset))
        history["validation loss"].append(val_loss)
        history["validation accuracy"].append(val_accuracy)
        if val_loss < best_loss:
            best_loss, bad_epochs = val_loss, 0
            checkpoint = {"epoch": epoch + 1, "val_loss": val_loss, "model": model.state_dict()}
            torch.save(checkpoint, checkpoint_path)
        else:
            bad_epochs += 1
            if patience is not None and bad_epochs >= patience:
                break
    return history


# %% [markdown]
# Now the comparison. Each recipe below returns what `fit` needs (optimizer, scheduler,
# options); each trains the same model from the same starting weights for
# at most the same number of epochs, and adds one more technique:
#
# 1. **SGD, constant lr**: what Lab 1 did (plus momentum);
# 2. **SGD + OneCycleLR**: the same optimizer with a schedule;
# 3. **Adam + L2, warm-up + cosine**: Adam with its coupled weight decay;
# 4. **AdamW, warm-up + cosine, clipping, early stopping**: the full production recipe.
#
# Every run saves its best epoch to its own checkpoint file in the work folder.

# %%
weight_decay = 0.05
warmup_steps = max(1, total_steps // 10)
patience = runtime.pick(full=5, quick=1)


def warmup_then_cosine(optimizer):
    return SequentialLR(
        optimizer,
        [
            LinearLR(optimizer, start_factor=0.01, total_iters=warmup_steps),
            CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps),
        ],
        milestones=[warmup_steps],
    )


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
    return {"optimizer": optimizer, "scheduler": warmup_then_cosine(optimizer)}


def adamw_production(model):
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=weight_decay)
    return {
        "optimizer": optimizer,
        "scheduler": warmup_then_cosine(optimizer),
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
    started = time.perf_counter()
    history = fit(
        model, epochs=epochs, checkpoint_path=checkpoints[name], name=name, **recipe(model)
    )
    seconds = time.perf_counter() - started
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
            "time (s)": round(seconds, 1),
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

# %% [markdown]
# Things to notice (the exact numbers, and the times most of all, depend on the machine):
# - A schedule helps SGD: OneCycle's large middle steps make fast progress, its tiny final
#   steps settle into a lower validation loss than the constant lr reaches.
# - `Adam` and `AdamW` got the *same* `weight_decay=0.05`, and Adam is far worse. That is
#   section 3 at work: in Adam the decay is part of the gradient, and for the many weights
#   with small gradients it dominates, pulling them to 0 at full speed. Values that work for
#   Adam's coupled decay are typically 100× smaller, which is one more reason to use AdamW,
#   where `weight_decay` means the same thing for every weight.
# - Early stopping ended the production run once the validation loss stopped improving
#   (saving time), and the checkpoint holds the best epoch, not the last.
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
#
# ## Recap
#
# - A **scheduler** changes the lr during training; call `scheduler.step()` after
#   `optimizer.step()`, once per batch for schedules measured in steps (OneCycleLR, and
#   warm-up + cosine as here), once per epoch for schedules measured in epochs.
# - **Exploding gradients** show up as spikes in the gradient norm; `clip_grad_norm_` between
#   `backward()` and `step()` caps the gradient (not the step momentum or Adam builds from it)
#   and returns the norm to log.
# - **AdamW** decouples weight decay from Adam's rescaling, so every weight decays at the
#   same rate; prefer it to `Adam(weight_decay=...)`.
# - **Early stopping** with patience ends training when validation loss stops improving;
#   combined with best-checkpoint saving you keep the best model, not the last one.
# - The production loop puts it all together: device, DataLoader, `train()`/`eval()`,
#   `zero_grad`, autocast, backward, clipping, step, scheduler, validation without grad,
#   checkpoint, early stopping, progress bar.
#
# That completes the day: you can now build, benchmark, speed up, checkpoint and train
# PyTorch models the way production code does. Good luck with the certification!
