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
# 1. read a small convolutional network: compute what `nn.Conv2d` and `nn.MaxPool2d` do to
#    the shape of an image batch (N × C × H × W), and place a `nn.BatchNorm2d`;
# 2. explain what a `state_dict` is (parameters and buffers) and why you save it instead of
#    the whole model;
# 3. load files safely with `weights_only=True`, allow your own safe types, and pick the
#    device with `map_location`;
# 4. save model + optimizer + scheduler + epoch + random state, and resume **exactly**;
# 5. keep the best checkpoint by validation accuracy, not the last one;
# 6. build a `torchvision.transforms.v2` pipeline (augmentation for training only), and
#    reuse a model you trained as the start of a new task (transfer learning: freeze the
#    body, replace the head, fine-tune), judged over several seeds;
# 7. export a model with `torch.export` and to ONNX, and check ONNX Runtime's scores
#    against PyTorch's.
#
# **After a kernel restart** (*Kernel › Restart*, or a crash when memory ran out) your edits
# are still here but every variable is gone: click the cell you were working on and choose
# *Run › Run All Above Selected Cell*, then carry on from there.

# %%
from workshop_labs import setup

device = setup()

# %%
import contextlib
import copy
import dataclasses
import io

import onnxruntime
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision.transforms import v2

from workshop_labs import data, diagrams, lab06, runtime, timing
from workshop_labs.runtime import pick, seed_everything

folder = runtime.work_dir() / "lab06"
folder.mkdir(exist_ok=True)
print("checkpoints go to", folder)

# %% [markdown]
# ## 1 · The lab's model: a small convolutional network
#
# Until now the digits went into `nn.Linear` layers as 64 numbers in a row. A linear layer
# has one weight per pixel and output, so a stroke it has learned in one place means nothing
# to it one pixel further. Image models use **convolutions** instead.
#
# * **Layout.** PyTorch stores a batch of images as **N × C × H × W** ("NCHW"): N images,
#   C channels (1 for grey, 3 for colour), height, width. Our digits are stored flat (64
#   values each), so the model starts with `nn.Unflatten(1, (1, 8, 8))`: 64 → 1 × 8 × 8.
# * **`nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0)`** holds
#   `out_channels` small filters of size `in_channels × kernel_size × kernel_size`. Each
#   filter slides over the image; at every position the output is the weighted sum of the
#   patch under it, plus a bias. So each filter gives one output channel, and the same few
#   weights are used everywhere in the image.
# * **Shape.** `padding` adds a border of zeros, `stride` is the step between positions.
#   Each side becomes `(size + 2 × padding − kernel_size) // stride + 1`. With a 3 × 3
#   kernel, `padding=1` keeps the size, and `stride=2` halves it.
# * **`nn.MaxPool2d(2)`** keeps the largest value of each 2 × 2 window: height and width
#   halve, channels stay, and it has no weights.
#
# The cell below checks the formula against real layers.

# %%
image = torch.zeros(1, 1, 8, 8)  # N, C, H, W: one grey 8×8 image
for kernel_size, stride, padding in ((3, 1, 0), (3, 1, 1), (3, 2, 1), (5, 1, 2)):
    conv = nn.Conv2d(1, 4, kernel_size, stride=stride, padding=padding)
    side = (8 + 2 * padding - kernel_size) // stride + 1
    print(
        f"Conv2d(1, 4, kernel_size={kernel_size}, stride={stride}, padding={padding}):"
        f" output {tuple(conv(image).shape)}   formula: {side}×{side}"
    )
print(f"MaxPool2d(2): output {tuple(nn.MaxPool2d(2)(image).shape)}")
print(f"weights of Conv2d(1, 16, 3): {tuple(nn.Conv2d(1, 16, 3).weight.shape)}")

# %% [markdown]
# The weights of a convolution have the shape out_channels × in_channels × kernel × kernel:
# 16 filters of 1 × 3 × 3 is 144 weights (plus 16 biases), whatever the image size.
#
# ### Exercise 1 · the side of a layer's output
#
# Write `conv_side(size, kernel_size, stride=1, padding=0)` that returns the height (or
# width) a `Conv2d` makes from an input of side `size`, as an `int`. `MaxPool2d(2)` follows
# the same formula with kernel 2 and stride 2. The check compares it with real layers.


# %% tags=["exercise"]
def conv_side(size, kernel_size, stride=1, padding=0):
    # TODO: the formula above
    return size


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def conv_side(size, kernel_size, stride=1, padding=0):
#     return (size + 2 * padding - kernel_size) // stride + 1
# ```
#
# </details>

# %%
conv_side = lab06.check_conv_side(conv_side)

# %% [markdown]
# **`nn.BatchNorm2d(channels)`** makes training steadier. In `train()` mode it takes each
# channel over the whole batch and every position (N × H × W numbers), subtracts their mean
# and divides by their standard deviation, then multiplies by a learned `weight` and adds a
# learned `bias` (2 parameters per channel). It also keeps a **running mean and variance** of
# what it saw; in `eval()` mode it uses those instead of the batch's, so a single image gives
# the same answer whatever batch it comes in. Those running averages are **buffers**: they
# belong to the model and are saved with it, but no optimizer changes them. It goes right
# after a convolution, with that convolution's number of output channels.

# %%
norm = nn.BatchNorm2d(4)
features = nn.Conv2d(1, 4, kernel_size=3, padding=1)(torch.rand(16, 1, 8, 8)) * 5 + 3
per_channel = features.mean(dim=(0, 2, 3))  # one mean per channel: over N, H and W
print("before BatchNorm2d: channel means", [round(m, 2) for m in per_channel.tolist()])
normed = norm(features)  # a new module is in train() mode
print(
    "after  (train)    : channel means", [round(m, 2) for m in normed.mean(dim=(0, 2, 3)).tolist()]
)
print(
    "                    channel stds ", [round(m, 2) for m in normed.std(dim=(0, 2, 3)).tolist()]
)
print("parameters:", [name for name, _ in norm.named_parameters()])
print("buffers   :", [name for name, _ in norm.named_buffers()])

# %% [markdown]
# The lab's model has a **body** that turns the image into 512 features and a **head**, one
# linear layer, that turns them into one score per class. Keeping body and head apart will
# matter for transfer learning in section 7. The first convolution is followed by a
# `BatchNorm2d(16)`. The body ends with `nn.Dropout(0.2)`, which lab 2 introduced: after
# `model.train()` it zeroes a random 20 % of the features, after `model.eval()` it passes
# them through unchanged.


# %%
class DigitsCNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),  # 64 pixels -> a 1-channel 8×8 image
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.BatchNorm2d(16),  # normalizes each of the 16 channels
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


train_set, val_set = data.digits_split()
model = DigitsCNN().to(device)
example = train_set.tensors[0][:1].to(device)  # a batch of one digit, as 64 pixels

diagrams.cnn_diagram(model, example)

# %% [markdown]
# The picture runs `model(example)` once and reads every layer as it passes. Read it from
# left to right; every shape starts with the **batch dimension** N (one digit here, and the
# same layers take a batch of 64 without a change). The 64 pixels become a 1-channel 8 × 8
# image; the first convolution makes 16 channels, the second 32, both keeping 8 × 8 (kernel
# 3 × 3, stride 1, `padding=1`); `MaxPool2d(2)` (a 2 × 2 window moved with stride 2) halves
# the size to 4 × 4; `Flatten` lines the 32 × 4 × 4 values up into 512 features for the head.
#
# * **Parameters per layer**: the first convolution holds 16 filters of 1 × 3 × 3 weights
#   plus 16 biases, 160 in all; `BatchNorm2d(16)` a weight and a bias per channel, 32; the
#   second convolution 32 × 16 × 3 × 3 + 32 = 4,640; the head 512 × 10 + 10 = 5,130.
#   Unflatten, pooling and Flatten hold none.
# * **On the arrows**: `ReLU` and `Dropout` hold no weights and change values, never shapes,
#   so they are operations on the way from one tensor to the next, not tensors of their own.
#   `BatchNorm2d` keeps the shape too, but it holds weights, so it has a column.
# * **Names** such as `body.1` are the attribute paths PyTorch gives the layers; section 2
#   meets them again.
#
# ### Exercise 2 · a `BatchNorm2d` and the shapes of a small CNN (if you have time)
#
# `small_cnn` is a smaller cousin of `DigitsCNN`. Complete it:
#
# * put an `nn.BatchNorm2d` right after the convolution (with how many channels?);
# * give `nn.Linear` the number of features `Flatten` hands it: work the sides out with your
#   `conv_side` (the convolution has stride 2, then `MaxPool2d(2)` halves them), then
#   channels × height × width.

# %% tags=["exercise", "stretch"]
small_cnn = nn.Sequential(
    nn.Unflatten(1, (1, 8, 8)),
    nn.Conv2d(1, 8, kernel_size=3, stride=2, padding=1),  # TODO: a BatchNorm2d after this
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(8 * 8 * 8, 10),  # TODO: how many features does Flatten give?
)

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# small_cnn = nn.Sequential(
#     nn.Unflatten(1, (1, 8, 8)),
#     nn.Conv2d(1, 8, kernel_size=3, stride=2, padding=1),
#     nn.BatchNorm2d(8),
#     nn.ReLU(),
#     nn.MaxPool2d(2),
#     nn.Flatten(),
#     nn.Linear(8 * 2 * 2, 10),
# )
# ```
#
# </details>

# %%
small_cnn = lab06.check_small_cnn(small_cnn)

# %% [markdown]
# ## 2 · What a `state_dict` is

# %%
for name, tensor in model.state_dict().items():
    print(f"{name:27} {str(tuple(tensor.shape)):16} {tensor.dtype}")

# %% [markdown]
# `model.state_dict()` is an ordered dictionary from each parameter's **name** (the attribute
# path you gave it in `__init__`: `body.1.weight`, `head.bias`) to its **tensor**. Nothing
# else: no code, no class. The **buffers** are in it too: `body.2`'s running mean and
# variance, and `num_batches_tracked` (an int64 count of the batches it has seen), which
# `model.parameters()` does not list, because no optimizer should change them.
#
# The optimizer has a `state_dict()` as well. After one training step, Adam (lab 2) keeps two
# running averages per parameter (`exp_avg`, `exp_avg_sq`) and a step counter, plus its
# settings in `param_groups`. Parameters are referred to by number (0, 1, 2, …), not by name.
# Running the cell again takes another step on the same model (with the new gradients added
# to the old ones, as lab 1 showed, since nothing zeroes them), so the weights saved below
# change each time.

# %%
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
# ### Exercise 3 · what else a `state_dict` holds
#
# Write `non_parameters(model)` that returns the names of every entry of
# `model.state_dict()` that is **not** a parameter (`model.named_parameters()` gives the
# names of those). The check tries it on `DigitsCNN` and on other models.


# %% tags=["exercise"]
def non_parameters(model):
    # TODO: the state_dict names that are not parameter names
    return []


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def non_parameters(model):
#     parameter_names = {name for name, _ in model.named_parameters()}
#     return [name for name in model.state_dict() if name not in parameter_names]
# ```
#
# </details>

# %%
non_parameters = lab06.check_non_parameters(non_parameters, DigitsCNN)

# %% [markdown]
# ## 3 · Why not save the whole model? Loading safely
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
# ### Exercise 4 · a safe loader
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
load_trusted = lab06.check_load_trusted(load_trusted, TrainingConfig)

# %% [markdown]
# ## 4 · A complete checkpoint
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
# A learning-rate **scheduler** changes the learning rate as training goes on (lab 7 compares
# several). Here `StepLR(optimizer, step_size=3, gamma=0.3)` multiplies it by 0.3 after every
# 3 epochs; `scheduler.step()` is called once at the end of each epoch.
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
# ### Exercise 5 · `save_checkpoint`
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
save_checkpoint = lab06.check_save_checkpoint(save_checkpoint, rng_state)

# %% [markdown]
# ## 5 · Resuming exactly
#
# Resuming is the mirror image of saving: build the model, optimizer and scheduler exactly as
# before (same classes, same settings), then pour the saved state into each with
# `load_state_dict`, restore the random state, and continue with the **next** epoch.
#
# The experiment: train for a number of epochs without interruption and record the loss.
# Then do it again, but "crash" halfway: throw every object away, build fresh ones (with a
# different seed, to prove nothing survives by accident), load the checkpoint and continue.
# A third run resumes from the weights only, as if we had saved `model.state_dict()` alone.
# The first session saves its checkpoints with your `save_checkpoint` from Exercise 5. Every
# run builds fresh objects, so running the cell again repeats the same experiment.


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
            save_checkpoint(checkpoint_path, model, optimizer, scheduler, epoch)
    return losses


total_epochs = pick(full=12, quick=2)
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
# ### Exercise 6 · `resume`
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
resume = lab06.check_resume(resume, rng_state)

# %% [markdown]
# ## 6 · The best checkpoint, not the last
#
# The last epoch is not always the best: the model may start to overfit, or the validation
# accuracy may wobble from one epoch to the next. So while training we measure the accuracy
# on the validation set after every epoch and save a separate `best.pt` **only when** the
# accuracy beats the best so far. At the end, `best.pt` holds the model you actually want,
# and the last epoch's weights are just the last.
#
# The model we keep here is the start of section 7: we pretrain on digits **0–4** only, and
# later reuse it for digits **5–9**. Two small helpers first: one keeps only some classes of
# a dataset (relabelled 0, 1, …), the other measures the accuracy in `eval()` mode. Section
# 7 feeds this model through a transforms pipeline that *normalizes* every pixel (subtracts
# the mean pixel, divides by the standard deviation), and a model must see the same
# normalization in every dataset, so the pretraining digits are normalized the same way.


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


pixel_mean, pixel_std = train_set.tensors[0].mean().item(), train_set.tensors[0].std().item()
normalize = v2.Normalize(mean=[pixel_mean], std=[pixel_std])  # section 7 explains it


def normalized(dataset):
    """The same digits, every pixel normalized as section 7's transforms will do it."""
    x, y = dataset.tensors
    return TensorDataset(normalize(x.view(-1, 1, 8, 8)).flatten(1), y)


old_classes, new_classes = range(0, 5), range(5, 10)
pretrain_set = normalized(digits_subset(train_set, old_classes))
pretrain_val = normalized(digits_subset(val_set, old_classes))
print(f"digits 0–4: {len(pretrain_set)} for training, {len(pretrain_val)} for validation")

# %% [markdown]
# ### Exercise 7 · keep the best checkpoint
#
# Write `save_if_best(path, model, epoch, val_accuracy, best_accuracy)`, called once after
# every epoch:
#
# * if `val_accuracy` is higher than `best_accuracy` (the best so far), save
#   `{"model": model.state_dict(), "epoch": epoch, "val_accuracy": val_accuracy}` to `path`;
#   otherwise leave the file alone;
# * return the best accuracy so far (the new one if it was better, else the old one), so the
#   next epoch is compared with it.


# %% tags=["exercise"]
def save_if_best(path, model, epoch, val_accuracy, best_accuracy):
    # TODO: save only when val_accuracy beats best_accuracy; return the best accuracy so far
    torch.save({"model": model.state_dict(), "epoch": epoch, "val_accuracy": val_accuracy}, path)
    return val_accuracy


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def save_if_best(path, model, epoch, val_accuracy, best_accuracy):
#     if val_accuracy > best_accuracy:
#         checkpoint = {"model": model.state_dict(), "epoch": epoch, "val_accuracy": val_accuracy}
#         torch.save(checkpoint, path)
#         return val_accuracy
#     return best_accuracy
# ```
#
# </details>

# %%
save_if_best = lab06.check_save_if_best(save_if_best)

# %% [markdown]
# The pretraining below calls your `save_if_best` after every epoch. It builds a fresh model
# each time, so running the cell again repeats the same run and writes `best.pt` anew.

# %%
model, optimizer, _, _ = fresh_run(seed=0, num_classes=len(old_classes))
loader = DataLoader(pretrain_set, batch_size=64, shuffle=True)
best_path, best_accuracy, pretrain_accuracies = folder / "best.pt", 0.0, []
for epoch in range(pick(full=10, quick=2)):
    train_one_epoch(model, loader, optimizer)
    pretrain_accuracies.append(accuracy(model, pretrain_val))
    best_accuracy = save_if_best(best_path, model, epoch, pretrain_accuracies[-1], best_accuracy)

print("validation accuracy per epoch:", " ".join(f"{a:.1%}" for a in pretrain_accuracies))
best = torch.load(best_path, map_location=device, weights_only=True)
print(f"best.pt holds epoch {best['epoch'] + 1}: {best['val_accuracy']:.1%}")
print(f"the last epoch, {len(pretrain_accuracies)}: {pretrain_accuracies[-1]:.1%}")

# %% [markdown]
# With a strict `>`, `best.pt` holds the first epoch that reached the highest accuracy: later
# epochs that only equal it, or fall below it, do not replace it. When the last epoch is the
# best, the two are the same model; when it is not, `best.pt` is the one to keep.
#
# ## 7 · Reusing a model for a new task
#
# **Transfer learning.** A trained body has learned useful features (strokes, curves, loops).
# A new, related task with little data can start from that body instead of from random
# weights: keep (**freeze**) the body, **replace the head** with a new one for the new
# classes, and train only the head (**fine-tune**). Freezing means `requires_grad=False`:
# autograd computes no gradient for those parameters, so the optimizer never changes them.
# It does not freeze BatchNorm's running averages: they are buffers, and in `train()` mode
# they go on following the batches (here, the new digits). Call `model.body.eval()` as well
# where they must stay as they were.
#
# Our new task: learn digits **5–9** from only a handful of examples per class.
#
# **A transforms pipeline.** Pictures usually arrive as 8-bit integers (0–255), height ×
# width, as an image file holds them; our digits are turned back into that form below.
# `torchvision.transforms.v2` turns such a picture into what a model takes, one step after
# the other, and `v2.Compose([...])` chains the steps into one callable:
#
# * `v2.ToImage()`: a NumPy array (or PIL image) becomes a tensor laid out **C × H × W**
#   (1 × 8 × 8 here), still `uint8`;
# * `v2.ToDtype(torch.float32, scale=True)`: float pixels, and `scale=True` divides by 255,
#   so they lie in 0–1 (without it they stay 0–255, only as floats);
# * `v2.RandomAffine(degrees=10, translate=(0.125, 0.125))`: **augmentation**, a new random
#   change every time a picture is read: a rotation of up to 10° and a shift of up to one
#   pixel (1/8 of the width), blending neighbouring pixels (bilinear) where a moved pixel
#   lands between them. With 5 pictures of each digit, the model then sees the same 25
#   pictures a little differently every epoch;
# * `v2.Normalize(mean, std)`: subtracts the mean and divides by the standard deviation,
#   channel by channel, with the mean and standard deviation of the training pixels that
#   section 6 computed (the pretraining was normalized with them too).
#
# The cell runs the first steps on one picture and draws a few random draws of
# `RandomAffine`.


# %%
class DigitPictures(Dataset):
    """Digits as 8-bit pictures (H × W, 0–255) with their labels; `transform` turns each
    picture into the model's input every time it is read."""

    def __init__(self, dataset, transform):
        x, self.labels = dataset.tensors
        self.pictures = (x.view(-1, 8, 8) * 255).round().to(torch.uint8).numpy()
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.transform(self.pictures[index]).flatten(), self.labels[index]


per_class = pick(full=5, quick=5)
five_to_nine = DigitPictures(digits_subset(train_set, new_classes, per_class=per_class), None)
picture = five_to_nine.pictures[0]
print(f"as loaded          : {type(picture).__name__} {picture.dtype}, shape {picture.shape}")
image = v2.ToImage()(picture)
print(f"v2.ToImage()       : {type(image).__name__} {image.dtype}, shape {tuple(image.shape)}")
for scale in (False, True):
    pixels = v2.ToDtype(torch.float32, scale=scale)(image)
    print(
        f"ToDtype(scale={scale!s:5}): {pixels.dtype}, values {pixels.min():.0f}–{pixels.max():.0f}"
    )

augment = v2.RandomAffine(
    degrees=10, translate=(0.125, 0.125), interpolation=v2.InterpolationMode.BILINEAR
)
one_of_each = torch.stack(
    [v2.ToImage()(p) for p in five_to_nine.pictures[::per_class]]
)  # a 5, a 6, …, a 9
draws = 3
lab06.digit_grid(
    {
        "as loaded": one_of_each,
        **{
            f"RandomAffine, draw {i}": torch.stack([augment(image) for image in one_of_each])
            for i in range(1, draws + 1)
        },
    },
    title=f"{len(one_of_each)} fine-tuning digits and {draws} random draws of RandomAffine",
)

# %% [markdown]
# Each draw moves every digit a little differently, and a 5 is still a 5. Augmentation is for
# **training only**: the validation pictures must stay the same, or every evaluation would
# measure the model on other digits.
#
# ### Exercise 8 · compose the pipeline
#
# Write `make_transform(train)` that returns a `v2.Compose` of `ToImage`,
# `ToDtype(torch.float32, scale=True)`, the `RandomAffine` above **only when `train` is
# True**, and `Normalize(mean=[pixel_mean], std=[pixel_std])`. Order matters: `Normalize`
# takes floats, and a random transform needs an image, not a NumPy array.


# %% tags=["exercise"]
def make_transform(train):
    # TODO: ToImage, ToDtype(float32, scale=True), RandomAffine (train only), Normalize
    return v2.Compose([v2.ToImage()])


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def make_transform(train):
#     steps = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
#     if train:
#         steps.append(
#             v2.RandomAffine(
#                 degrees=10, translate=(0.125, 0.125), interpolation=v2.InterpolationMode.BILINEAR
#             )
#         )
#     steps.append(v2.Normalize(mean=[pixel_mean], std=[pixel_std]))
#     return v2.Compose(steps)
# ```
#
# </details>

# %%
make_transform = lab06.check_make_transform(make_transform, pixel_mean, pixel_std)

# %% [markdown]
# The training `Dataset` reads every picture through `make_transform(True)`: the same index
# gives a new version each time it is read, which is the point. The validation pictures go
# through `make_transform(False)` once; they never change, so the result is kept as a
# `TensorDataset`.

# %%
training_pictures = DigitPictures(
    digits_subset(train_set, new_classes, per_class=per_class), make_transform(True)
)
validation_pictures = DigitPictures(digits_subset(val_set, new_classes), make_transform(False))
new_val = TensorDataset(
    torch.stack([pixels for pixels, _ in validation_pictures]), validation_pictures.labels
)
same = torch.equal(training_pictures[0][0], training_pictures[0][0])
print(f"reading training digit 0 twice gives the same input: {same}")
print(
    f"validation: {len(new_val)} digits, pixels from {new_val.tensors[0].min():.2f} "
    f"to {new_val.tensors[0].max():.2f} after Normalize"
)

# %% [markdown]
# Now the recipe: load the best checkpoint, freeze the body, replace the head. A new
# `nn.Linear` assigned to `model.head` is registered automatically (lab 2) and its
# parameters require gradients; the optimizer will get only the parameters that still
# require gradients. A model trained from scratch is the baseline.


# %%
def load_pretrained():
    """The best checkpoint of the 0–4 model, as the starting point for the new task."""
    model = DigitsCNN(num_classes=len(old_classes)).to(device)
    model.load_state_dict(best["model"])
    return model


def frozen_body_new_head():
    model = load_pretrained()
    model.body.requires_grad_(False)  # freeze: no gradients for the body
    model.head = nn.Linear(model.head.in_features, len(new_classes)).to(device)  # new head
    return model


def from_scratch():
    return DigitsCNN(num_classes=len(new_classes)).to(device)


def trainable_share(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"trains {trainable:6,} of {sum(p.numel() for p in model.parameters()):,} parameters"


for name, build in (
    ("pretrained + new head", frozen_body_new_head),
    ("from scratch", from_scratch),
):
    print(f"{name:22} {trainable_share(build())}")

# %% [markdown]
# ### Exercise 9 · prepare a model for fine-tuning
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
# 4,640 of the body's 4,832 weights (16 × 32 × 3 × 3 + 32), so your model trains nearly as
# many parameters as the one from scratch. What it keeps is the pretrained *starting point*.
# In large networks the last block is a small share of the weights, and unfreezing it is
# cheap. The cell after the check fine-tunes the model your function returns, next to the
# two above.


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
prepare_for_finetuning = lab06.check_prepare_for_finetuning(prepare_for_finetuning, DigitsCNN)

# %% [markdown]
# **One run proves little.** Which 25 digits you happen to draw, and the new head's random
# start, move the accuracy as much as the starting weights may. So the comparison repeats
# for several seeds: each seed draws other training digits, another head initialisation and
# another shuffling, the same for every candidate. Then lab 3's rule, written for
# accuracies: compare the **middle halves** of the runs (first to third quartile); one side
# is ahead only when its middle half lies wholly above the other's, otherwise the difference
# is **within the noise**. The three candidates train with Adam on their trainable
# parameters only, reading the training pictures through `make_transform(True)`; each is
# built afresh, so running the cell again repeats the comparison instead of training further.

# %%
candidates = {
    "pretrained: frozen body, new head": frozen_body_new_head,
    "pretrained: last conv + head (yours)": lambda: prepare_for_finetuning(
        load_pretrained(), len(new_classes)
    ).to(device),
    "from scratch": from_scratch,
}
seeds = range(pick(full=5, quick=2))
finetune_epochs = pick(full=15, quick=2)
runs = {name: [] for name in candidates}  # per candidate: one accuracy curve per seed
finetuned = {}  # per candidate: the model of the last seed
for seed in seeds:
    pictures = digits_subset(train_set, new_classes, per_class=per_class, seed=seed)
    loader_data = DigitPictures(pictures, make_transform(True))
    for name, build in candidates.items():
        seed_everything(seed)  # the same new-head initialisation for every candidate
        candidate = build()
        seed_everything(100 + seed)  # the same shuffling and random transforms for all
        trainable = [p for p in candidate.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=3e-3)
        loader = DataLoader(loader_data, batch_size=16, shuffle=True)
        curve = []
        for _ in range(finetune_epochs):
            train_one_epoch(candidate, loader, optimizer)
            curve.append(accuracy(candidate, new_val))
        runs[name].append(curve)
        finetuned[name] = candidate


def accuracy_verdict(runs_a, runs_b):
    """Lab 3's rule for accuracies: ahead or behind only when the middle halves do not meet."""
    a_low, _, a_high = timing.quartiles(runs_a)
    b_low, _, b_high = timing.quartiles(runs_b)
    return "ahead" if a_low > b_high else "behind" if a_high < b_low else "within the noise"


lab06.seed_curves(
    runs,
    title=f"Digits 5–9 from {per_class} pictures per class, {len(seeds)} seeds",
    ylabel="validation accuracy on digits 5–9",
)
for epoch in sorted({0, min(3, finetune_epochs - 1), finetune_epochs - 1}):
    scratch = [curve[epoch] for curve in runs["from scratch"]]
    for name, curves_of_name in runs.items():
        accuracies = [curve[epoch] for curve in curves_of_name]
        low, median, high = timing.quartiles(accuracies)
        versus = (
            ""
            if name == "from scratch"
            else f"   vs from scratch: {accuracy_verdict(accuracies, scratch)}"
        )
        print(
            f"after epoch {epoch + 1:2}  {name:37} median {median:6.1%} "
            f"(middle half {low:6.1%}–{high:6.1%}){versus}"
        )
print(
    f"{len(new_val)} validation digits: one digit more or less moves the accuracy by "
    f"{1 / len(new_val):.1%}"
)

# %% [markdown]
# Read the verdicts, not only the lines. What pretrained weights *can* buy is a **head
# start**: if the features learned on 0–4 (strokes, loops) already separate 5–9, a
# pretrained model has less to learn and runs ahead in the first epochs, so less compute
# for the same accuracy. "Ahead" is printed only where the middle halves of the seeds do not
# overlap; the shaded bands show how far the seeds spread. The early epochs are where a
# head start shows, if there is one. By the last epoch the model from scratch has had time
# to learn features for these very digits, while a frozen body keeps the features it learned
# for 0–4, so there it may tie or even lead: a small CNN learns 8×8 digits from 25 pictures
# almost as well from scratch, and the seed (which 25 digits, which head) moves the accuracy
# by as much as the starting weights do. Where the printout says "within the noise", that is
# the honest answer, and a single run could have told either story. This toy problem cannot
# show why almost every practical vision or language model starts from pretrained weights:
# a large network pretrained on millions of images holds far more than a small task could
# teach it, and there the advantage is large and lasts.
#
# ## 8 · Shipping a model: `torch.export` and ONNX
#
# A checkpoint is for **PyTorch code that goes on training**: it holds `state_dict`s, and to
# use it you need the `DigitsCNN` class and your training code. A model that is **deployed**
# (in a server, a phone app, a C++ program) should not need either. Two formats hold the
# model's *computation* itself, as a graph of operations, next to its weights:
#
# * **`torch.export.export(model, example_inputs)`** runs the model once on example inputs,
#   records every operation it performs, and returns an `ExportedProgram`. Saved with
#   `torch.export.save` as a `.pt2` file, it can be loaded without the class
#   (`torch.export.load`), compiled ahead of time, or run from C++. By default every size of
#   the example is fixed; `dynamic_shapes` says which dimension may vary (here the batch).
# * **ONNX** is a file format that many runtimes read (ONNX Runtime, TensorRT, OpenVINO, web
#   browsers). `torch.onnx.export(model, (example,), dynamo=True)` builds it from the same
#   exported graph (with the `onnx` and `onnxscript` packages), and **ONNX Runtime**
#   (`onnxruntime`) runs it without PyTorch.
#
# We export the fine-tuned model with the frozen body, in `eval()` mode, since that is how it
# would run when deployed: Dropout passes its input through and BatchNorm uses its running
# averages.

# %%
deployed = finetuned["pretrained: frozen body, new head"].eval()
example = new_val.tensors[0][:2].to(device)  # a batch of 2 digits, as the model takes it
exported = torch.export.export(deployed, (example,))
for node in exported.graph.nodes:
    if node.op == "call_function":
        # the arguments that are not earlier nodes of the graph are the operation's settings
        settings = [arg for arg in node.args if not isinstance(arg, torch.fx.Node)]
        shape = " × ".join(str(size) for size in node.meta["val"].shape)
        print(f"{str(node.target):42} {str(settings)[:28]:28} -> {shape}")

export_path = folder / "digits_5_to_9.pt2"
torch.export.save(exported, export_path)
reloaded = torch.export.load(export_path).module()
with torch.no_grad():
    same = torch.allclose(reloaded(example), deployed(example))
print(
    f"{export_path.name}: {export_path.stat().st_size / 1024:.0f} KiB; the reloaded program "
    f"gives the model's scores: {same}"
)
digits = new_val.tensors[0].to(device)  # every validation digit
try:
    reloaded(digits[:7])
except Exception as error:
    print("a batch of 7 digits ->", str(error).strip().splitlines()[0][:90])

# %% [markdown]
# The graph is the lab's `DigitsCNN` written out as operations: `aten` is PyTorch's library of
# tensor operations. Each line is one operation, its settings (for `conv2d` the stride and
# the padding, for `max_pool2d` the window and the stride) and the shape of its output.
# `batch_norm` and `dropout` were recorded for inference (`batch_norm`'s first `False` is
# its `training` flag, `dropout`'s `False` its `train` flag): BatchNorm uses its running
# averages and Dropout passes its input through, as in `eval()`. The `.pt2` file
# needs neither `DigitsCNN` nor this notebook to run.
#
# Every size is fixed, the batch of 2 too: the program refuses a batch of 7. To let the batch
# vary, name that dimension: `dynamic_shapes={"x": {0: torch.export.Dim("batch")}}` (`x` is
# the name of `forward`'s argument, 0 its first dimension). The example batch must then hold
# at least 2 samples: with 1, export treats the size as fixed.
#
# ### Exercise 10 · export for serving
#
# Write `export_for_serving(model, example)` that returns an `ExportedProgram` of `model` as
# it runs when deployed, for batches of **any size**. A model fresh from training is in
# `train()` mode: the check hands yours one like that, and compares the program's scores
# with the model's in `eval()` mode, for the example's batch size and another one.


# %% tags=["exercise"]
def export_for_serving(model, example):
    # TODO: the model as it runs when deployed, for batches of any size
    return torch.export.export(model, (example,))


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def export_for_serving(model, example):
#     model.eval()
#     batch = torch.export.Dim("batch")
#     return torch.export.export(model, (example,), dynamic_shapes={"x": {0: batch}})
# ```
#
# </details>

# %%
export_for_serving = lab06.check_export_for_serving(export_for_serving, deployed, digits)

# %% [markdown]
# **ONNX.** `torch.onnx.export(..., dynamo=True)` exports the same way and returns an
# `ONNXProgram`, whose `save` writes the `.onnx` file; `dynamic_shapes` works as above.
# ONNX Runtime then loads the file into an `InferenceSession` and runs it on NumPy arrays:
# `session.run(None, {input_name: array})` returns the list of outputs. The model is
# exported from the CPU, where ONNX Runtime runs here. The export prints its progress; the
# cell keeps that out of the way and prints its own summary.

# %%
cpu_model = copy.deepcopy(deployed).cpu()
onnx_path = folder / "digits_5_to_9.onnx"
exporter_says = io.StringIO()  # its progress lines and warnings, kept out of the way
with contextlib.redirect_stdout(exporter_says), contextlib.redirect_stderr(exporter_says):
    onnx_program = torch.onnx.export(
        cpu_model, (example.cpu(),), dynamo=True, dynamic_shapes={"x": {0: "batch"}}
    )
onnx_program.save(onnx_path)
session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
inputs = [f"{i.name} {i.type} {i.shape}" for i in session.get_inputs()]
print(f"{onnx_path.name}: {onnx_path.stat().st_size / 1024:.0f} KiB, inputs: {inputs}")
(onnx_scores_all,) = session.run(None, {"x": digits.cpu().numpy()})
with torch.no_grad():
    torch_scores = cpu_model(digits.cpu())
difference = (torch.from_numpy(onnx_scores_all) - torch_scores).abs().max().item()
agree = (torch.from_numpy(onnx_scores_all).argmax(1) == torch_scores.argmax(1)).float().mean()
print(f"ONNX Runtime vs PyTorch on {len(digits)} digits: largest difference {difference:.1e}")
print(f"same predicted digit: {agree:.1%}")

# %% [markdown]
# The scores differ in the last digits only (the two libraries add in different orders), and
# the predictions agree. That comparison is what to run after every export.
#
# ### Exercise 11 · run an ONNX file (if you have time)
#
# Write `onnx_scores(path, digits)` that runs the ONNX file at `path` on `digits` (a float32
# tensor N × 64, maybe on the GPU) with ONNX Runtime and returns the scores as a **tensor**.
# ONNX Runtime takes NumPy arrays on the CPU, of the dtype the file names
# (`session.get_inputs()` says which), and its input name comes from there as well.


# %% tags=["exercise", "stretch"]
def onnx_scores(path, digits):
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    # TODO: run the session on `digits`; return the scores as a tensor
    return session


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def onnx_scores(path, digits):
#     session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
#     name = session.get_inputs()[0].name
#     (scores,) = session.run(None, {name: digits.cpu().numpy()})
#     return torch.from_numpy(scores)
# ```
#
# </details>

# %%
onnx_scores = lab06.check_onnx_scores(onnx_scores, onnx_path, cpu_model, digits)

# %% [markdown]
# ## Recap
#
# * Images are **N × C × H × W** tensors. `nn.Conv2d` slides small filters over them (each
#   side becomes `(size + 2 × padding − kernel) // stride + 1`); `nn.MaxPool2d(2)` halves
#   height and width; `nn.BatchNorm2d(channels)` normalizes each channel, with learned
#   weight and bias, and running averages kept as buffers for `eval()`.
# * A **`state_dict`** maps parameter and buffer names to tensors. Save it, not the whole
#   model: a pickled model only remembers *where* its class was, breaks when you refactor,
#   and pickles can run code when loaded.
# * Load with **`torch.load(path, weights_only=True)`**; allow a trusted class of your own with
#   `torch.serialization.safe_globals([...])`; choose the device with **`map_location`**.
# * A **complete checkpoint** holds model, optimizer, scheduler, epoch and RNG state. With all
#   five, a resumed run continues the original curve exactly; with the weights alone it does
#   not.
# * Resume with the **next** epoch: the saved epoch had already finished.
# * Keep a separate **best checkpoint**: save only when the validation accuracy beats the best
#   so far.
# * **Transfer learning**: load a trained body, freeze it (`requires_grad_(False)`), replace the
#   head, give the optimizer only the trainable parameters, fine-tune. Compare with a model
#   from scratch over several seeds: "ahead" only when the middle halves do not overlap.
# * A **transforms pipeline**: `v2.Compose([ToImage(), ToDtype(torch.float32, scale=True),
#   RandomAffine(...), Normalize(...)])`, random augmentation for training only, the same
#   normalization for every dataset the model sees.
# * A checkpoint is for resuming in PyTorch; **`torch.export`** (a `.pt2` file; `eval()`
#   first, `dynamic_shapes` for the batch) and **ONNX** (run by ONNX Runtime, compared with
#   PyTorch's scores) hold the computation itself, for deploying a model without its Python
#   code.
