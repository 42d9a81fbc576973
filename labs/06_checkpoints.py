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
# # Lab 6 · Checkpoints
#
# Training takes hours on real models, and kernels crash, machines reboot, cloud GPUs get
# taken away. A **checkpoint** is a file that lets you continue as if nothing happened, or
# reuse what a model learned for a new task. This lab shows what goes into one, and why.
#
# **By the end of this lab you can**
#
# 1. explain what a `state_dict` is and why you save it instead of the whole model;
# 2. load files safely with `weights_only=True`, allow your own safe types, and pick the
#    device with `map_location`;
# 3. save model + optimizer + scheduler + epoch + random state, and resume **exactly**;
# 4. keep the best checkpoint by validation accuracy;
# 5. reuse a model you trained as the start of a new task (transfer learning: freeze the
#    body, replace the head, fine-tune).
#
# **After a kernel restart** (*Kernel › Restart*, or a crash when memory ran out) your edits
# are still here but every variable is gone: click the cell you were working on and choose
# *Run › Run All Above Selected Cell*, then carry on from there.

# %%
from workshop_labs import setup

device = setup()

# %%
import dataclasses

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from workshop_labs import data, lab06, plots, runtime
from workshop_labs import lab06 as check
from workshop_labs.runtime import pick, seed_everything

folder = runtime.work_dir() / "lab06"
folder.mkdir(exist_ok=True)
print("checkpoints go to", folder)

# %% [markdown]
# ## 1 · What a `state_dict` is
#
# The model for this lab reads an 8×8 digit. Its **body** turns the image into 512 features
# with two small convolution layers (`nn.Conv2d` slides 3×3 filters over the image; for this
# lab it is enough to know they are layers with weights); its **head** is one linear layer
# that turns the features into one score per class. Keeping body and head apart will matter
# for transfer learning in section 5.


# %%
class DigitsCNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),  # 64 pixels -> a 1-channel 8×8 image
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8×8 -> 4×4
            nn.Flatten(),  # 32 channels × 4 × 4 = 512 features
            nn.Dropout(0.2),
        )
        self.head = nn.Linear(32 * 4 * 4, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


model = DigitsCNN().to(device)
for name, tensor in model.state_dict().items():
    print(f"{name:16} {str(tuple(tensor.shape)):16} {tensor.dtype}")

# %% [markdown]
# `model.state_dict()` is an ordered dictionary from each parameter's **name** (the attribute
# path you gave it in `__init__`: `body.1.weight`, `head.bias`) to its **tensor**. Nothing
# else: no code, no class. Buffers such as BatchNorm's running averages are included too.
#
# The optimizer has a `state_dict()` as well. After one training step, Adam keeps two running
# averages per parameter (`exp_avg`, `exp_avg_sq`) and a step counter, plus its settings in
# `param_groups`. Parameters are referred to by number (0, 1, 2, …), not by name.

# %%
train_set, val_set = data.digits_split()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
x, y = train_set.tensors
F.cross_entropy(model(x[:64].to(device)), y[:64].to(device)).backward()
optimizer.step()

optimizer_state = optimizer.state_dict()
print("top-level keys :", list(optimizer_state))
print("state of param 0:", {k: tuple(v.shape) for k, v in optimizer_state["state"][0].items()})
print(
    "settings        :",
    {
        k: v
        for k, v in optimizer_state["param_groups"][0].items()
        if k in ("lr", "betas", "weight_decay")
    },
)

# %% [markdown]
# Saving and loading weights takes two lines each. Loading needs a model built by your code
# first; `load_state_dict` then copies the tensors into it, checking that every name and
# shape matches.

# %%
weights_path = folder / "weights.pt"
torch.save(model.state_dict(), weights_path)

restored = DigitsCNN().to(device)
restored.load_state_dict(torch.load(weights_path, weights_only=True))
print(
    "same weights:",
    all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), restored.state_dict().values(), strict=True)
    ),
)

# %% [markdown]
# ## 2 · Why not save the whole model? Loading safely
#
# `torch.save(model, path)` also works, and looks simpler. It uses Python's **pickle**, which
# does not store your class's code, only *where to find it*: "the class `DigitsCNN` in the
# module `__main__`". Two problems follow.
#
# * **It breaks on refactoring.** Rename the class, move it to another file, or open the file
#   in a different notebook, and the file can no longer be loaded. A `state_dict` is only names
#   and tensors; any code that builds a model with the same layer names can load it.
# * **Loading a pickle can run code.** A pickle may say "to rebuild this object, call this
#   function with these arguments", and the function can be anything, such as `os.system`.
#   Opening a checkpoint downloaded from the internet would run whatever its author wanted.
#
# That is why `torch.load(..., weights_only=True)` exists (and is the default since PyTorch
# 2.6): it only rebuilds tensors, numbers, strings, lists, tuples and dicts, and refuses
# everything else *before* running it. `get_unsafe_globals_in_checkpoint` lists what a file
# would need beyond those.

# %%
whole_path = folder / "whole_model.pt"
torch.save(model, whole_path)

print("state_dict file needs:", torch.serialization.get_unsafe_globals_in_checkpoint(weights_path))
print("whole-model file needs:", torch.serialization.get_unsafe_globals_in_checkpoint(whole_path))
try:
    torch.load(whole_path, weights_only=True)
except Exception as error:
    print("torch.load(whole_path, weights_only=True) ->", lab06.refusal_reason(error))

# %% [markdown]
# Now a file made by an "attacker". `Payload.__reduce__` tells pickle to rebuild the object by
# calling `print(...)`; a real attack would call something harmful instead. With
# `weights_only=True` the call is refused, and the message is never printed.


# %%
class Payload:
    def __reduce__(self):
        return (print, ("😈 this line was printed by code hidden in a checkpoint",))


evil_path = folder / "evil.pt"
torch.save({"model": model.state_dict(), "note": Payload()}, evil_path)
print("evil file needs:", torch.serialization.get_unsafe_globals_in_checkpoint(evil_path))
try:
    torch.load(evil_path, weights_only=True)
except Exception as error:
    print("refused:", lab06.refusal_reason(error))

# %% [markdown]
# **Your own safe types.** Sometimes a checkpoint should hold a small object of your own, such
# as the training settings. `weights_only=True` refuses it at first, like any unknown class.
# If you trust the class (you wrote it, and it only holds data), allow exactly that class
# with the `torch.serialization.safe_globals([...])` context manager (or
# `torch.serialization.add_safe_globals([...])` once for the whole session). Even simpler:
# store settings as a plain dict (`dataclasses.asdict(config)`), which needs no permission.
#
# **`map_location`.** Every tensor in a file remembers the device it was saved from. A
# checkpoint saved on `cuda:0` cannot be loaded on a machine without a GPU unless you say where
# the tensors should go: `map_location="cpu"`, or `map_location=device` to load straight onto
# whatever this machine has. Loading onto the CPU first is also the usual way to keep a big
# checkpoint from filling GPU memory twice.


# %%
@dataclasses.dataclass
class TrainingConfig:
    learning_rate: float = 3e-3
    batch_size: int = 64
    epochs: int = 10


config_path = folder / "with_config.pt"
torch.save({"model": model.state_dict(), "config": TrainingConfig()}, config_path)
try:
    torch.load(config_path, weights_only=True)
except Exception as error:
    print("without permission:", lab06.refusal_reason(error))

with torch.serialization.safe_globals([TrainingConfig]):
    loaded = torch.load(config_path, map_location="cpu", weights_only=True)
print(
    "with permission   :", loaded["config"], "· tensors on", loaded["model"]["head.weight"].device
)

# %% [markdown]
# ### Exercise 1 · a safe loader
#
# Write `load_trusted(path, device)` that loads a checkpoint
#
# * with `weights_only=True` (files from elsewhere must not run code),
# * allowing `TrainingConfig` objects and nothing else,
# * with every tensor placed on `device`,
#
# and returns the loaded checkpoint.


# %% tags=["exercise"]
def load_trusted(path, device):
    # TODO: load `path` safely onto `device`, allowing TrainingConfig
    return torch.load(path)


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def load_trusted(path, device):
#     with torch.serialization.safe_globals([TrainingConfig]):
#         return torch.load(path, map_location=device, weights_only=True)
# ```
#
# </details>

# %%
check.load_trusted(load_trusted, TrainingConfig)

# %% [markdown]
# ## 3 · A complete checkpoint
#
# To continue training exactly where it stopped, the weights are not enough. A checkpoint
# holds everything that changes during training:
#
# | key | what | why it is needed |
# | --- | --- | --- |
# | `model` | `model.state_dict()` | the weights |
# | `optimizer` | `optimizer.state_dict()` | Adam's averages, SGD's momentum |
# | `scheduler` | `scheduler.state_dict()` | where the learning-rate schedule is |
# | `epoch` | an int | where to continue |
# | `rng` | random number generator states | the next shuffle order and dropout masks |
#
# Leave out any of the last four and the resumed run differs from the original: the first
# steps use an empty optimizer state, the learning rate restarts at its first (large) value,
# or the batches come in a different order.
#
# The random state comes from two small helpers: PyTorch has one generator for the CPU and
# one per GPU. Each state is a CPU tensor of bytes, and the setters accept nothing else:
# `torch.load(..., map_location="cuda")` moves *every* tensor of a checkpoint to the GPU,
# these too, so `set_rng_state` brings them back with `.cpu()` first.


# %%
def rng_state():
    return {
        "cpu": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state):
    torch.set_rng_state(state["cpu"].cpu())
    if state["cuda"]:
        torch.cuda.set_rng_state_all([generator.cpu() for generator in state["cuda"]])


scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.3)
checkpoint = {
    "model": model.state_dict(),
    "optimizer": optimizer.state_dict(),
    "scheduler": scheduler.state_dict(),
    "epoch": 0,
    "rng": rng_state(),
}
checkpoint_path = folder / "checkpoint.pt"
torch.save(checkpoint, checkpoint_path)
size_kib = checkpoint_path.stat().st_size / 1024
lab06.checkpoint_tree(
    torch.load(checkpoint_path, weights_only=True),
    title=f"What {checkpoint_path.name} contains ({size_kib:.0f} KiB on disk)",
)

# %% [markdown]
# Read the tree from the top: the model's tensors (weights in float32), the optimizer's
# per-parameter state (two tensors the same shape as each weight, which is why an Adam
# checkpoint is about three times the size of the weights), its settings, the scheduler's
# few numbers, the epoch, and the generator states (byte tensors). Everything is a tensor, a
# number, a string, a list or a dict: `weights_only=True` loads it without any permission.

# %% [markdown]
# ### Exercise 2 · `save_checkpoint`
#
# Write `save_checkpoint(path, model, optimizer, scheduler, epoch)` that saves one dict with
# the five keys of the table above (`"model"`, `"optimizer"`, `"scheduler"`, `"epoch"`,
# `"rng"`) to `path`. Use `rng_state()` for the random state.


# %% tags=["exercise"]
def save_checkpoint(path, model, optimizer, scheduler, epoch):
    # TODO: save everything needed to resume training
    torch.save(model.state_dict(), path)


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def save_checkpoint(path, model, optimizer, scheduler, epoch):
#     torch.save(
#         {
#             "model": model.state_dict(),
#             "optimizer": optimizer.state_dict(),
#             "scheduler": scheduler.state_dict(),
#             "epoch": epoch,
#             "rng": rng_state(),
#         },
#         path,
#     )
# ```
#
# </details>

# %%
check.save_checkpoint(save_checkpoint, rng_state)

# %% [markdown]
# ## 4 · Resuming exactly
#
# Resuming is the mirror image of saving: build the model, optimizer and scheduler exactly as
# before (same classes, same settings), then pour the saved state into each with
# `load_state_dict`, restore the random state, and continue with the **next** epoch.
#
# The experiment: train for a number of epochs without interruption and record the loss.
# Then do it again, but "crash" halfway: throw every object away, build fresh ones (with a
# different seed, to prove nothing survives by accident), load the checkpoint and continue.
# A third run resumes from the weights only, as if we had saved `model.state_dict()` alone.


# %%
def train_one_epoch(model, loader, optimizer):
    model.train()
    total = 0.0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(yb)
    return total / len(loader.dataset)


def fresh_run(seed, num_classes=10):
    """Model, optimizer, scheduler and shuffled loader, built the same way every time."""
    seed_everything(seed)
    model = DigitsCNN(num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.3)
    loader = DataLoader(train_set, batch_size=64, shuffle=True)  # shuffles with the CPU RNG
    return model, optimizer, scheduler, loader


def run_epochs(model, optimizer, scheduler, loader, epochs, checkpoint_path=None):
    losses = []
    for epoch in epochs:
        losses.append(train_one_epoch(model, loader, optimizer))
        scheduler.step()
        if checkpoint_path is not None:  # after every epoch: a crash loses at most one
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                    "rng": rng_state(),
                },
                checkpoint_path,
            )
    return losses


total_epochs = pick(full=12, quick=4)
crash_after = total_epochs // 2
resume_path = folder / "resume.pt"

# run 1: no interruption
planned = fresh_run(seed=0)
planned_scheduler = planned[2]
uninterrupted = run_epochs(*planned, range(total_epochs))

# run 2: first session, then the "crash"
first_session = run_epochs(*fresh_run(seed=0), range(crash_after), checkpoint_path=resume_path)

# ... a new session: fresh objects, then the full checkpoint
model, optimizer, scheduler, loader = fresh_run(seed=1234)
checkpoint = torch.load(resume_path, map_location=device, weights_only=True)
model.load_state_dict(checkpoint["model"])
optimizer.load_state_dict(checkpoint["optimizer"])
scheduler.load_state_dict(checkpoint["scheduler"])
set_rng_state(checkpoint["rng"])
start_epoch = checkpoint["epoch"] + 1
resumed = run_epochs(model, optimizer, scheduler, loader, range(start_epoch, total_epochs))

# run 3: a new session that only restores the weights
model, optimizer, weights_only_scheduler, loader = fresh_run(seed=1234)
model.load_state_dict(torch.load(resume_path, map_location=device, weights_only=True)["model"])
weights_only_run = run_epochs(
    model, optimizer, weights_only_scheduler, loader, range(crash_after, total_epochs)
)

lab06.resume_curves(uninterrupted, resumed, weights_only_run, crash_after)
difference = max(abs(a - b) for a, b in zip(uninterrupted[crash_after:], resumed, strict=True))
print(f"largest difference between the uninterrupted and the resumed run: {difference:.2e}")
print(
    f"learning rate at the end: planned {planned_scheduler.get_last_lr()[0]:.1e}, "
    f"weights only {weights_only_scheduler.get_last_lr()[0]:.1e}"
)
print(
    f"final training loss: planned {uninterrupted[-1]:.4f}, weights only {weights_only_run[-1]:.4f}"
)

# %% [markdown]
# The run resumed from the full checkpoint lies on the uninterrupted curve: same batches in
# the same order, same dropout masks, same optimizer state, same learning rate. (On a GPU some
# operations are not bit-for-bit deterministic, so the difference may be tiny instead of
# zero; `torch.use_deterministic_algorithms(True)` removes that when you need it.)
#
# The run resumed from the weights alone is a different run: its scheduler restarted at the
# first, large learning rate and Adam's running averages started from zero, so the loss jumps
# and then follows its own path. Do not read its final training loss as a verdict, whichever
# side of the planned curve it ends on: it spent the remaining epochs at a different
# learning rate (printed above), and a loss on the training set is not what a model is judged
# by. The point is that it is **not the run you planned**: the schedule you chose, logged and
# could reproduce was silently replaced by another one, and any comparison with other runs
# is no longer like for like.

# %% [markdown]
# ### Exercise 3 · `resume`
#
# Write `resume(path, model, optimizer, scheduler)` that restores a checkpoint written by
# `save_checkpoint` into freshly built objects (model, optimizer, scheduler and random state)
# and **returns the epoch training should continue with**. The checkpoint's `"epoch"` is the
# epoch that had *finished* when it was saved. Load with `weights_only=True`.


# %% tags=["exercise"]
def resume(path, model, optimizer, scheduler):
    checkpoint = torch.load(path, weights_only=True)
    # TODO: restore model, optimizer, scheduler and random state; return the next epoch
    return checkpoint["epoch"]


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def resume(path, model, optimizer, scheduler):
#     checkpoint = torch.load(path, weights_only=True)
#     model.load_state_dict(checkpoint["model"])
#     optimizer.load_state_dict(checkpoint["optimizer"])
#     scheduler.load_state_dict(checkpoint["scheduler"])
#     set_rng_state(checkpoint["rng"])
#     return checkpoint["epoch"] + 1
# ```
#
# </details>

# %%
check.resume(resume, rng_state)

# %% [markdown]
# ## 5 · The best checkpoint, and reusing a model for a new task
#
# **Best-checkpoint selection.** The last epoch is not always the best: the model may start
# to overfit, or the validation accuracy may wobble. So while training we evaluate on the
# validation set after every epoch and save a separate `best.pt` whenever the accuracy beats
# the best so far. At the end, `best.pt` holds the model you actually want.
#
# **Transfer learning.** A trained body has learned useful features (strokes, curves, loops).
# A new, related task with little data can start from that body instead of from random
# weights: keep (**freeze**) the body, **replace the head** with a new one for the new
# classes, and train only the head (**fine-tune**). Freezing means `requires_grad=False`:
# autograd computes no gradient for those parameters, so the optimizer never changes them.
#
# Our experiment: pretrain on digits **0–4** (keeping the best checkpoint), then learn digits
# **5–9** from only a handful of examples per class, three ways: from the frozen pretrained
# body, from the pretrained weights with the last body layer free to adapt, and from scratch.


# %%
def digits_subset(dataset, classes, per_class=None, seed=0):
    """Only the given classes (relabelled 0, 1, …), optionally `per_class` examples of each."""
    x, y = dataset.tensors
    generator = torch.Generator().manual_seed(seed)
    keep = []
    for label in classes:
        index = torch.nonzero(y == label).flatten()
        index = index[torch.randperm(len(index), generator=generator)]
        keep.append(index[:per_class] if per_class else index)
    keep = torch.cat(keep)
    return TensorDataset(x[keep], y[keep] - min(classes))


@torch.no_grad()
def accuracy(model, dataset):
    model.eval()
    x, y = dataset.tensors
    return (model(x.to(device)).argmax(dim=1) == y.to(device)).float().mean().item()


old_classes, new_classes = range(0, 5), range(5, 10)
pretrain_set, pretrain_val = (
    digits_subset(train_set, old_classes),
    digits_subset(val_set, old_classes),
)

model, optimizer, _, _ = fresh_run(seed=0, num_classes=5)
loader = DataLoader(pretrain_set, batch_size=64, shuffle=True)
best_path, best_accuracy, pretrain_accuracies = folder / "best.pt", 0.0, []
for epoch in range(pick(full=10, quick=2)):
    train_one_epoch(model, loader, optimizer)
    pretrain_accuracies.append(accuracy(model, pretrain_val))
    if pretrain_accuracies[-1] > best_accuracy:
        best_accuracy = pretrain_accuracies[-1]
        torch.save(
            {"model": model.state_dict(), "epoch": epoch, "val_accuracy": best_accuracy}, best_path
        )

best = torch.load(best_path, map_location=device, weights_only=True)
print(f"best checkpoint: epoch {best['epoch'] + 1}, validation accuracy {best['val_accuracy']:.1%}")

# %% [markdown]
# Now the fine-tuning set: a few examples of each new digit. We load the best checkpoint,
# freeze the body, and replace the head. A new `nn.Linear` assigned to `model.head` is
# registered automatically (lab 2) and its parameters require gradients; the optimizer gets
# only the parameters that still require gradients. A model trained from scratch is the
# baseline.

# %%
per_class = pick(full=5, quick=5)
finetune_set = digits_subset(train_set, new_classes, per_class=per_class)
new_val = digits_subset(val_set, new_classes)


def load_pretrained():
    """The best checkpoint of the 0–4 model, as the starting point for the new task."""
    model = DigitsCNN(num_classes=len(old_classes)).to(device)
    model.load_state_dict(best["model"])
    return model


pretrained = load_pretrained()
pretrained.body.requires_grad_(False)  # freeze: no gradients for the body
pretrained.head = nn.Linear(pretrained.head.in_features, len(new_classes)).to(device)  # new head

seed_everything(1)
scratch = DigitsCNN(num_classes=len(new_classes)).to(device)


def trainable_share(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"trains {trainable:6,} of {sum(p.numel() for p in model.parameters()):,} parameters"


for name, candidate in (("pretrained + new head", pretrained), ("from scratch", scratch)):
    print(f"{name:22} {trainable_share(candidate)}")

# %% [markdown]
# ### Exercise 4 · prepare a model for fine-tuning
#
# A middle way between the two: start from the pretrained weights, but let the **last body
# layer** adapt too, so that the highest-level features can fit the new digits. Write
# `prepare_for_finetuning(model, num_classes)` for a `DigitsCNN` that:
#
# * freezes every parameter of `model.body` **except** those of the body's *last layer that
#   has weights* (the second `nn.Conv2d`),
# * replaces `model.head` with a new `nn.Linear` with `num_classes` outputs,
# * returns the model.
#
# Count before you expect a saving: in this small network the second convolution holds
# 4,640 of the body's 4,800 weights (16 × 32 × 3 × 3 + 32), so your model trains nearly as
# many parameters as the one from scratch. What it keeps is the pretrained *starting point*.
# In large networks the last block is a small share of the weights, and unfreezing it is
# cheap. The cell after the check trains the model your function returns, next to the two
# above.


# %% tags=["exercise"]
def prepare_for_finetuning(model, num_classes):
    # TODO: freeze the body except its last layer with weights; replace the head
    return model


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def prepare_for_finetuning(model, num_classes):
#     model.body.requires_grad_(False)
#     layers_with_weights = [m for m in model.body if isinstance(m, (nn.Conv2d, nn.Linear))]
#     layers_with_weights[-1].requires_grad_(True)
#     model.head = nn.Linear(model.head.in_features, num_classes)
#     return model
# ```
#
# </details>

# %%
check.prepare_for_finetuning(prepare_for_finetuning, DigitsCNN)

# %%
partly_frozen = prepare_for_finetuning(load_pretrained(), len(new_classes)).to(device)
print(f"{'your prepare_for_finetuning':22} {trainable_share(partly_frozen)}")

candidates = {
    "pretrained: frozen body, new head": pretrained,
    "pretrained: last conv + head (yours)": partly_frozen,
    "from scratch": scratch,
}
finetune_epochs = pick(full=25, quick=2)
curves = {}
for name, candidate in candidates.items():
    seed_everything(2)  # same shuffling for every candidate
    trainable = [p for p in candidate.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=3e-3)
    loader = DataLoader(finetune_set, batch_size=16, shuffle=True)
    curves[name] = []
    for _ in range(finetune_epochs):
        train_one_epoch(candidate, loader, optimizer)
        curves[name].append(accuracy(candidate, new_val))

first, last = (max(curves, key=lambda name: curves[name][epoch]) for epoch in (0, -1))
plots.curves(
    curves,
    title=f"Digits 5–9 from {per_class} examples per class\n"
    f"leading after epoch 1: {first} · after epoch {finetune_epochs}: {last}",
    xlabel="epoch",
    ylabel="validation accuracy on digits 5–9",
)
goal = 0.85
for name, curve in curves.items():
    reached = next((f"epoch {i}" for i, a in enumerate(curve, start=1) if a >= goal), "never")
    print(
        f"{name:37} after epoch 1: {curve[0]:6.1%}   after epoch {len(curve)}: {curve[-1]:6.1%}"
        f"   first at {goal:.0%}: {reached}"
    )
print(
    f"{len(new_val)} validation digits: one digit more or less moves the accuracy by "
    f"{1 / len(new_val):.1%}"
)

# %% [markdown]
# Read the printout as well as the lines. Both pretrained models **start ahead**: after the
# first epoch they are above the model from scratch, because features learned on 0–4
# (strokes, loops) already separate 5–9 and little has to be learned on top. Whether they are
# still ahead at the end is a different question, and on this toy problem the answer varies
# with the machine and the seed: a small CNN learns 8×8 digits from 25 images almost as well
# from scratch, and the accuracy on this small validation set moves by a few digits from one
# epoch to the next (the printout says how much one digit is worth). What the pretrained
# weights buy here is the **head start**: compare when each model first reaches 85 %. A
# head start means fewer epochs, so less compute, for the same accuracy. This lab cannot show
# the other half of the story, which is why almost every practical vision or language model
# starts from pretrained weights: a large network pretrained on millions of images holds far
# more than a small task could teach it, and there the advantage lasts.

# %% [markdown]
# ## Recap
#
# * A **`state_dict`** maps parameter names to tensors. Save it, not the whole model: a pickled
#   model only remembers *where* its class was, breaks when you refactor, and pickles can run
#   code when loaded.
# * Load with **`torch.load(path, weights_only=True)`**; allow a trusted class of your own with
#   `torch.serialization.safe_globals([...])`; choose the device with **`map_location`**.
# * A **complete checkpoint** holds model, optimizer, scheduler, epoch and RNG state. With all
#   five, a resumed run continues the original curve exactly; with the weights alone it does
#   not.
# * Resume with the **next** epoch: the saved epoch had already finished.
# * Keep a separate **best checkpoint**, chosen by validation accuracy.
# * **Transfer learning**: load a trained body, freeze it (`requires_grad_(False)`), replace the
#   head, give the optimizer only the trainable parameters, fine-tune.
