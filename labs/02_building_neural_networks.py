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
# 5. pair a model's output with the right loss (MSE, L1, cross-entropy, BCE with logits);
# 6. choose between `nn.Sequential` and a subclass, and compose modules from modules;
# 7. say what `model.train()` and `model.eval()` change (Dropout, BatchNorm, LayerNorm);
# 8. write a `Dataset`, feed it through a `DataLoader`, and train with SGD, momentum or Adam.
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
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from workshop_labs import data, diagrams, lab02, pipeline_diagram, plots, runtime, timing

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
# ### Exercise 1 · the bookkeeping, by hand
#
# Create `optimizer_by_hand`: a `torch.optim.SGD` with `lr=0.1` that trains `predict`'s
# numbers. An optimizer takes the list of tensors it should change.

# %% tags=["exercise"]
# TODO: an SGD optimizer over every tensor predict() learns
optimizer_by_hand = None

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# optimizer_by_hand = torch.optim.SGD([w1, b1, w2, b2], lr=0.1)
# ```
#
# </details>

# %%
optimizer_by_hand = lab02.check_optimizer_by_hand(optimizer_by_hand, w1, b1, w2, b2)

# %% [markdown]
# A **class** keeps the numbers (*state*) and the computation (*behaviour*) together. And by
# inheriting from `nn.Module`, the class gets the bookkeeping for free: `parameters()` for
# the optimizer, `.to(device)`, `state_dict()` for saving, `train()`/`eval()` (section 8),
# hooks, and a readable `print(model)`.
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
# ### Exercise 2 · your first model class
#
# Write `LinearDigits`: lab 1's model (one `nn.Linear(64, 10)`: 64 pixels in, 10 scores out) as
# an `nn.Module` class, with each part in its place.


# %% tags=["exercise"]
class LinearDigits(nn.Module):
    # TODO: __init__ that builds the layer, and forward that uses it
    pass


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# class LinearDigits(nn.Module):
#     def __init__(self):
#         super().__init__()
#         self.linear = nn.Linear(64, 10)
#
#     def forward(self, x):
#         return self.linear(x)
# ```
#
# </details>

# %%
LinearDigits = lab02.check_linear_digits(LinearDigits)

# %% [markdown]
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
# ### Exercise 3 · a class that works, with every layer registered
#
# `DeepNet(depth)` is `Linear(64, 32)`, then `depth` hidden `Linear(32, 32)` layers with ReLU,
# then `Linear(32, 10)`. It has two bugs. The first stops it from being created at all (run
# the check to read the error). The second lets it run, but it would train badly. Fix both.


# %% tags=["exercise"]
class DeepNet(nn.Module):
    def __init__(self, depth):
        # TODO: something must happen before the layers are assigned
        self.input = nn.Linear(64, 32)
        self.hidden = [nn.Linear(32, 32) for _ in range(depth)]  # TODO: is this registered?
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
DeepNet = lab02.check_deep_net(DeepNet)

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
# ### Exercise 4 · a forward that fits the data
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
ImageClassifier = lab02.check_image_classifier(ImageClassifier)

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
# This cell starts with `model.zero_grad()`, so running it again prints the same ratio. Without
# that line, every re-run would add one more gradient to `.grad`.
#
# Gradients land only where the loss came from. `WithSpare` registers a layer that `forward`
# never uses:


# %%
class WithSpare(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)
        self.spare = nn.Linear(64, 10)  # registered, but forward never uses it

    def forward(self, x):
        return self.fc(x)


spare_model = WithSpare()
print([name for name, _ in spare_model.named_parameters()])

# %% [markdown]
# ### Exercise 5 · where do the gradients land?
#
# Predict, without running it: after `loss_fn(spare_model(x), labels[:16]).backward()`, which
# parameters of `spare_model` have a `.grad` (not `None`)? Write their names, as printed above.

# %% tags=["exercise"]
# TODO: the set of parameter names whose .grad is filled, e.g. {"name.weight", ...}
have_grad = None

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# have_grad = {"fc.weight", "fc.bias"}
# ```
#
# `spare` is registered (it is in `parameters()`, so an optimizer holds it), but the loss does
# not depend on it: `backward()` never reaches it and its `.grad` stays `None`.
#
# </details>

# %%
have_grad = lab02.check_have_grad(have_grad, spare_model, x)

# %% [markdown]
# ## 6 · Losses and output activations
#
# A loss turns the model's output and the target into one number to make smaller. The right
# loss depends on the problem, and on what the model's last layer outputs. In this course the
# last layer is a `Linear`: it outputs raw scores, called **logits**, with no activation after
# it. The losses below are written for exactly that.
#
# **Regression** (predict a number): `nn.MSELoss` is the mean of the squared errors, and
# `nn.L1Loss` the mean of the absolute errors (it is less pulled by one large error).

# %%
prediction = torch.tensor([2.5, 0.0, 2.0, 8.0])
target = torch.tensor([3.0, -0.5, 2.0, 7.0])
print(f"MSELoss {nn.MSELoss()(prediction, target).item():.4f}", end="  ")
print(f"= mean squared error  {((prediction - target) ** 2).mean().item():.4f}")
print(f"L1Loss  {nn.L1Loss()(prediction, target).item():.4f}", end="  ")
print(f"= mean absolute error {(prediction - target).abs().mean().item():.4f}")

# %% [markdown]
# **One class out of several** (our digits): `nn.CrossEntropyLoss` takes the **raw logits** and
# class indices. It applies log-softmax itself, then picks the log-probability of the right
# class. `nn.LogSoftmax` followed by `nn.NLLLoss` computes the same thing in two steps. Adding
# your own softmax before `CrossEntropyLoss` is a classic silent bug: it runs, but softmax is
# then applied twice. Compare the three on a *perfect* model, whose logit for the right class
# is 10 and 0 for the others:

# %%
targets = labels[:16]
perfect = torch.zeros(16, 10)
perfect[torch.arange(16), targets] = 10.0
cross_entropy = nn.CrossEntropyLoss()(perfect, targets)
log_softmax_nll = nn.NLLLoss()(nn.LogSoftmax(dim=1)(perfect), targets)
softmax_first = nn.CrossEntropyLoss()(torch.softmax(perfect, dim=1), targets)
print(f"CrossEntropyLoss(logits)            {cross_entropy.item():.4f}")
print(f"NLLLoss(LogSoftmax(logits))         {log_softmax_nll.item():.4f}")
print(f"CrossEntropyLoss(softmax(logits))   {softmax_first.item():.4f}   <- wrong")

# %% [markdown]
# The first two agree and are close to 0, as they should for a perfect model. The third stays
# far from 0 however good the model is: softmax squashes the scores into 0..1, and a second
# softmax over numbers in 0..1 can never be confident.
#
# **Yes or no** (one logit per sample, target 0.0 or 1.0): `nn.BCEWithLogitsLoss` takes the
# raw logit. `nn.Sigmoid` followed by `nn.BCELoss` is the same formula, but less safe: for a
# large logit, the sigmoid rounds to exactly 1.0 in float32, and `BCELoss` must then take
# `log(0)`, which it clips to −100, so the loss jumps to 100. Here is the loss of a wrong, ever
# more confident answer (target 0, logit growing):

# %%
logits = torch.linspace(0, 40, 81)
zeros = torch.zeros_like(logits)
with_logits = nn.BCEWithLogitsLoss(reduction="none")(logits, zeros)
sigmoid_then_bce = nn.BCELoss(reduction="none")(torch.sigmoid(logits), zeros)
saturated = logits[torch.sigmoid(logits) == 1.0]
plots.curves(
    {
        "BCEWithLogitsLoss(logit)": (logits.tolist(), with_logits.tolist()),
        "BCELoss(Sigmoid(logit))": (logits.tolist(), sigmoid_then_bce.tolist()),
    },
    title=f"Target 0: sigmoid rounds to 1.0 from logit {saturated.min().item():.1f}, "
    f"so BCELoss stays at {sigmoid_then_bce.max().item():.0f}",
    xlabel="logit",
    ylabel="loss",
)

# %% [markdown]
# Past that point the flat curve also has a zero slope, so the wrong answer gets no gradient
# at all. `BCEWithLogitsLoss` computes the loss from the logit directly and keeps both right.
#
# **`reduction=`**: every loss above returns the **mean** over the batch by default.
# `reduction="sum"` adds the samples up instead (lab 7 uses it to total a loss over a whole
# dataset), and `reduction="none"` keeps one loss per sample:

# %%
logits = model(x)
for reduction in ("mean", "sum", "none"):
    loss = nn.CrossEntropyLoss(reduction=reduction)(logits, targets)
    print(f'reduction="{reduction}": shape {tuple(loss.shape)}', loss.detach().flatten()[:4])

# %% [markdown]
# ### Exercise 6 · pick the loss
#
# Two models both end with a `Linear` layer, so both output raw logits. Fill in the loss for
# each: a **binary** model (one logit per sample, targets 0.0 or 1.0) and a **10-class** model
# (10 logits per sample, targets 0..9).

# %% tags=["exercise"]
loss_fns = {
    "binary": None,  # TODO: a loss module, e.g. nn.SomethingLoss()
    "10 classes": None,  # TODO
}

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# loss_fns = {
#     "binary": nn.BCEWithLogitsLoss(),
#     "10 classes": nn.CrossEntropyLoss(),
# }
# ```
#
# </details>

# %%
loss_fns = lab02.check_loss_choice(loss_fns)

# %% [markdown]
# ## 7 · `nn.Sequential` or a subclass? Composing modules
#
# When data flows straight through a chain of layers, `nn.Sequential` builds the model without
# writing a class; its `forward` simply calls the layers in order:

# %%
sequential = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
print(sequential)

# %% [markdown]
# Write a subclass when `forward` needs more than a chain: a branch, a skip connection, two
# inputs, a loop, a printout. Modules also **compose**: a module can hold other modules,
# including a `Sequential` and your own classes.
#
# ### Exercise 7 · a residual block
#
# A **residual block** adds its input back to what its layers make of it:
# `output = x + layer(x)`. The `x +` part is a *skip connection*, which `Sequential` cannot
# express. Write `ResidualBlock(width)`: in `__init__`, store `Linear(width, width)` → `ReLU`
# as one `nn.Sequential` named `self.layer`; in `forward`, return `x + self.layer(x)`.


# %% tags=["exercise"]
class ResidualBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        # TODO: self.layer = Linear(width, width) then ReLU, as one nn.Sequential

    def forward(self, x):
        # TODO: the input plus what self.layer makes of it
        return x


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# class ResidualBlock(nn.Module):
#     def __init__(self, width):
#         super().__init__()
#         self.layer = nn.Sequential(nn.Linear(width, width), nn.ReLU())
#
#     def forward(self, x):
#         return x + self.layer(x)
# ```
#
# </details>

# %%
ResidualBlock = lab02.check_residual_block(ResidualBlock)

# %% [markdown]
# `ResidualNet` composes your block: a `Sequential` stem, two `ResidualBlock`s, a head.


# %%
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
# `print` does not show the skip connections: they live in `forward`, not in `__init__`. The
# network diagram records what `forward` really does, so it draws each skip as an arrow around
# the layers it skips, into the `+` that adds it back:

# %%
diagrams.network_diagram(composed, x)

# %% [markdown]
# ## 8 · `train()` and `eval()`: layers that behave differently while training
#
# A few layers do something different during training than when the model is used:
#
# - **`nn.Dropout(p)`** sets a random fraction `p` of the values to 0 while training (and
#   multiplies the rest by `1 / (1 − p)`), so the network cannot rely on any single value. When
#   the model is used, it does nothing.
# - **`nn.BatchNorm1d`** rescales every feature to mean 0 and variance 1. While training it
#   uses the current batch's statistics and updates a running average of them; when the model
#   is used, it uses that running average.
# - **`nn.LayerNorm`** rescales each *sample* over its own features. It behaves the same in
#   both modes (lab 4 uses it).
#
# `model.train()` and `model.eval()` switch the mode of a module *and every module inside it*.
# A new module starts in training mode. Same input, two modes:

# %%
torch.manual_seed(0)
batch = torch.randn(4, 6)
for layer in (nn.Dropout(p=0.5), nn.BatchNorm1d(6), nn.LayerNorm(6)):
    layer.train()
    in_train = layer(batch)
    layer.eval()
    in_eval = layer(batch)
    same = torch.allclose(in_train, in_eval)
    print(f"{type(layer).__name__:12} same output in both modes: {same}")
    print("   train():", [round(v, 2) for v in in_train[0].tolist()])
    print("   eval(): ", [round(v, 2) for v in in_eval[0].tolist()])

# %% [markdown]
# Forgetting `model.eval()` before measuring a model with Dropout gives noisy, pessimistic
# results; forgetting `model.train()` afterwards silently turns Dropout off for the rest of
# training. The mode is a flag on every module:

# %%
regularized = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10))
regularized.eval()
print("after eval(): ", [m.training for m in regularized.modules()])
regularized.train()
print("after train():", [m.training for m in regularized.modules()])

# %% [markdown]
# ### Exercise 8 · guesses with Dropout off
#
# Write `guess_classes(model, xb)`: it returns the class guesses (`argmax` over the scores) for the
# batch with Dropout switched off, and leaves the model in training mode, so training can go on.


# %% tags=["exercise"]
def guess_classes(model, xb):
    # TODO: switch Dropout off, guess, and switch training behaviour back on
    return model(xb).argmax(dim=1)


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def guess_classes(model, xb):
#     model.eval()
#     with torch.no_grad():
#         guesses = model(xb).argmax(dim=1)
#     model.train()
#     return guesses
# ```
#
# </details>

# %%
guess_classes = lab02.check_guess_classes(guess_classes)

# %% [markdown]
# ## 9 · `Dataset` and `DataLoader`
#
# Training takes the data in small **batches**. PyTorch splits this job in two:
#
# - a **`Dataset`** answers two questions: *how many samples?* (`__len__`) and *what is
#   sample `i`?* (`__getitem__`, returning for instance `(image, label)`);
# - a **`DataLoader`** asks the dataset for samples and stacks them into batches. It can
#   **shuffle** the order every epoch (so the model does not learn the order) and load in
#   parallel **worker** processes.
#
# ### Exercise 9 · your own Dataset
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
DigitImages = lab02.check_digit_images(DigitImages, features, labels)

# %% [markdown]
# The course's `data.digits_split()` gives ready-made train and validation datasets. Each is a
# `TensorDataset`, whose item `i` is `(features[i], labels[i])`. Ask the training set the two
# questions of a `Dataset`, then hand it to a `DataLoader`:

# %%
train_set, val_set = data.digits_split()
x0, y0 = train_set[0]
print(f"len(train_set) = {len(train_set)}")
print(f"train_set[0] = (x of shape {tuple(x0.shape)}, label {y0.item()})")
loader = DataLoader(
    train_set,
    batch_size=16,
    shuffle=True,
    num_workers=2,
    generator=torch.Generator().manual_seed(0),
)

# %% [markdown]
# The picture follows the samples through this very `loader`, in the order its next epoch will
# use (change `batch_size`, `shuffle` or `num_workers` above, and the picture changes with it):

# %%
pipeline_diagram.data_pipeline(loader)

# %% [markdown]
# 1. The **Dataset** only says how many samples there are and what sample `i` is. It knows
#    nothing about batches or order.
# 2. With `shuffle=True`, the DataLoader's **sampler** draws a new random order of all indices
#    every epoch, so the model cannot learn the order, yet every sample still comes once per
#    epoch. (Without shuffling, batch 0 is always samples 0–15.)
# 3. That order is cut into chunks of `batch_size`: one chunk per batch.
# 4. For each chunk the loader reads `dataset[i]` and **collates** the 16 `(x, y)` pairs into
#    two tensors. That is what your loop receives. The first time this cell runs, the labels
#    are those under the pictures of batch 0; every new `iter(loader)` starts a new epoch, with
#    a new order:

# %%
xb, yb = next(iter(loader))
print("images:", tuple(xb.shape), xb.dtype, "  labels:", tuple(yb.shape), yb.dtype)
print("labels of the first batch:", yb.tolist())

# %% [markdown]
# 5. A dataset's length is rarely a multiple of `batch_size` (here 1,438 = 89 × 16 + 14), so
#    the **last batch** is smaller. Code that expects every batch to be full breaks on it;
#    `drop_last=True` leaves those samples out of the epoch instead (other ones each epoch, as
#    the order changes):

# %%
for drop_last in (False, True):
    sizes = [len(yb) for _, yb in DataLoader(train_set, batch_size=16, drop_last=drop_last)]
    print(f"drop_last={drop_last}: {len(sizes)} batches, the last of {sizes[-1]} samples")

# %% [markdown]
# 6. **Workers.** With `num_workers=2`, two extra processes prepare batches while the main
#    process trains: they take turns (worker 0 loads batches 0, 2, 4, …, worker 1 batches 1, 3,
#    5, …), and the loop still receives the batches in order. That pays off when loading a
#    sample is slow (reading and decoding image files). Our samples are already tensors in
#    memory, so starting the workers may cost more than it saves. Measure before you decide:
#    time several epochs each way, because one timing can be off by chance. The verdict line
#    compares the middle half of each side's runs and says "within the noise" when they
#    overlap (lab 3 is all about measuring like this):


# %%
def one_epoch(num_workers):
    for _ in DataLoader(train_set, batch_size=64, shuffle=True, num_workers=num_workers):
        pass


repeats = runtime.pick(full=7, quick=5)
epoch_ms = {
    workers: timing.measure(lambda w=workers: one_epoch(w), device="cpu", repeats=repeats).runs
    for workers in (0, 2)
}
for workers, runs in epoch_ms.items():
    print(f"num_workers={workers}: one epoch in {timing.quartiles(runs)[1]:.0f} ms (median)")
print(timing.verdict("an epoch with num_workers=2 vs 0", epoch_ms[0], epoch_ms[2]))

# %% [markdown]
# ### Exercise 10 · one epoch over a DataLoader (if you have time)
#
# Write `train_epoch`: for every batch of `loader` do one training step (the five lines from
# lab 1), and return the **mean** of the batch losses as a Python float.


# %% tags=["exercise", "stretch"]
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
train_epoch = lab02.check_train_epoch(train_epoch)

# %% [markdown]
# ## 10 · Optimizers, and everything together
#
# The optimizer turns each `.grad` into a change of its weight. Lab 1 used plain SGD. The three
# you will meet most, and what each keeps between steps:
#
# - **`torch.optim.SGD(params, lr)`**: `w ← w − lr × grad`. It keeps nothing.
# - **`SGD(params, lr, momentum=0.9)`**: keeps a *momentum buffer* per weight, a running sum
#   of past gradients (the older, the smaller), and steps along it: steps grow where the
#   gradients agree and cancel where they flip back and forth. Each step is
#   `buffer ← 0.9 × buffer + grad`, then `w ← w − lr × buffer` (the buffer starts as the first
#   gradient). Lab 5 uses it.
# - **`torch.optim.Adam(params, lr)`**: keeps a running average of the gradient (`exp_avg`)
#   and of its square (`exp_avg_sq`) per weight, plus a step count, and divides the one by the
#   square root of the other: every weight gets its own step size.
#
# Ask each one what it stores after one step:

# %%
optimizers = {
    "SGD": lambda params: torch.optim.SGD(params, lr=0.1),
    "SGD + momentum": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
    "Adam": lambda params: torch.optim.Adam(params, lr=1e-3),
}
for name, make_optimizer in optimizers.items():
    layer = nn.Linear(3, 2)
    optimizer = make_optimizer(layer.parameters())
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    state = {key: tuple(value.shape) for key, value in optimizer.state[layer.weight].items()}
    print(f"{name:15} keeps, for a weight of shape (2, 3): {state or 'nothing'}")

# %% [markdown]
# ### Exercise 11 · momentum, by hand
#
# A weight starts at `w = 1.0` and its gradient is `1` at every step (the loss is `w` itself).
# Predict `w` after **two** steps of `SGD(lr=0.1, momentum=0.9)`, with the rule above; write
# the number.

# %% tags=["exercise"]
# TODO: w after two steps (plain SGD would give 0.8)
w_after_two_steps = None

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# w_after_two_steps = 0.71  # step 1: buffer 1, w = 1 - 0.1; step 2: buffer 1.9, w = 0.9 - 0.19
# ```
#
# </details>

# %%
w_after_two_steps = lab02.check_momentum_steps(w_after_two_steps)

# %% [markdown]
# Now everything together: a `DataLoader` pair, your `ResidualNet` moved to the device, and
# the epoch loop written out in full. `net.train()` switches the training behaviour on before
# the training batches; `net.eval()` and `torch.no_grad()` measure the validation loss. `fit`
# builds a fresh model and fresh loaders on every call, so re-running the cell trains from
# scratch and draws the same curves. We train the same model with each optimizer:


# %%
def fit(make_optimizer, epochs):
    torch.manual_seed(0)
    net = ResidualNet().to(device)
    optimizer = make_optimizer(net.parameters())
    train_loader, val_loader = data.digits_loaders(batch_size=64)
    val_losses = []
    for _ in range(epochs):
        net.train()
        for xb, yb in train_loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            optimizer.step()
        net.eval()
        total = 0.0
        with torch.no_grad():
            for xb, yb in val_loader:
                total += loss_fn(net(xb.to(device)), yb.to(device)).item() * len(yb)
        val_losses.append(total / len(val_loader.dataset))
    return net, val_losses


epochs = runtime.pick(full=15, quick=1)
runs = {name: fit(make, epochs) for name, make in runtime.progress(optimizers.items(), "fit")}
val_curves = {name: losses for name, (_, losses) in runs.items()}
best = min(val_curves, key=lambda name: val_curves[name][-1])
plots.curves(
    val_curves,
    title=f"ResidualNet on the digits: after {epochs} epoch(s), {best} has the lowest loss",
    xlabel="epoch",
    ylabel="validation loss (cross-entropy)",
)

# %%
val_loader = DataLoader(val_set, batch_size=256)
for name, (net, _) in runs.items():
    net.eval()
    with torch.no_grad():
        correct = sum(
            (net(xb.to(device)).argmax(1) == yb.to(device)).sum().item() for xb, yb in val_loader
        )
    print(f"{name:15} validation accuracy: {correct / len(val_set):.1%}")

# %% [markdown]
# Which optimizer does best depends on the problem, on each one's learning rate and on how
# long it trains: the ranking above holds for these settings only. Adam with `lr=1e-3` is a
# common first try, because its per-weight step sizes make it less sensitive to `lr`.
#
# ## Recap
#
# - A model is a **class** so that its parameters and its computation live together, and
#   inheriting from **`nn.Module`** brings the bookkeeping: `parameters()`, `.to()`,
#   `state_dict()`, `train()`/`eval()`, hooks.
# - **`super().__init__()`** first: it creates the registries that layer assignment fills.
# - Assigning a module to `self` **registers** it; layers in a plain `list` are invisible, so
#   use **`nn.ModuleList`** / **`nn.ModuleDict`**.
# - **`model(x)`** goes through `__call__` (hooks) into **`forward`**; never call `forward`
#   directly. **`backward()`** fills `.grad` of the registered parameters that `forward`
#   used (a registered layer left out of `forward` keeps `.grad = None`), and `.grad` adds up
#   until `zero_grad()`.
# - Losses take the **raw logits**: `CrossEntropyLoss` for one class out of several (or
#   `LogSoftmax` + `NLLLoss`), `BCEWithLogitsLoss` for yes/no, `MSELoss` / `L1Loss` for
#   numbers; `reduction=` chooses mean (default), sum or one loss per sample.
# - **`nn.Sequential`** for a straight chain; a **subclass** for anything else, such as a skip
#   connection; modules **compose** into trees with dotted names.
# - **`model.train()`** / **`model.eval()`** switch Dropout and BatchNorm between their
#   training and their use behaviour; LayerNorm is the same in both. Switch back to
#   `train()` after evaluating.
# - A **`Dataset`** says how many samples and what sample `i` is; a **`DataLoader`** batches,
#   shuffles and can load in parallel workers.
# - **SGD** keeps no state, **momentum** a running sum of gradients
#   (`buffer ← 0.9 × buffer + grad`), **Adam** two running averages per weight.
#
# Next, lab 3 measures how fast all this runs, and how to make it faster.
