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
# # Lab 1 · Intro to PyTorch
#
# You know Python. This lab gives you the four ideas everything else in PyTorch is built on,
# and ends with a network you train yourself on real handwritten digits.
#
# **By the end of this lab you can**
# 1. create tensors and say what their **shape**, **dtype** and **device** are;
# 2. predict the shape of `a + b` when `a` and `b` have different shapes (**broadcasting**);
# 3. move data between NumPy and PyTorch, and know when the two **share memory**;
# 4. let **autograd** compute gradients, and read the computational graph it records;
# 5. write a **training loop** by hand and train a first tiny network on the digits.
#
# Every exercise is followed by a check cell: run it, and it tells you what is wrong or prints
# a ✅. Ask your instructor if you are stuck; the solutions are hidden under *Solution*.
#
# **After a kernel restart** (*Kernel › Restart*, or a crash when memory ran out) your edits
# are still here but every variable is gone: click the cell you were working on and choose
# *Run › Run All Above Selected Cell*, then carry on from there.

# %%
from workshop_labs import setup

device = setup()

# %% [markdown]
# `setup()` seeded every random number generator (so your numbers match your neighbour's)
# and picked the **device**: a GPU when this machine has one, otherwise the CPU. We import
# the rest of what we need now.

# %%
import numpy as np
import torch
from torch import nn

from workshop_labs import autograd_diagram, data, diagrams, lab01, plots, runtime

# %% [markdown]
# ## 1 · Tensors: shape, dtype, device
#
# A **tensor** is PyTorch's array: a grid of numbers with any number of dimensions. An image
# batch, a model's weights, a loss value: all tensors. Every tensor carries three facts, and
# most PyTorch errors you will ever see are a mismatch in one of them:
#
# | fact | question it answers | example |
# | --- | --- | --- |
# | `shape` | how many numbers along each dimension? | `(32, 64)`: 32 images of 64 pixels |
# | `dtype` | what kind of number is each element? | `torch.float32`, `torch.int64` |
# | `device` | in which memory does it live? | `cpu`, `cuda:0` (a GPU) |
#
# Why does PyTorch care so much? Shape decides which operations make sense, dtype decides
# speed, memory and precision, and a GPU can only compute on data that is in *its* memory.

# %%
scalar = torch.tensor(3.5)
vector = torch.tensor([1, 2, 3])
matrix = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])

for name, t in {"scalar": scalar, "vector": vector, "matrix": matrix}.items():
    print(f"{name:>6}: shape={tuple(t.shape)!s:<7} dtype={t.dtype}  device={t.device}")

# %% [markdown]
# Python integers became `torch.int64` and Python floats `torch.float32`: those are the two
# defaults you will meet most. Usually you don't type numbers in: *factory functions* make
# tensors of a given shape.

# %%
print(torch.zeros(2, 3))  # all zeros, shape (2, 3)
print(torch.ones(2, 3, dtype=torch.int64))  # choose the dtype explicitly
print(torch.arange(6))  # 0, 1, ..., 5 like range()
print(torch.rand(2, 3))  # uniform random numbers in [0, 1)
print(torch.randn(2, 3))  # random numbers from a bell curve around 0

# %% [markdown]
# **Changing shape** does not change the numbers, only how they are grouped. `reshape` fills
# the new shape row by row; `.T` (transpose) swaps rows and columns; `unsqueeze` adds a
# dimension of size 1, which will matter for broadcasting below. The picture is drawn from
# the tensors themselves:

# %%
numbers = torch.arange(12)
lab01.tensor_grids(
    {
        "numbers": numbers,
        "numbers.reshape(3, 4)": numbers.reshape(3, 4),
        "numbers.reshape(4, 3).T": numbers.reshape(4, 3).T,
        "numbers[:4].unsqueeze(1)": numbers[:4].unsqueeze(1),
    },
    title="Same numbers, different shapes",
)

# %% [markdown]
# **Changing dtype and device** both use `.to(...)`. It returns a converted tensor and leaves
# the original alone, so assign the result (`x = x.to(device)`); if nothing needs to change,
# it returns the tensor itself without copying. Operations need all their inputs on the
# same device: mixing a CPU tensor with a GPU tensor raises
# `Expected all tensors to be on the same device`.

# %%
pixels = torch.tensor([0, 8, 16])
print(pixels.dtype, "→", pixels.to(torch.float32).dtype)  # int64 → float32
print(pixels.float() / 16)  # .float() is shorthand for .to(torch.float32)
on_device = pixels.to(device)
print("on_device lives on", on_device.device)

# %% [markdown]
# ### Exercise 1 · a batch of images
#
# Networks eat **batches**: many examples stacked along the first dimension. Create `batch`:
# 32 random "images" of 64 pixels each (shape `(32, 64)`), random numbers uniform in `[0, 1)`,
# dtype `float32`, on `device`.

# %% tags=["exercise"]
# TODO: a float32 tensor of uniform random numbers, shape (32, 64), on `device`
batch = None

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# batch = torch.rand(32, 64, device=device)
# ```
#
# Creating it directly on the device (`device=device`) avoids a copy;
# `torch.rand(32, 64).to(device)` is also correct.
#
# </details>

# %%
lab01.check_batch(batch, device)

# %% [markdown]
# ## 2 · Operations and broadcasting
#
# Arithmetic on tensors works **element by element**, without Python loops: `a + b`, `a * b`,
# `a / b`, `a ** 2`. Matrix multiplication has its own operator, `@`. Reductions such as
# `sum`, `mean` and `max` take a `dim`: the dimension that is *summed away*.

# %%
m = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
print("m * 10 =\n", m * 10)
print("m @ m.T =\n", m @ m.T)  # (2, 3) @ (3, 2) → (2, 2)
print("m.sum()            =", m.sum())
print("m.sum(dim=0)       =", m.sum(dim=0), "← down each column: shape (3,)")
print("m.sum(dim=1)       =", m.sum(dim=1), "← across each row:  shape (2,)")
print("m.sum(dim=1, keepdim=True) has shape", tuple(m.sum(dim=1, keepdim=True).shape))

# %% [markdown]
# **Broadcasting** is what happens when the shapes differ. PyTorch (like NumPy) lines the
# two shapes up **from the right** and compares them dimension by dimension. Each pair must
# be *equal*, or one of them must be *1*, or *missing*. A dimension of size 1 (or a missing
# one) is **stretched** to match the other, without copying any memory.
#
# Why have this at all? It lets you write "subtract the mean of every column" or "add a bias
# to every example in the batch" as one short line, and it runs as fast as a single operation.
# Here a column `(3, 1)` meets a row `(4,)`:

# %%
column = torch.tensor([[0], [10], [20]])  # shape (3, 1)
row = torch.tensor([0, 1, 2, 3])  # shape (4,)
lab01.broadcast_picture(column, row, op="+", names=("column", "row"))

# %% [markdown]
# Read the picture from left to right: the shapes are aligned from the right; the missing
# dimension of `row` counts as 1; then every 1 is stretched (faded cells) until both are
# `(3, 4)`, and the addition happens cell by cell. Only the solid cells exist in memory.
#
# **The classic trap.** A reduction without `keepdim=True` *removes* a dimension, and the
# result may line up with the wrong one. Below, each row of `scores` is divided by its own
# total. With `keepdim=True` the totals have shape `(3, 1)` and stretch *across* each row:

# %%
scores = torch.tensor([[1.0, 1.0, 2.0, 4.0], [3.0, 0.0, 1.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
row_totals = scores.sum(dim=1, keepdim=True)
lab01.broadcast_picture(scores, row_totals, op="/", names=("scores", "row_totals"))

# %% [markdown]
# Without `keepdim`, the totals have shape `(3,)`. Aligned from the right, `3` meets the `4`
# columns and PyTorch refuses: *The size of tensor a (4) must match the size of tensor b (3)*.
# An error is the lucky case. When the matrix is **square**, the shapes fit and the wrong
# answer comes back silently, which the next exercise is about.

# %%
try:
    scores / scores.sum(dim=1)
except RuntimeError as error:
    print("RuntimeError:", error)

# %% [markdown]
# ### Exercise 2 · normalise the rows of a square matrix
#
# `counts[i, j]` says how often a model guessed class `j` when the answer was class `i`.
# Turn it into `probabilities`, where every **row** sums to 1: divide each count by the
# total of its own row. The matrix is square, so the broadcasting mistake will not raise an
# error; the check will tell you.

# %%
counts = torch.tensor([[8, 1, 1, 0], [2, 5, 0, 1], [0, 0, 9, 3], [1, 4, 1, 8]])

# %% tags=["exercise"]
# TODO: divide every count by its row total, so each row of `probabilities` sums to 1
probabilities = None

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# probabilities = counts / counts.sum(dim=1, keepdim=True)
# ```
#
# `counts.sum(dim=1)` alone has shape `(4,)`, which lines up with the *columns*: every
# column would be divided by a row's total, silently.
#
# </details>

# %%
lab01.check_row_normalised(counts, probabilities)

# %% [markdown]
# ## 3 · NumPy interop
#
# Much of Python's data world speaks NumPy (scikit-learn, pandas, image libraries), so you
# will move arrays in and out of PyTorch constantly. There are two ways in and one way out,
# and what matters is whether memory is shared:
#
# | call | memory | when to use |
# | --- | --- | --- |
# | `torch.from_numpy(array)` | **shared** with the array: no copy | big arrays, fast |
# | `torch.tensor(array)` | **copied** | when you want an independent tensor |
# | `tensor.numpy()` | **shared** with the (CPU) tensor | back to NumPy, e.g. to plot |
#
# Shared memory is fast (nothing is copied) but surprising: changing one changes the other.

# %%
array = np.zeros(3)
shared = torch.from_numpy(array)
copied = torch.tensor(array)
array[0] = 42.0  # change the NumPy array in place ...
print("shared:", shared)  # ... the shared tensor sees it
print("copied:", copied)  # ... the copy does not
print("dtype kept from NumPy:", shared.dtype)  # NumPy's default is float64

# %% [markdown]
# Two details to remember: NumPy's default float is `float64`, so convert with `.float()`
# before feeding a network (which is `float32`); and `.numpy()` only works on CPU tensors
# that do not track gradients, hence the common idiom `tensor.detach().cpu().numpy()`.

# %% [markdown]
# ### Exercise 3 · no copies
#
# `image_np` is one 8×8 digit from scikit-learn, as a NumPy array. Make `image`, a tensor
# that uses **the same memory** (no copy).

# %%
image_np = data.digits()[0][0].reshape(8, 8).numpy()

# %% tags=["exercise"]
# TODO: a tensor that shares memory with image_np
image = None

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# image = torch.from_numpy(image_np)
# ```
#
# </details>

# %%
lab01.check_shares_memory(image, image_np)

# %% [markdown]
# ## 4 · Autograd and the computational graph
#
# Training a network means nudging every weight a little in the direction that lowers the
# loss. That direction is the **gradient**: the derivative of the loss with respect to each
# weight. A network has thousands to billions of weights, so nobody derives these by hand.
#
# **Autograd** does it for you. When a tensor has `requires_grad=True`, PyTorch *records*
# every operation that uses it into a **computational graph**: each result remembers which
# operation made it (its `grad_fn`) and from which inputs. Calling `.backward()` on the final
# number walks that graph backwards, applying the chain rule at every node, and stores each
# gradient in the `.grad` of the tensors you asked about.
#
# First the smallest example: $y = x^2 + 3x$, so $dy/dx = 2x + 3 = 7$ at $x = 2$.

# %%
x = torch.tensor(2.0, requires_grad=True)
y = x**2 + 3 * x
y.backward()
print("y =", y.item(), " grad_fn:", y.grad_fn)
print("dy/dx =", x.grad.item())

# %% [markdown]
# Now the expression at the heart of every model: a prediction `w * inputs + b`, compared with
# the targets by a mean squared error. Here is the graph autograd recorded for it: the leaves
# you asked gradients for (`w`, `b`) at the top, each operation as a node, the loss at the
# bottom. `backward()` travels it from the loss upwards.

# %%
w = torch.tensor(0.5, requires_grad=True)
b = torch.tensor(0.0, requires_grad=True)
inputs = torch.tensor([1.0, 2.0, 3.0])
targets = torch.tensor([2.0, 4.0, 6.0])

prediction = w * inputs + b
loss = ((prediction - targets) ** 2).mean()
autograd_diagram.autograd_graph(loss, names={"w": w, "b": b})

# %% [markdown]
# `inputs` and `targets` are not in the graph as learnable leaves: they do not require
# gradients, so autograd does not track them. Now run the backward pass:

# %%
loss.backward()
print(f"loss = {loss.item():.3f}   dloss/dw = {w.grad.item():.3f}   dloss/db = {b.grad.item():.3f}")

# %% [markdown]
# Both gradients are negative: increasing `w` or `b` would *lower* the loss. That is exactly
# the information gradient descent needs.
#
# **Gradients accumulate.** `backward()` *adds* into `.grad`; it never overwrites. That is
# on purpose (a model with two losses, or a batch too big for memory, can add up several
# backward passes), but it means you must **reset** gradients before each training step. In
# a training loop that is `optimizer.zero_grad()`. Watch what happens if you don't:

# %%
w.grad = None  # start clean once, then never reset
grad_after = {}
for calls in (1, 2, 3):
    loss = ((w * inputs + b - targets) ** 2).mean()
    loss.backward()
    grad_after[f"after {calls} backward()"] = w.grad.item()
plots.bars(grad_after, title="Without a reset, w.grad adds up: 1×, 2×, 3×", ylabel="w.grad")

# %% [markdown]
# The true gradient never changed (same `w`, same data), but `.grad` doubled and tripled.
# An optimizer stepping on those numbers takes steps that are too large, and in a real loop
# they mix gradients of different batches.
#
# One more tool: inside `with torch.no_grad():` autograd records nothing. Use it when you
# only evaluate a model or update weights by hand, so no graph (and memory) is wasted.

# %% [markdown]
# ### Exercise 4 · your first gradient
#
# The starter code computes a loss, but autograd cannot give you its gradient. Fix it so that
# `w.grad` holds d(loss)/dw.

# %% tags=["exercise"]
x = torch.tensor([1.0, 2.0, 3.0])
y_true = torch.tensor([2.0, 4.0, 6.0])
# TODO: make autograd track w, then compute the gradient of the loss with respect to w
w = torch.tensor(0.5)
loss = ((w * x - y_true) ** 2).mean()

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# x = torch.tensor([1.0, 2.0, 3.0])
# y_true = torch.tensor([2.0, 4.0, 6.0])
# w = torch.tensor(0.5, requires_grad=True)
# loss = ((w * x - y_true) ** 2).mean()
# loss.backward()
# ```
#
# </details>

# %%
lab01.check_gradient(w, x, y_true)

# %% [markdown]
# ## 5 · A first network, trained from scratch
#
# Time for real data: scikit-learn's 1,797 handwritten digits, each an 8×8 grayscale image.
# We flatten each image into 64 numbers (pixel intensities scaled to 0..1) and ask the model
# for **10 scores**, one per digit; the highest score is its guess.

# %%
train_set, val_set = data.digits_split(val_fraction=0.2)
X_train, y_train = (t.to(device) for t in train_set.tensors)
X_val, y_val = (t.to(device) for t in val_set.tensors)
print("train:", tuple(X_train.shape), X_train.dtype, "labels", tuple(y_train.shape), y_train.dtype)
print("validation:", tuple(X_val.shape))
lab01.digit_grid(X_train[:16], y_train[:16], title="Sixteen training digits (8×8 pixels each)")

# %% [markdown]
# We keep 20 % of the digits aside as a **validation set**: the model never trains on them,
# so they tell us how well it does on digits it has not seen.
#
# **The model** is a single `nn.Linear(64, 10)`: a weight matrix of shape `(10, 64)` and a
# bias of 10 numbers, computing `scores = X @ W.T + b`. Each class score is a weighted sum
# of the 64 pixels. It is the simplest network there is, and it will do surprisingly well.
#
# **The loss** is `nn.CrossEntropyLoss`: it turns the 10 raw scores (called *logits*) into
# probabilities with a softmax and measures how little probability the right class got. It
# wants float logits of shape `(batch, 10)` and `int64` class labels of shape `(batch,)`.
#
# **The optimizer** `torch.optim.SGD` does the update `w ← w − lr × w.grad` for every
# parameter, so that we don't have to write it by hand.

# %%
model = nn.Linear(64, 10).to(device)
loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

for name, parameter in model.named_parameters():
    print(f"{name:>6}: shape {tuple(parameter.shape)}, requires_grad={parameter.requires_grad}")
logits = model(X_train[:5])
print(
    "logits of 5 digits:",
    tuple(logits.shape),
    " loss before training:",
    loss_fn(logits, y_train[:5]).item(),
)

# %% [markdown]
# The parameters were created with `requires_grad=True` for you. One **training step** is
# always the same five lines, in this order:
#
# ```python
# optimizer.zero_grad()          # 1. forget the previous step's gradients (they accumulate!)
# logits = model(xb)             # 2. forward pass: scores for this batch
# loss = loss_fn(logits, yb)     # 3. one number: how wrong the scores are
# loss.backward()                # 4. autograd fills .grad of every parameter
# optimizer.step()               # 5. move every parameter a little against its gradient
# ```

# %% [markdown]
# ### Exercise 5 · one training step
#
# Write `train_step`: it does one step on the batch `(xb, yb)` and returns the loss as a
# plain Python number (`loss.item()`), so it can be stored and plotted.


# %% tags=["exercise"]
def train_step(model, optimizer, loss_fn, xb, yb):
    # TODO: the five lines of a training step; return the loss as a Python float
    return None


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def train_step(model, optimizer, loss_fn, xb, yb):
#     optimizer.zero_grad()
#     loss = loss_fn(model(xb), yb)
#     loss.backward()
#     optimizer.step()
#     return loss.item()
# ```
#
# </details>

# %%
lab01.check_train_step(train_step)

# %% [markdown]
# ### The training loop
#
# One pass over all training digits is an **epoch**. Within an epoch we shuffle the digits
# (so the batches differ every time) and take one step per batch of 64. After each epoch we
# measure the loss on the validation digits, inside `torch.no_grad()`.

# %%
epochs = runtime.pick(full=60, quick=5)
batch_size = 64
history = {"training loss": [], "validation loss": []}

for epoch in range(epochs):
    order = torch.randperm(len(X_train), device=device)  # a new shuffle every epoch
    epoch_loss = 0.0
    for start in range(0, len(X_train), batch_size):
        batch_idx = order[start : start + batch_size]
        xb, yb = X_train[batch_idx], y_train[batch_idx]
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item() * len(batch_idx)
    history["training loss"].append(epoch_loss / len(X_train))
    with torch.no_grad():
        history["validation loss"].append(loss_fn(model(X_val), y_val).item())
    if epoch % 10 == 0 or epoch == epochs - 1:
        print(
            f"epoch {epoch + 1:>2}: training loss {history['training loss'][-1]:.3f}, "
            f"validation loss {history['validation loss'][-1]:.3f}"
        )

plots.curves(
    history, title="Loss curve of the first network", xlabel="epoch", ylabel="cross-entropy loss"
)

# %% [markdown]
# Both curves fall steeply at first, then flatten: the model learns the easy patterns first.
# The validation loss stays close to the training loss, so the model is not just memorising
# the training digits. (Early on the training loss even sits above: it is averaged over the
# epoch while the model was still improving, the validation loss is measured at its end.)
# Now the number everyone asks for, **accuracy** on unseen digits: the guess is the class
# with the highest score (`argmax` over the 10 scores).

# %%
with torch.no_grad():
    predictions = model(X_val).argmax(dim=1)
accuracy = (predictions == y_val).float().mean().item()
print(f"validation accuracy: {accuracy:.1%} of {len(y_val)} unseen digits")
lab01.digit_grid(
    X_val[:24],
    y_val[:24],
    predictions[:24],
    title=f"Guesses on unseen digits (accuracy {accuracy:.1%})",
)

# %% [markdown]
# Since each score is a weighted sum of pixels, we can *look* at the weights: draw row `k` of
# the weight matrix as an 8×8 image and you see which pixels push the score of digit `k` up
# (red) or down (blue).

# %%
lab01.weight_images(model.weight)

# %% [markdown]
# ## Recap
#
# - A **tensor** has a `shape`, a `dtype` and a `device`; check those three first whenever
#   something fails. `.to(...)` returns a converted copy.
# - **Broadcasting** aligns shapes from the right and stretches dimensions of size 1. Use
#   `keepdim=True` in reductions you want to broadcast back; square matrices hide mistakes.
# - `torch.from_numpy` and `.numpy()` **share memory**; `torch.tensor` copies.
# - **Autograd** records operations on tensors with `requires_grad=True` into a graph;
#   `backward()` fills `.grad`, and gradients **accumulate** until you reset them.
# - A training step is `zero_grad → forward → loss → backward → step`, repeated over
#   shuffled batches for several epochs, with a validation set to check real progress.
#
# **Next:** in Lab 2 you package a model as an `nn.Module` class with several layers, and
# let a `DataLoader` do the batching and shuffling you did by hand here.
