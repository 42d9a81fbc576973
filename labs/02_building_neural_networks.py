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
# # Lab 2 · Building neural networks with `nn.Module`
#
# In lab 1 you trained a model built from a single `nn.Linear`. Real models have many layers,
# and PyTorch organises them with one idea: **a model is a class that inherits from
# `nn.Module`**. This lab explains every line of such a class, and *why* it is written that
# way, with pictures drawn from the real objects.
#
# **By the end of this lab you can**
# 1. say why a model is a class and not a function;
# 2. write an `nn.Module` subclass: `__init__`, `super().__init__()`, layers, `forward`;
# 3. explain what *registering* a layer means, and spot a layer that is not registered;
# 4. explain what really happens when you write `model(x)`, and what `backward()` fills in;
# 5. choose between `nn.Sequential` and a subclass, and compose modules from modules;
# 6. write a `Dataset` and feed it through a `DataLoader` (batching, shuffling, workers).
#
# Every exercise is followed by a check cell that says what is wrong or prints a ✅.
#
# **After a kernel restart** (*Kernel › Restart*, or a crash when memory ran out) your edits
# are still here but every variable is gone: click the cell you were working on and choose
# *Run › Run All Above Selected Cell*, then carry on from there.

# %%
from workshop_labs import setup

device = setup()

# %%
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from workshop_labs import data, diagrams, lab02, plots, runtime

features, labels = data.digits()
print(f"{len(labels):,} digits, each {features.shape[1]} pixels; labels 0–9")

# %% [markdown]
# ## 1 · Why a class, not a function?
#
# A model is two things: **numbers it learns** (weights, biases) and **a computation** that
# uses them. You *could* write the computation as a function and pass the numbers around:

# %%
w1 = torch.randn(64, 32, requires_grad=True)
b1 = torch.zeros(32, requires_grad=True)
w2 = torch.randn(32, 10, requires_grad=True)
b2 = torch.zeros(10, requires_grad=True)


def predict(x, w1, b1, w2, b2):
    return torch.relu(x @ w1 + b1) @ w2 + b2


print(predict(features[:4], w1, b1, w2, b2).shape)

# %% [markdown]
# It works, but *you* now own the bookkeeping: every parameter must be listed in the call, in
# the optimizer, when saving, when moving to the GPU. With ten layers that is forty tensors
# to keep in sync by hand.
#
# A **class** keeps the numbers (*state*) and the computation (*behaviour*) together. And by
# inheriting from `nn.Module`, the class gets the bookkeeping for free: `parameters()` for
# the optimizer, `.to(device)`, `state_dict()` for saving, `train()`/`eval()`, hooks, and a
# readable `print(model)`.
#
# ## 2 · Anatomy of a model class
#
# Here is the model we will use for the whole lab: 64 pixels in, 10 scores (one per digit) out.


# %%
class DigitClassifier(nn.Module):
    """A two-layer network for 8×8 digits."""

    def __init__(self, hidden=32):
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        x = self.act(self.fc1(x))
        return self.fc2(x)


model = DigitClassifier()
model

# %% [markdown]
# Each line has one job. The picture colours the source of the class by role:

# %%
diagrams.model_anatomy(DigitClassifier)

# %% [markdown]
# - `class DigitClassifier(nn.Module)`: **inherit**; the class *is an* `nn.Module`.
# - `__init__` runs **once**, when you write `DigitClassifier()`: it *builds* the layers.
# - `super().__init__()` runs `nn.Module`'s own `__init__` first. That creates the internal
#   dictionaries where the module keeps track of its layers and parameters.
# - `self.fc1 = nn.Linear(...)` **registers** a layer: `nn.Module` notices the assignment and
#   files the layer under the name `fc1`.
# - `forward` runs **every time** data goes through: it *uses* the layers.
#
# ### What breaks without `super().__init__()`?
#
# Let's forget it on purpose and read the real error:


# %%
class Forgetful(nn.Module):
    def __init__(self):
        self.fc = nn.Linear(64, 10)  # no super().__init__() above this line

    def forward(self, x):
        return self.fc(x)


try:
    Forgetful()
except AttributeError as error:
    print(f"AttributeError: {error}")

# %% [markdown]
# `nn.Module` replaces plain attribute assignment (`__setattr__`): when you assign a layer,
# it stores it in the dictionary `self._modules`. That dictionary is created by
# `nn.Module.__init__`; without `super().__init__()` it does not exist yet, hence *"cannot
# assign module before Module.__init__() call"*. The dictionary is really there:

# %%
print("registered modules:", list(model._modules))
print("in the plain __dict__? ", "fc1" in model.__dict__)

# %% [markdown]
# ### Exercise 1 · a class that works
#
# `TwoLayerNet` should be `Linear(64, 32)` → `ReLU` → `Linear(32, 10)`. It has one bug that
# stops it from being created at all. Fix it.


# %% tags=["exercise"]
class TwoLayerNet(nn.Module):
    def __init__(self):
        # TODO: something must happen before the layers are assigned
        self.fc1 = nn.Linear(64, 32)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# class TwoLayerNet(nn.Module):
#     def __init__(self):
#         super().__init__()
#         self.fc1 = nn.Linear(64, 32)
#         self.act = nn.ReLU()
#         self.fc2 = nn.Linear(32, 10)
#
#     def forward(self, x):
#         return self.fc2(self.act(self.fc1(x)))
# ```
#
# </details>

# %%
lab02.check_two_layer_net(TwoLayerNet)

# %% [markdown]
# ## 3 · Registering layers: what `parameters()` sees
#
# Registration is what lets `nn.Module` find every learnable tensor. Ask the model:

# %%
for name, parameter in model.named_parameters():
    print(f"{name:12} {tuple(parameter.shape)!s:10} {parameter.numel():6,} numbers")
print("total:", sum(p.numel() for p in model.parameters()))

# %% [markdown]
# `named_modules()` walks the tree of modules (the model itself is the one with the empty name):

# %%
for name, module in model.named_modules():
    print(f"{name or '(the model)':12} {type(module).__name__}")

# %% [markdown]
# ### The trap: layers in a plain Python list
#
# To build a variable number of layers, it is tempting to keep them in a list. `nn.Module`
# only registers *modules* assigned to `self`, and a `list` is not a module, so the layers
# inside it are invisible:


# %%
class ListNet(nn.Module):
    def __init__(self, depth):
        super().__init__()
        self.blocks = [nn.Linear(64, 64) for _ in range(depth)]  # a plain list!


class ModuleListNet(nn.Module):
    def __init__(self, depth):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(64, 64) for _ in range(depth)])


hidden = {"plain list": ListNet(3), "nn.ModuleList": ModuleListNet(3)}
seen = {name: sum(p.numel() for p in net.parameters()) for name, net in hidden.items()}
plots.bars(
    seen, title="Parameters the optimizer can see (3 layers of 64 → 64)", ylabel="parameters"
)

# %% [markdown]
# The list version trains *nothing* (the optimizer gets no parameters), `.to(device)` leaves
# its layers behind, and `state_dict()` saves none of them. No error is raised: that is why
# this bug is dangerous. `nn.ModuleList` (and `nn.ModuleDict`) are containers that *are*
# modules, so everything inside them is registered.

# %%
print("plain list    state_dict keys:", list(hidden["plain list"].state_dict()))
print("nn.ModuleList state_dict keys:", list(hidden["nn.ModuleList"].state_dict())[:4], "...")

# %% [markdown]
# ### Exercise 2 · register every layer
#
# `DeepNet(depth)` is `Linear(64, 32)`, then `depth` hidden `Linear(32, 32)` layers with ReLU,
# then `Linear(32, 10)`. It runs, but trains badly. Find out why and fix it.


# %% tags=["exercise"]
class DeepNet(nn.Module):
    def __init__(self, depth):
        super().__init__()
        self.input = nn.Linear(64, 32)
        self.hidden = [nn.Linear(32, 32) for _ in range(depth)]  # TODO
        self.output = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.input(x))
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.output(x)


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# class DeepNet(nn.Module):
#     def __init__(self, depth):
#         super().__init__()
#         self.input = nn.Linear(64, 32)
#         self.hidden = nn.ModuleList([nn.Linear(32, 32) for _ in range(depth)])
#         self.output = nn.Linear(32, 10)
#
#     def forward(self, x):
#         x = torch.relu(self.input(x))
#         for layer in self.hidden:
#             x = torch.relu(layer(x))
#         return self.output(x)
# ```
#
# </details>

# %%
lab02.check_deep_net(DeepNet)

# %% [markdown]
# ## 4 · `forward`, and what `model(x)` really does
#
# You never call `model.forward(x)` yourself: you call `model(x)`. That runs
# `nn.Module.__call__`, which runs any **hooks** registered on the module, then your `forward`,
# then the hooks that inspect the output. Each layer inside is itself called the same way.
# Here is that sequence, recorded from a real call with hooks:

# %%
x = features[:16]
lab02.call_flow(model, x)

# %% [markdown]
# Every arrow is a call written as `module(x)`, never `.forward(x)`. What goes wrong if you
# call `forward` yourself? Register a hook that counts, then call the model both ways:

# %%
hook_calls = []
handle = model.register_forward_hook(lambda module, args, output: hook_calls.append(output.shape))
model(x)
print(f"after model(x):         the hook ran {len(hook_calls)} time")
model.forward(x)
print(f"after model.forward(x): the hook ran {len(hook_calls)} time (forward skipped it)")
handle.remove()

# %% [markdown]
# `model.forward(x)` computes the same numbers but skips the hooks, so everything built on
# hooks silently misses that call: the diagrams in this course, model-summary tools such as
# `torchinfo`, and PyTorch's own `torch.nn.utils.prune`, whose pre-hook applies the pruning
# mask before each call. (`torch.profiler`, which lab 3 uses, is not one of them: it records
# the operations themselves, hooks or not.)
#
# Hooks also let us draw the whole network with the shape of the data before and after every
# layer, and the values that come out for the first digit (blue negative, red positive;
# notice how ReLU turns every negative value into 0):

# %%
diagrams.network_diagram(model, x)

# %% [markdown]
# The same information as a table:

# %%
plots.table(diagrams.layer_table(model, x), title="DigitClassifier, layer by layer")

# %% [markdown]
# ### Exercise 3 · a forward that fits the data
#
# `ImageClassifier` receives the digits as **images** of shape `(batch, 8, 8)`. Its layers are
# correct, but `forward` fails. Run the check to read the error, then fix `forward` so it
# returns logits of shape `(batch, 10)` for any batch size. (Hint: `nn.Flatten()` keeps the
# batch dimension and flattens the rest.)


# %% tags=["exercise"]
class ImageClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64, 32)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        # TODO: the images must become vectors of 64 pixels first
        return self.fc2(self.act(self.fc1(x)))


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# class ImageClassifier(nn.Module):
#     def __init__(self):
#         super().__init__()
#         self.flatten = nn.Flatten()
#         self.fc1 = nn.Linear(64, 32)
#         self.act = nn.ReLU()
#         self.fc2 = nn.Linear(32, 10)
#
#     def forward(self, x):
#         x = self.flatten(x)
#         return self.fc2(self.act(self.fc1(x)))
# ```
#
# </details>

# %%
lab02.check_image_classifier(ImageClassifier)

# %% [markdown]
# ## 5 · `backward`: gradients land on registered parameters
#
# After `loss.backward()`, every registered parameter holds its gradient in `.grad`, which is
# exactly what the optimizer reads. Gradients **add up** in `.grad` until you reset them, which
# is why a training step starts with `optimizer.zero_grad()`:

# %%
loss_fn = nn.CrossEntropyLoss()
model.zero_grad()
loss_fn(model(x), labels[:16]).backward()
once = model.fc1.weight.grad.clone()
loss_fn(model(x), labels[:16]).backward()
twice = model.fc1.weight.grad
print("fc1.weight.grad shape:", tuple(once.shape), "(the same shape as the weight)")
print("after a second backward, grad / first grad =", round((twice / once).nanmean().item(), 3))

# %% [markdown]
# ## 6 · `nn.Sequential` or a subclass? Composing modules
#
# When data flows straight through a chain of layers, `nn.Sequential` builds the model without
# writing a class; its `forward` simply calls the layers in order:

# %%
sequential = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
print(sequential)

# %% [markdown]
# Write a subclass when `forward` needs more than a chain: a branch, a skip connection, two
# inputs, a loop, a printout. Modules also **compose**: a module can hold other modules,
# including your own. Here a `ResidualBlock` adds its input back to its output (a skip
# connection `Sequential` cannot express), and `ResidualNet` stacks them:


# %%
class ResidualBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.layer = nn.Sequential(nn.Linear(width, width), nn.ReLU())

    def forward(self, x):
        return x + self.layer(x)


class ResidualNet(nn.Module):
    def __init__(self, width=48, blocks=2):
        super().__init__()
        self.stem = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU())
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


composed = ResidualNet()
print(composed)

# %% [markdown]
# `print` shows the tree; `named_modules()` gives every node a dotted name, which is also the
# name under which its parameters are saved:

# %%
print([name for name, _ in composed.named_modules()][:8], "...")
print(list(composed.state_dict())[:4], "...")

# %% [markdown]
# ## 7 · `Dataset` and `DataLoader`
#
# Training takes the data in small **batches**. PyTorch splits this job in two:
#
# - a **`Dataset`** answers two questions: *how many samples?* (`__len__`) and *what is
#   sample `i`?* (`__getitem__`, returning for instance `(image, label)`);
# - a **`DataLoader`** asks the dataset for samples and stacks them into batches. It can
#   **shuffle** the order every epoch (so the model does not learn the order) and load in
#   parallel **worker** processes.
#
# ### Exercise 4 · your own Dataset
#
# Complete `DigitImages`: it holds the digit features `(N, 64)` and labels `(N,)`; item `i`
# must be `(the 8×8 image of sample i, its label)`.


# %% tags=["exercise"]
class DigitImages(Dataset):
    def __init__(self, features, labels):
        self.features = features
        self.labels = labels

    def __len__(self):
        # TODO: the number of samples
        return 0

    def __getitem__(self, index):
        # TODO: (the image of sample `index` as an 8×8 tensor, its label)
        return None


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# class DigitImages(Dataset):
#     def __init__(self, features, labels):
#         self.features = features
#         self.labels = labels
#
#     def __len__(self):
#         return len(self.labels)
#
#     def __getitem__(self, index):
#         return self.features[index].view(8, 8), self.labels[index]
# ```
#
# </details>

# %%
lab02.check_digit_images(DigitImages, features, labels)

# %% [markdown]
# The course's `data.digits_split()` gives ready-made train and validation datasets. Let's
# put the training set in a shuffling `DataLoader` and look at which samples land in which
# batch (colour and number = position in the dataset):

# %%
train_set, val_set = data.digits_split()
loader = DataLoader(
    train_set, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0)
)
diagrams.dataloader_batches(loader, n_batches=3)

# %% [markdown]
# Without shuffling, batch 0 is always samples 0–15. With shuffling, every epoch draws a new
# random order, yet every sample still appears exactly once per epoch. Each batch stacks 16
# samples of shape `(64,)` into one tensor of shape `(16, 64)`:

# %%
xb, yb = next(iter(loader))
print("images:", tuple(xb.shape), xb.dtype, "  labels:", tuple(yb.shape), yb.dtype)

# %% [markdown]
# **Workers.** With `num_workers=2`, two extra processes prepare batches while the main
# process trains. That pays off when loading a sample is slow (reading and decoding image
# files). Our samples are already tensors in memory, so starting the workers costs more than
# it saves. Measure before you decide:


# %%
def one_epoch_seconds(num_workers):
    loader = DataLoader(train_set, batch_size=64, shuffle=True, num_workers=num_workers)
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


for workers in (0, 2):
    print(f"num_workers={workers}: one epoch in {one_epoch_seconds(workers) * 1000:.0f} ms")

# %% [markdown]
# ### Exercise 5 · one epoch over a DataLoader
#
# Write `train_epoch`: for every batch of `loader` do one training step (the five lines from
# lab 1), and return the **mean** of the batch losses as a Python float.


# %% tags=["exercise"]
def train_epoch(model, loader, optimizer, loss_fn):
    total = 0.0
    for xb, yb in loader:
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item()
    # TODO: one line is missing above, and the return value is not the mean yet
    return total


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def train_epoch(model, loader, optimizer, loss_fn):
#     total = 0.0
#     for xb, yb in loader:
#         optimizer.zero_grad()
#         loss = loss_fn(model(xb), yb)
#         loss.backward()
#         optimizer.step()
#         total += loss.item()
#     return total / len(loader)
# ```
#
# </details>

# %%
lab02.check_train_epoch(train_epoch)

# %% [markdown]
# ## 8 · Everything together
#
# A `Dataset`, two `DataLoader`s, a composed model moved to the device, and an epoch loop
# (written here in full, so this cell does not depend on your exercise answers).

# %%
torch.manual_seed(0)
net = ResidualNet().to(device)
optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
train_loader, val_loader = data.digits_loaders(batch_size=64)
history = {"train loss": [], "validation loss": []}

for _ in runtime.progress(range(runtime.pick(full=40, quick=3)), desc="epochs"):
    net.train()
    total = 0.0
    for xb, yb in train_loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        loss = loss_fn(net(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item()
    history["train loss"].append(total / len(train_loader))

    net.eval()
    val_total = 0.0
    with torch.no_grad():
        for xb, yb in val_loader:
            val_total += loss_fn(net(xb.to(device)), yb.to(device)).item() * len(yb)
    history["validation loss"].append(val_total / len(val_set))

plots.curves(history, title="ResidualNet on the digits", xlabel="epoch", ylabel="loss")

# %%
net.eval()
with torch.no_grad():
    correct = sum(
        (net(xb.to(device)).argmax(1) == yb.to(device)).sum().item() for xb, yb in val_loader
    )
print(f"validation accuracy: {correct / len(val_set):.1%}")

# %% [markdown]
# ## Recap
#
# - A model is a **class** so that its parameters and its computation live together, and
#   inheriting from **`nn.Module`** brings the bookkeeping: `parameters()`, `.to()`,
#   `state_dict()`, `train()`/`eval()`, hooks.
# - **`super().__init__()`** first: it creates the registries that layer assignment fills.
# - Assigning a module to `self` **registers** it; layers in a plain `list` are invisible, so
#   use **`nn.ModuleList`** / **`nn.ModuleDict`**.
# - **`model(x)`** goes through `__call__` (hooks) into **`forward`**; never call `forward`
#   directly. **`backward()`** fills `.grad` of registered parameters, and `.grad` adds up
#   until `zero_grad()`.
# - **`nn.Sequential`** for a straight chain; a **subclass** for anything else; modules
#   **compose** into trees with dotted names.
# - A **`Dataset`** says how many samples and what sample `i` is; a **`DataLoader`** batches,
#   shuffles and can load in parallel workers.
#
# Next, lab 3 measures how fast all this runs, and how to make it faster.
