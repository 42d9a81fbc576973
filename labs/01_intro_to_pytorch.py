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
# You know Python. This lab gives you the ideas everything else in PyTorch is built on,
# and ends with a network you train yourself on real handwritten digits.
#
# **By the end of this lab you can**
# 1. create tensors and say what their **shape**, **dtype** and **device** are;
# 2. predict the shape of `a + b` when `a` and `b` have different shapes (**broadcasting**);
# 3. **reshape, index and combine** tensors: `view` vs `reshape`, masks, `permute`,
#    `unsqueeze`, `cat` vs `stack`, and in-place operations;
# 4. move data between NumPy and PyTorch, and know when the two **share memory**;
# 5. let **autograd** compute gradients, read the computational graph it records, and switch
#    it off with `torch.no_grad()` or `torch.inference_mode()`;
# 6. write a **training loop** by hand, train a first tiny network on the digits, and
#    read its **confusion matrix**: precision and recall per class.
#
# Every exercise is followed by a check cell: run it, and it tells you what is wrong or prints
# a ✅. Ask your instructor if you are stuck. Each exercise's solution cell shows the solution
# once your instructor reveals it (run it again then). An exercise you have not solved yet
# does not stop the lab: its check says so in red, and the cells below it go on (with a
# stand-in, not the solution, where they need one).
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

from workshop_labs import autograd_diagram, data, lab01, plots, runtime

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
batch = lab01.check_batch(batch, device)

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
# `counts[i, j]` says how often a model guessed class `j` when the answer was class `i` (a
# *confusion matrix*: section 6 draws the one of your own model).
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
probabilities = lab01.check_row_normalised(probabilities, counts)

# %% [markdown]
# ## 3 · Reshaping, indexing and combining tensors
#
# Data rarely arrives in the shape a model wants: an image file stores (height, width,
# colour), a model wants a batch of rows, a single example must become a batch of one. This
# section is the toolbox for that. None of these operations does arithmetic: they regroup,
# select or join numbers.
#
# **`view` and `reshape`** regroup the numbers into a new shape, reading them row by row. A
# **view** is a new tensor that uses the *same memory* as the original: nothing is copied.
# Transposing (`.T`) is a view too: it only changes the order in which memory is read.

# %%
numbers = torch.arange(6)
matrix = numbers.view(2, 3)  # the same 6 numbers in memory, read as 2 rows of 3
flipped = matrix.T  # also a view: rows and columns swap, memory stays as it is
flat_copy = flipped.reshape(6)
memory = numbers.data_ptr()  # the address of the first number in memory
print("matrix, flipped share numbers' memory:", matrix.data_ptr() == flipped.data_ptr() == memory)
print("flipped.reshape(6) shares it too:     ", flat_copy.data_ptr() == memory)
print("stored row by row? matrix:", matrix.is_contiguous(), " flipped:", flipped.is_contiguous())
lab01.tensor_grids(
    {
        "numbers": numbers,
        "matrix": matrix,
        "flipped": flipped,
        "flipped.reshape(6)": flat_copy,
    },
    title=f"Row by row, flipped reads {flat_copy.tolist()}; memory holds {numbers.tolist()}",
)

# %% [markdown]
# `view` never copies, so it can only regroup numbers in the order they sit in memory.
# `flipped`, read row by row, is not in that order, so no view of it can be one flat row:
# `view` refuses. `reshape` returns a view when it can and a **copy** when it must (the output
# above says which). `.contiguous()` makes that copy explicitly, after which `view` works. In
# practice use `reshape`; use `view` when you want an error rather than a hidden copy.

# %%
try:
    flipped.view(6)
except RuntimeError as error:
    print("RuntimeError:", error)
print("flipped.contiguous().view(6) =", flipped.contiguous().view(6))

# %% [markdown]
# **Indexing and slicing** work as in Python lists, one index or slice per dimension; `:`
# means "all of this dimension". A **boolean mask** (a comparison such as `grid > 6`) selects
# the elements where it is `True`; as their number can be anything, the result is 1-D.

# %%
grid = torch.arange(12).reshape(3, 4)
print("grid =\n", grid)
print("grid[1]        =", grid[1])  # row 1 (counting from 0)
print("grid[:, 2]     =", grid[:, 2])  # column 2 of every row
print("grid[-1, -1]   =", grid[-1, -1])  # last row, last column (.item() gives a number)
print("grid[:2, 1:3]  =\n", grid[:2, 1:3])  # rows 0-1, columns 1-2
print("grid > 6       =\n", grid > 6)  # a mask: True where the condition holds
print("grid[grid > 6] =", grid[grid > 6])

# %% [markdown]
# **`permute`** reorders the dimensions (`.T` for any number of them): image files store
# (height, width, colour), PyTorch's image layers want the colour channels first.
# **`unsqueeze(d)`** inserts a dimension of size 1 at position `d`; **`squeeze(d)`** removes
# one. Remember Exercise 2: `totals.unsqueeze(1)` turns the row totals back into the column
# that `keepdim=True` gave.

# %%
photo = torch.rand(8, 8, 3)  # height, width, colour
print("photo.permute(2, 0, 1):", tuple(photo.permute(2, 0, 1).shape))  # colour first
row = torch.tensor([1.0, 2.0, 3.0])
print("row:", tuple(row.shape), " row.unsqueeze(0):", tuple(row.unsqueeze(0).shape))
print("row.unsqueeze(1):", tuple(row.unsqueeze(1).shape))
print("row.unsqueeze(0).squeeze(0):", tuple(row.unsqueeze(0).squeeze(0).shape))
totals = counts.sum(dim=1)
print("totals:", tuple(totals.shape), "→ totals.unsqueeze(1):", tuple(totals.unsqueeze(1).shape))
keepdim_totals = counts.sum(dim=1, keepdim=True)
print("counts / totals.unsqueeze(1) equals counts / keepdim_totals:", end=" ")
print(torch.equal(counts / totals.unsqueeze(1), counts / keepdim_totals))

# %% [markdown]
# **Combining** tensors: `torch.cat` joins them along a dimension they **already have**;
# `torch.stack` puts them side by side along a **new** dimension, so they must all have the
# same shape. Stacking single examples into a batch is `torch.stack`.

# %%
first = torch.tensor([1, 2, 3])
second = torch.tensor([4, 5, 6])
joined = torch.cat([first, second])
stacked = torch.stack([first, second])
lab01.tensor_grids(
    {"first": first, "second": second, "torch.cat": joined, "torch.stack": stacked},
    title=f"cat of two {tuple(first.shape)}: {tuple(joined.shape)};  "
    f"stack of two {tuple(first.shape)}: {tuple(stacked.shape)}",
)

# %% [markdown]
# **In-place operations** change a tensor instead of making a new one. Their names end in an
# underscore (`add_`, `zero_`, `clamp_`); `+=` and assigning into an index are in place too.
# They save memory, but careful: a slice is a view, so changing it in place changes the
# tensor it came from. (Autograd has a rule about in-place changes: section 5 shows it.)

# %%
counter = torch.zeros(3)
counter.add(1)  # a new tensor, which we drop: counter is unchanged
print("after add(1): ", counter)
counter.add_(1)  # trailing underscore: counter itself changes
counter += 1  # in place as well
print("after add_(1) and += 1:", counter)
first_row = grid[0]  # a view of grid's first row
first_row.zero_()  # ... so this zeroes grid's first row
grid[grid > 6] = -1  # assigning through a mask is in place too
print("grid =\n", grid)

# %% [markdown]
# ### Exercise 3 · a batch of pictures
#
# Image models take a batch shaped **(batch, channels, height, width)**, "NCHW". A grey digit
# has one channel. `pictures` is a list of four digits, each an 8×8 tensor. Make
# `digit_batch`, one tensor of shape `(4, 1, 8, 8)` in which `digit_batch[i, 0]` is
# `pictures[i]`. Two of this section's tools do it in one line.

# %%
images, labels = data.digits()  # all 1,797 digits, each flattened to 64 pixels
pictures = [images[i].reshape(8, 8) for i in range(4)]
print(len(pictures), "pictures of shape", tuple(pictures[0].shape))

# %% tags=["exercise"]
# TODO: the four pictures as one tensor of shape (4, 1, 8, 8)
digit_batch = None

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# digit_batch = torch.stack(pictures).unsqueeze(1)
# ```
#
# `torch.stack` adds the batch dimension: `(4, 8, 8)`. `unsqueeze(1)` inserts the channel
# after it. `torch.cat(pictures)` would give `(32, 8)`: the pictures' rows one after another.
#
# </details>

# %%
digit_batch = lab01.check_digit_batch(digit_batch, pictures)

# %% [markdown]
# The network in section 6 wants each digit as one row of 64 pixels. `flatten(start_dim=1)`
# merges every dimension from 1 on, and gives back exactly the rows we started from:

# %%
rows = digit_batch.flatten(start_dim=1)
print(tuple(digit_batch.shape), "→", tuple(rows.shape))
print("the same numbers as images[:4]:", torch.equal(rows, images[:4]))

# %% [markdown]
# ## 4 · NumPy interop
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
# Shared memory is fast (nothing is copied) but surprising, as with a view in section 3:
# changing one changes the other.

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
# ### Exercise 4 · no copies
#
# `image_np` is one 8×8 digit from scikit-learn, as a NumPy array. Make `image`, a tensor
# that uses **the same memory** (no copy).

# %%
image_np = images[0].reshape(8, 8).numpy()

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
image = lab01.check_shares_memory(image, image_np)

# %% [markdown]
# ## 5 · Autograd and the computational graph
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
# the targets by a mean squared error. Here is the graph autograd recorded for it. At the top
# are the **leaves** you asked gradients for (`w`, `b`, blue) and the **constants** the
# expression used (`inputs`, `targets` and the `2` of `** 2`, grey); each operation is a node
# with the shape it produced; the loss is at the bottom. `backward()` travels it from the loss
# upwards.

# %%
w = torch.tensor(0.5, requires_grad=True)
b = torch.tensor(0.0, requires_grad=True)
inputs = torch.tensor([1.0, 2.0, 3.0])
targets = torch.tensor([2.0, 4.0, 6.0])

prediction = w * inputs + b
loss = ((prediction - targets) ** 2).mean()
graph_names = {"w": w, "b": b, "inputs": inputs, "targets": targets}
autograd_diagram.autograd_graph(loss, names=graph_names)

# %% [markdown]
# `inputs` and `targets` do not require gradients: autograd uses their values but computes no
# gradient for them, so they get no `.grad`. Now run the backward pass, and draw the graph
# again: each leaf's box now shows the gradient `backward()` stored in it.
#
# **Run the next cell once.** `backward()` frees the graph as it walks it, so running the cell
# a second time raises *Trying to backward through the graph a second time*. If you run the
# cell above first (a new graph), the next cell works again, but `.grad` then holds the sum
# of both backward passes, as the cell after it shows.

# %%
loss.backward()
print(f"loss = {loss.item():.3f}   dloss/dw = {w.grad.item():.3f}   dloss/db = {b.grad.item():.3f}")
autograd_diagram.autograd_graph(loss, names=graph_names)

# %% [markdown]
# Both gradients are negative: increasing `w` or `b` would *lower* the loss. That is exactly
# the information gradient descent needs: step each leaf *against* its gradient,
# `w ← w − lr × w.grad`.
#
# The obvious line, `w.sub_(lr * w.grad)`, is an in-place change of a leaf that requires
# grad, and autograd refuses it. The reason: autograd would have to record the update as one
# more operation of the graph, and `w` would no longer be a leaf whose `.grad` means
# "d(loss)/dw". A weight update is not part of the model's computation, so do it inside
# `with torch.no_grad():`, where autograd records nothing. (`optimizer.step()` does exactly
# that.) Autograd also refuses, at `backward()`, an in-place change to a tensor it saved
# for the backward pass.

# %%
lr = 0.1
try:
    w.sub_(lr * w.grad)
except RuntimeError as error:
    print("RuntimeError:", error)
with torch.no_grad():  # nothing in here is recorded, so the in-place update is allowed
    w.sub_(lr * w.grad)
    b.sub_(lr * b.grad)
    new_loss = ((w * inputs + b - targets) ** 2).mean()
print(f"one step by hand: w = {w.item():.2f}, b = {b.item():.2f}", end=", ")
print(f"loss {loss.item():.3f} → {new_loss.item():.3f}")

# %% [markdown]
# Each run of this cell takes one more step with the same, now outdated, gradients: run it
# once.
#
# **Gradients accumulate.** `backward()` *adds* into `.grad`; it never overwrites. That is
# on purpose (a model with two losses, or a batch too big for memory, can add up several
# backward passes), but it means you must **reset** gradients before each training step. In
# a training loop that is `optimizer.zero_grad()`. Watch what happens if you don't (this cell
# resets `w.grad` once at its start, so re-running it draws the same bars):

# %%
w.grad = None  # start clean once, then never reset
grad_after = {}
for calls in (1, 2, 3):
    loss = ((w * inputs + b - targets) ** 2).mean()
    loss.backward()
    grad_after[f"after {calls} backward()"] = w.grad.item()
first_grad = grad_after["after 1 backward()"]
multiples = ", ".join(f"{value / first_grad:.3g}×" for value in grad_after.values())
plots.bars(
    grad_after, title=f"Without a reset, w.grad is {multiples} the first value", ylabel="w.grad"
)

# %% [markdown]
# The true gradient never changed (same `w`, same data), but `.grad` grew with every
# `backward()`. An optimizer stepping on those numbers takes steps that are too large, and in
# a real loop they mix gradients of different batches.
#
# **Switching autograd off.** You met `torch.no_grad()` above. `torch.inference_mode()` does
# the same and goes further: PyTorch also skips the bookkeeping autograd needs to check a
# tensor later (a version counter that notices in-place changes). A tensor made inside it is an
# *inference tensor*, and outside the block it has two limits: autograd can never **save** it
# for the backward pass, and you cannot **change it in place**. Used as a plain value it still
# joins a graph: `t + w` backpropagates to `w`, because the gradient of a sum needs no saved
# tensor; `t * w` fails, because the gradient with respect to `w` is `t`, which autograd would
# have to save. Use `inference_mode` when you only predict (evaluating, serving a model),
# `no_grad` when you update weights by hand or may reuse the results in training.

# %%
with torch.no_grad():
    by_no_grad = w * inputs
with torch.inference_mode():
    by_inference = w * inputs
print("no_grad:        requires_grad =", by_no_grad.requires_grad, " grad_fn =", by_no_grad.grad_fn)
print("inference_mode: requires_grad =", by_inference.requires_grad, end=", ")
print("an inference tensor:", by_inference.is_inference())
print("no_grad's result in a new graph:", (by_no_grad * w).sum().grad_fn)
v = torch.tensor(2.0, requires_grad=True)
(by_inference + v).sum().backward()  # the gradient of a sum needs no saved tensor
print("inference tensor + v: backward works, v.grad =", v.grad.item())
try:
    (by_inference * v).sum()  # the gradient with respect to v is by_inference: it must be saved
except RuntimeError as error:
    print("inference tensor * v: RuntimeError:", str(error).split(".")[0])
try:
    by_inference.add_(1)
except RuntimeError as error:
    print("inference tensor changed in place: RuntimeError:", str(error).split(".")[0])

# %% [markdown]
# ### Exercise 5 · your first gradient
#
# The starter code computes a loss, but autograd cannot give you its gradient. Fix it so that
# `w.grad` holds d(loss)/dw. Re-running this cell is safe: it creates `w` again, with no
# `.grad` yet. Calling `loss.backward()` a second time in another cell is not: see above.

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
w = lab01.check_gradient(w, x, y_true)

# %% [markdown]
# ## 6 · A first network, trained from scratch
#
# Time for real data: scikit-learn's 1,797 handwritten digits, each an 8×8 grayscale image,
# which `data.digits()` gives as rows of 64 numbers (pixel intensities scaled to 0..1), as in
# Exercise 3. The model gives **10 scores** per digit, one per class; the highest is its guess.
#
# We keep 20 % of the digits aside as a **validation set**: the model never trains on them,
# so they tell us how well it does on digits it has not seen. A random order of the indices
# (`torch.randperm`) and indexing with it (section 3) make the split:

# %%
images, labels = data.digits()
order = torch.randperm(len(images))  # the numbers 0 .. 1796 in a random order
n_val = round(0.2 * len(images))
val_idx, train_idx = order[:n_val], order[n_val:]
X_train, y_train = images[train_idx].to(device), labels[train_idx].to(device)
X_val, y_val = images[val_idx].to(device), labels[val_idx].to(device)
print("train:", tuple(X_train.shape), X_train.dtype, "labels", tuple(y_train.shape), y_train.dtype)
print("validation:", tuple(X_val.shape))
lab01.digit_grid(
    X_train[:16], y_train[:16], title=f"{min(16, len(X_train))} training digits (8×8 pixels each)"
)

# %% [markdown]
# **The model** is a single `nn.Linear(64, 10)`: a weight matrix of shape `(10, 64)` and a
# bias of 10 numbers, computing `scores = X @ W.T + b`. Each class score is a weighted sum
# of the 64 pixels. It is the simplest network there is, and it will do surprisingly well.
#
# **The loss** is `nn.CrossEntropyLoss`: it turns the 10 raw scores (called *logits*) into
# probabilities with a softmax and measures how little probability the right class got. It
# wants float logits of shape `(batch, 10)` and `int64` class labels of shape `(batch,)`.
#
# **The optimizer** `torch.optim.SGD` does the update `w ← w − lr × w.grad` for every
# parameter, inside `torch.no_grad()` as you did by hand in section 5.

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
# ### Exercise 6 · one training step
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
train_step = lab01.check_train_step(train_step)

# %% [markdown]
# ### The training loop
#
# One pass over all training digits is an **epoch**. Within an epoch we shuffle the digits
# (so the batches differ every time) and take one step per batch of 64 with your
# `train_step`. After each epoch we measure the loss on the validation digits, inside
# `torch.inference_mode()` (we only predict there).
#
# Re-running this cell does not start over: it trains the *already trained* model for more
# epochs, so the new curve starts from the low loss the last run reached. To start from
# scratch, run the cell that creates `model` and `optimizer` first.

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
        epoch_loss += train_step(model, optimizer, loss_fn, xb, yb) * len(batch_idx)
    history["training loss"].append(epoch_loss / len(X_train))
    with torch.inference_mode():
        history["validation loss"].append(loss_fn(model(X_val), y_val).item())
    if epoch % 10 == 0 or epoch == epochs - 1:
        print(
            f"epoch {epoch + 1:>2}: training loss {history['training loss'][-1]:.3f}, "
            f"validation loss {history['validation loss'][-1]:.3f}"
        )

losses = zip(history["training loss"], history["validation loss"], strict=True)
above = sum(train > val for train, val in losses)
plots.curves(
    history,
    title=f"Loss curve of the first network (training above validation in {above} of "
    f"{epochs} epochs)",
    xlabel="epoch",
    ylabel="cross-entropy loss",
)

# %% [markdown]
# Both curves fall steeply at first, then flatten: the model learns the easy patterns first.
# The validation loss stays close to the training loss, so the model is not just memorising
# the training digits. Which curve sits above depends on the split: the title counts the
# epochs in which the training loss did. An epoch's training loss is averaged over batches
# taken while the model was still improving, whereas the validation loss is measured at the
# epoch's end, which lifts the training curve; and the validation digits, a fifth of the set,
# can simply be a little easier, or harder, than the rest.
# Now the number everyone asks for, **accuracy** on unseen digits: the guess is the class
# with the highest score (`argmax` over the 10 scores).

# %%
with torch.inference_mode():
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
# ### Beyond accuracy: the confusion matrix
#
# Accuracy is one number for all ten digits. To see *which* digits the model mixes up, count,
# for every true class (row) and every guess (column), how many validation digits landed
# there. That grid is the **confusion matrix**; Exercise 2's `counts` was a small one. Right
# guesses sit on the diagonal, every other cell is one kind of mistake:

# %%
confusion = torch.zeros(10, 10, dtype=torch.int64)
for true_class, guess in zip(y_val.tolist(), predictions.tolist(), strict=True):
    confusion[true_class, guess] += 1
n_right = confusion.trace().item()  # the sum of the diagonal
lab01.confusion_picture(
    confusion, title=f"Confusion matrix: {n_right} right, {len(y_val) - n_right} mistakes"
)

# %% [markdown]
# Two numbers per class read it. For class `k`:
#
# - **precision**: of all the digits the model *guessed* to be `k` (column `k`), the fraction
#   that really are `k`. Low precision: the model says `k` too easily.
# - **recall**: of all the digits that really *are* `k` (row `k`), the fraction the model
#   found. Low recall: the model misses `k`.
#
# Both are the diagonal count divided by a total: which total is the whole difference.
#
# ### Exercise 7 · precision and recall per class
#
# From `confusion`, compute `precision` and `recall`: two float tensors of shape `(10,)`, one
# value per class, each between 0 and 1.

# %% tags=["exercise"]
# TODO: per class, the diagonal count divided by the right total (see the definitions above)
precision = None
recall = None

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# right_guesses = confusion.diagonal()
# precision = right_guesses / confusion.sum(dim=0)  # column totals: everything guessed k
# recall = right_guesses / confusion.sum(dim=1)  # row totals: every digit that is k
# ```
#
# </details>

# %%
precision, recall = lab01.check_precision_recall((precision, recall), confusion)

# %% [markdown]
# Since each score is a weighted sum of pixels, we can *look* at the weights: reshape the
# `(10, 64)` weight matrix to `(10, 8, 8)`, draw row `k` as an 8×8 image, and you see which
# pixels push the score of digit `k` up (red) or down (blue).

# %%
lab01.weight_images(model.weight.reshape(10, 8, 8))

# %% [markdown]
# ## Recap
#
# - A **tensor** has a `shape`, a `dtype` and a `device`; check those three first whenever
#   something fails. `.to(...)` returns a converted tensor (the same one when nothing needs to
#   change): assign its result.
# - **Broadcasting** aligns shapes from the right and stretches dimensions of size 1. Use
#   `keepdim=True` in reductions you want to broadcast back; square matrices hide mistakes.
# - `view` regroups memory without copying (and refuses when it cannot); `reshape` copies
#   when it must. Index with slices or boolean masks; `permute` reorders dimensions,
#   `unsqueeze`/`squeeze` add or remove a size-1 dimension; `torch.cat` joins along an
#   existing dimension, `torch.stack` along a new one. A trailing `_` means in place.
# - `torch.from_numpy` and `.numpy()` **share memory**; `torch.tensor` copies.
# - **Autograd** records operations on tensors with `requires_grad=True` into a graph;
#   `backward()` fills `.grad`, and gradients **accumulate** until you reset them.
#   `backward()` frees the graph: run it once per forward pass.
# - Update weights inside `torch.no_grad()`; only predict inside `torch.inference_mode()`:
#   its results can be used as values in a graph later, but autograd can never save them for
#   backward (`t * w` fails, `t + w` works) and they cannot be changed in place.
# - A training step is `zero_grad → forward → loss → backward → step`, repeated over
#   shuffled batches for several epochs, with a validation set to check real progress.
# - The **confusion matrix** counts true class (row) × guess (column). Per class,
#   **precision** = diagonal / column total (how often a guess of `k` is right), **recall** =
#   diagonal / row total (how many real `k` were found).
#
# **Next:** in Lab 2 you package a model as an `nn.Module` class with several layers, and
# let a `DataLoader` do the batching and shuffling you did by hand here.
