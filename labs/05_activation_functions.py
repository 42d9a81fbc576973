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
# # Lab 5 · Activation functions
#
# Between two linear layers of every network in this course sits a small function such as
# `nn.ReLU()`. This lab answers the questions beginners ask about it: *why is it there at
# all, why are there so many, and does the choice matter?*
#
# **By the end of this lab you can**
#
# 1. explain why a network without activations is just one linear layer;
# 2. draw ReLU, LeakyReLU, Sigmoid, Tanh, GELU and SiLU and their derivatives, letting
#    autograd compute the derivatives for you;
# 3. see *vanishing gradients* happen in a deep sigmoid network, layer by layer;
# 4. write your own activation as a function, as an `nn.Module`, and as a
#    `torch.autograd.Function` with a hand-written backward checked by `gradcheck`;
# 5. measure how the activation changes the training of the same network.
#
# **After a kernel restart** (*Kernel › Restart*, or a crash when memory ran out) your edits
# are still here but every variable is gone: click the cell you were working on and choose
# *Run › Run All Above Selected Cell*, then carry on from there.

# %%
from workshop_labs import setup

device = setup()

# %%
import torch
import torch.nn.functional as F
from torch import nn

from workshop_labs import data, lab05, plots
from workshop_labs import lab05 as check
from workshop_labs.runtime import pick, progress, seed_everything

# %% [markdown]
# ## 1 · Why a network needs activations
#
# A linear layer computes `W @ x + b`. Stack two of them and you get `W2 @ (W1 @ x + b1) + b2`,
# which is again *one* matrix times `x` plus *one* bias. However many linear layers you stack,
# the result can only draw straight decision boundaries. An **activation function** applied
# elementwise between the layers bends the output, and that bend is what lets a deep network
# represent curved, complicated functions.
#
# Let us check the claim with code: two stacked `nn.Linear` layers equal a single one whose
# weight is `W2 @ W1`.

# %%
first, second = nn.Linear(4, 8), nn.Linear(8, 3)
x = torch.randn(5, 4)

with torch.no_grad():
    merged = nn.Linear(4, 3)
    merged.weight.copy_(second.weight @ first.weight)
    merged.bias.copy_(second.weight @ first.bias + second.bias)
    print(
        "two linear layers == one linear layer:",
        torch.allclose(second(first(x)), merged(x), atol=1e-6),
    )
    print(
        "with a ReLU between them            :",
        torch.allclose(second(torch.relu(first(x))), merged(x), atol=1e-6),
    )

# %% [markdown]
# ## 2 · The activation zoo and its derivatives
#
# | activation | formula | why people use it |
# | --- | --- | --- |
# | **ReLU** | `max(0, x)` | cheap, gradient 1 for every positive input; the default choice |
# | **LeakyReLU** | `max(0.01·x, x)` | like ReLU, but negative inputs keep a small gradient |
# | **Sigmoid** | `1 / (1 + e^-x)` | squashes to (0, 1): a probability; saturates at both ends |
# | **Tanh** | `(e^x - e^-x) / (e^x + e^-x)` | squashes to (-1, 1), centred on zero; saturates too |
# | **GELU** | `x · Φ(x)` (Φ = normal CDF) | a smooth ReLU; standard in transformers (BERT, GPT) |
# | **SiLU / Swish** | `x · sigmoid(x)` | another smooth ReLU; used in EfficientNet, Llama |
#
# Training only ever uses an activation's **derivative** (its slope): backpropagation multiplies
# the incoming gradient by `f'(x)`. So the picture that matters is the dashed one below: where is
# the slope zero (no learning signal), where is it small, where is it 1?
#
# We do not derive any of these by hand. Autograd already knows them: make `x` require
# gradients, compute `y = f(x)`, call `y.sum().backward()`, and `x.grad` holds `f'(x)` at every
# point. (Summing is allowed because each output depends only on its own input, so the
# gradient of the sum with respect to `x[i]` is exactly `f'(x[i])`.)

# %%
activations = {
    "ReLU": nn.ReLU(),
    "LeakyReLU (slope 0.1)": nn.LeakyReLU(0.1),
    "Sigmoid": nn.Sigmoid(),
    "Tanh": nn.Tanh(),
    "GELU": nn.GELU(),
    "SiLU": nn.SiLU(),
}

x = torch.linspace(-4, 4, 401, requires_grad=True)
curves = {}
for name, activation in activations.items():
    x.grad = None  # start from an empty gradient for every activation
    y = activation(x)
    y.sum().backward()
    curves[name] = (y.detach(), x.grad.clone())

lab05.activation_curves(x, curves)

# %% [markdown]
# Things to notice in the picture:
#
# * **Sigmoid's slope never exceeds 0.25**, and it is almost zero once `|x| > 4`: the function
#   *saturates*. Tanh's slope reaches 1, but only near zero.
# * **ReLU's slope is exactly 0 for every negative input.** A unit whose input is always
#   negative never learns again (a "dead ReLU"). LeakyReLU keeps a small slope there.
# * **GELU and SiLU** look like a ReLU with the corner rounded off, and dip slightly below zero.
#
# The same activations also exist as plain functions (`torch.relu`, `torch.sigmoid`,
# `F.gelu`, `F.silu`, ...). The `nn.` versions are modules, so they can sit in an
# `nn.Sequential` and show up when you print a model; the functions are handy inside `forward`.

# %% [markdown]
# ### Exercise 1 · a derivative calculator
#
# Write `autograd_derivative(activation, x)` that returns `activation'(x)` at every point of `x`,
# computed by autograd. The caller's `x` is a normal tensor that does not require gradients,
# and your function must give the same answer when called twice with the same `x`
# (remember from lab 1 where gradients go, and that they *accumulate*).


# %% tags=["exercise"]
def autograd_derivative(activation, x):
    # TODO: return the derivative of `activation` at every point of `x`, using autograd
    return None


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def autograd_derivative(activation, x):
#     x = x.detach().clone().requires_grad_(True)  # a fresh leaf: its .grad starts empty
#     activation(x).sum().backward()
#     return x.grad
# ```
#
# </details>

# %%
check.autograd_derivative(autograd_derivative)

# %% [markdown]
# ## 3 · Vanishing gradients
#
# Backpropagation is the chain rule: on its way back from the loss to layer 1 of a 10-layer
# network, the gradient is multiplied, layer after layer, by the activation's slope **and** by
# the layer's weights. The sigmoid's slope is never more than 0.25, so a sigmoid layer cuts the
# gradient to a quarter or less *unless its weights amplify it*, and weights can do that:
# the slope alone does not decide. What happens depends on the weights a network really
# has. When the first layers receive almost no gradient, they barely learn: the gradient has
# **vanished**.
#
# Let us measure it instead of believing it. We build the same deep network three times,
# changing only the activation, push one batch of digits through, call `backward()` once, and
# read the size (norm) of each layer's weight gradient from `.grad`.


# %%
def deep_mlp(activation_class, depth, width=64):
    """`depth` hidden layers of the same width, each followed by the activation."""
    layers, size = [], data.DIGITS_FEATURES
    for _ in range(depth):
        layers += [nn.Linear(size, width), activation_class()]
        size = width
    layers.append(nn.Linear(size, data.DIGITS_CLASSES))
    return nn.Sequential(*layers)


features, labels = data.digits()
batch_x, batch_y = features[:256].to(device), labels[:256].to(device)

gradient_norms = {}
for activation_class in (nn.Sigmoid, nn.Tanh, nn.ReLU):
    seed_everything(0)  # same starting weights for every activation
    model = deep_mlp(activation_class, depth=10).to(device)
    loss = F.cross_entropy(model(batch_x), batch_y)
    loss.backward()
    gradient_norms[activation_class.__name__] = [
        layer.weight.grad.norm().item() for layer in model if isinstance(layer, nn.Linear)
    ]

lab05.gradient_per_layer(gradient_norms)
print(lab05.gradient_loss_summary(gradient_norms))

# %% [markdown]
# The y-axis is logarithmic: each grid line is a factor of 10. With **Sigmoid** the bars fall
# in a straight line, by about the same factor at every layer (printed above), and the first
# layer ends up with some hundred million times less gradient than the last. With one
# learning rate for all layers, the early layers effectively do not train.
#
# **Tanh** (slope up to 1, centred on zero) and **ReLU** (slope exactly 1 where active) lose
# far less, but they do lose: up to a factor of 2 or 3 per layer near the loss and almost
# nothing in the first layers, so layer 1 gets over ten (Tanh) or over a hundred (ReLU)
# times less gradient than the last layer, against a hundred million for Sigmoid. What takes
# the rest? The weights. PyTorch initialises a layer's weights small (uniform within
# ±1/√inputs), so they *shrink* a gradient on its way back instead of amplifying it. Measure
# one layer alone:

# %%
square_layer = nn.Linear(64, 64)  # default initialisation, like every layer above
incoming = torch.randn(10_000, 64)  # many random gradients arriving at the layer's output
passed_back = incoming @ square_layer.weight  # what the layer hands to the layer before it
print(f"the weights alone scale a gradient by {(passed_back.norm() / incoming.norm()):.2f}")

# %% [markdown]
# About 0.58 (it is 1/√3 for a square layer) on top of the activation's slope: at most 0.25
# for Sigmoid, so roughly 1/7 per layer, the factor printed above. For ReLU, about half the
# units pass nothing back (slope 0), which is why ReLU loses more than Tanh here. The lesson:
# the sigmoid's small slope makes vanishing almost certain, while with ReLU-family
# activations the loss stays moderate and comes from the initialisation, which can be chosen
# to offset it (Kaiming initialisation, `nn.init.kaiming_normal_`).
# This is the main reason ReLU-family activations replaced the sigmoid inside networks; the
# sigmoid survives at the *output*, where a probability is wanted.

# %% [markdown]
# ### Exercise 2 · gradient norm per layer, for any model
#
# Turn the measurement into a reusable function `layer_grad_norms(model, x, y)`:
#
# * compute the cross-entropy loss of `model(x)` against `y` and run `backward()`;
# * return a list with the norm of every `nn.Linear` layer's **weight** gradient, first layer
#   first, as Python floats;
# * it must work for models that are *not* an `nn.Sequential` (layers nested inside
#   sub-modules: `model.modules()` walks all of them), and give the same answer when called
#   twice on the same model.


# %% tags=["exercise"]
def layer_grad_norms(model, x, y):
    # TODO: one backward pass, then one gradient norm per nn.Linear weight (first layer first)
    return None


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def layer_grad_norms(model, x, y):
#     model.zero_grad()  # otherwise a second call adds to the first call's gradients
#     F.cross_entropy(model(x), y).backward()
#     return [
#         module.weight.grad.norm().item()
#         for module in model.modules()
#         if isinstance(module, nn.Linear)
#     ]
# ```
#
# </details>

# %%
check.layer_grad_norms(layer_grad_norms)

# %% [markdown]
# ## 4 · Your own activation: function, module, autograd Function
#
# There are three ways to add an activation PyTorch does not have. We use *squareplus*,
# `(x + sqrt(x² + b)) / 2`, a smooth ReLU that needs no exponential (`b` sets how rounded the
# corner is; `b = 0` gives exactly ReLU).
#
# **As a plain function.** Any function built from tensor operations works, and autograd
# differentiates it for free:


# %%
def squareplus(x, b=0.25):
    return (x + torch.sqrt(x * x + b)) / 2


print(squareplus(torch.tensor([-2.0, 0.0, 2.0])))

# %% [markdown]
# **As an `nn.Module`.** Wrap it in a class when it should sit inside `nn.Sequential`, show up
# in `print(model)`, carry a setting such as `b`, or own a **learnable parameter**. The rules
# from lab 2 apply: inherit from `nn.Module`, call `super().__init__()` first, compute in
# `forward`.


# %%
class Squareplus(nn.Module):
    def __init__(self, b=0.25):
        super().__init__()
        self.b = b  # a plain setting, not learned

    def forward(self, x):
        return squareplus(x, self.b)

    def extra_repr(self):
        return f"b={self.b}"  # shown by print(model)


print(nn.Sequential(nn.Linear(64, 32), Squareplus(b=0.5), nn.Linear(32, 10)))

# %% [markdown]
# ### Exercise 3 · a learnable LeakyReLU
#
# LeakyReLU uses a fixed slope for negative inputs. Make the slope **learnable**: write
# `LearnableLeakyReLU(initial_slope=0.1)` whose forward returns `x` where `x >= 0` and
# `slope * x` elsewhere, with `slope` a parameter the optimizer can see in
# `model.parameters()`. (PyTorch ships this idea as `nn.PReLU`; do not use it here.)


# %% tags=["exercise"]
class LearnableLeakyReLU(nn.Module):
    def __init__(self, initial_slope=0.1):
        # TODO: set up the module and register `slope` as a learnable parameter
        pass

    def forward(self, x):
        # TODO: x where x >= 0, slope * x elsewhere (torch.where is handy)
        return x


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# class LearnableLeakyReLU(nn.Module):
#     def __init__(self, initial_slope=0.1):
#         super().__init__()
#         self.slope = nn.Parameter(torch.tensor(float(initial_slope)))
#
#     def forward(self, x):
#         return torch.where(x >= 0, x, self.slope * x)
# ```
#
# </details>

# %%
check.learnable_leaky_relu(LearnableLeakyReLU)

# %% [markdown]
# **As a `torch.autograd.Function`.** Sometimes you want to write the backward pass yourself:
# the formula autograd would build is slow or numerically unstable, or you want a deliberately
# "wrong" gradient (the straight-through estimator used for quantization). A
# `torch.autograd.Function` has two static methods:
#
# * `forward(ctx, x)` computes the output and stores what backward will need with
#   `ctx.save_for_backward(...)`;
# * `backward(ctx, grad_output)` receives the gradient of the loss with respect to the output
#   and returns the gradient with respect to each input: `grad_output * f'(x)`
#   (the chain rule), with the **same shape as `x`**.
#
# You call it with `.apply(x)`, never by creating an instance. Because a hand-written backward
# can be wrong, `torch.autograd.gradcheck` compares it with a numerical estimate (tiny steps
# `(f(x + ε) - f(x - ε)) / 2ε`). Use **float64** for gradcheck: float32 is too coarse for that
# estimate and gradcheck would report false errors.


# %%
class SquareplusFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        root = torch.sqrt(x * x + 0.25)
        ctx.save_for_backward(x, root)
        return (x + root) / 2

    @staticmethod
    def backward(ctx, grad_output):
        x, root = ctx.saved_tensors
        return grad_output * (1 + x / root) / 2  # d/dx (x + sqrt(x² + b)) / 2


x64 = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
print("gradcheck passes:", torch.autograd.gradcheck(SquareplusFunction.apply, (x64,)))
print(
    "same values as the plain function:",
    torch.allclose(SquareplusFunction.apply(x64), squareplus(x64)),
)

# %% [markdown]
# ### Exercise 4 · ELU with a hand-written backward
#
# ELU is `x` for `x > 0` and `exp(x) - 1` otherwise. Its forward is written for you; write
# `backward`. Its derivative is `1` for `x > 0` and `exp(x)` otherwise; remember the chain
# rule (`grad_output`) and the shape. The check runs `gradcheck` in float64.


# %% tags=["exercise"]
class ELUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 0, x, torch.exp(x) - 1)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        # TODO: return the gradient of the loss with respect to x
        return None


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# class ELUFunction(torch.autograd.Function):
#     @staticmethod
#     def forward(ctx, x):
#         ctx.save_for_backward(x)
#         return torch.where(x > 0, x, torch.exp(x) - 1)
#
#     @staticmethod
#     def backward(ctx, grad_output):
#         (x,) = ctx.saved_tensors
#         return grad_output * torch.where(x > 0, torch.ones_like(x), torch.exp(x))
# ```
#
# </details>

# %%
check.elu_function(ELUFunction)

# %% [markdown]
# ## 5 · Does the choice matter for training?
#
# Now the same network (four hidden layers of 64 units), the same data, the same optimizer,
# the same seed — only the activation changes. We train each variant on the digits and
# record the training loss and the validation accuracy after every epoch. Our own
# `Squareplus` module joins the race: a custom module is used exactly like a built-in one.


# %%
def train_and_evaluate(activation_class, epochs):
    seed_everything(0)
    model = deep_mlp(activation_class, depth=4).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train_loader, val_loader = data.digits_loaders(batch_size=pick(full=64, quick=256))
    losses, accuracies = [], []
    for _ in range(epochs):
        model.train()
        total, count = 0.0, 0
        for xb, yb in train_loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(yb), count + len(yb)
        losses.append(total / count)
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in val_loader:
                correct += (model(xb.to(device)).argmax(dim=1) == yb.to(device)).sum().item()
        accuracies.append(correct / len(val_loader.dataset))
    return losses, accuracies


epochs = pick(full=25, quick=2)
contenders = {
    "ReLU": nn.ReLU,
    "LeakyReLU": nn.LeakyReLU,
    "Sigmoid": nn.Sigmoid,
    "Tanh": nn.Tanh,
    "GELU": nn.GELU,
    "SiLU": nn.SiLU,
    "Squareplus (ours)": Squareplus,
}
train_losses, val_accuracies = {}, {}
for name, activation_class in progress(contenders.items(), desc="activations"):
    train_losses[name], val_accuracies[name] = train_and_evaluate(activation_class, epochs)

plots.curves(
    train_losses,
    title="Training loss, same network, different activation",
    xlabel="epoch",
    ylabel="cross-entropy loss",
    logy=True,
)
plots.curves(
    val_accuracies, title="Validation accuracy per activation", xlabel="epoch", ylabel="accuracy"
)
# %%
plots.table(
    [
        {
            "activation": name,
            "final loss": train_losses[name][-1],
            "val accuracy": val_accuracies[name][-1],
        }
        for name in contenders
    ],
    title=f"After {epochs} epochs",
)

# %% [markdown]
# What to read from the curves:
#
# * **Sigmoid** stays at chance level (about 10 % accuracy, loss ≈ ln 10 ≈ 2.3): even with
#   only four hidden layers, too little gradient reaches the first layers.
# * **ReLU, LeakyReLU, GELU, SiLU** and our **Squareplus** all get there; the smooth ones
#   start a little slower with this initialization and learning rate. On big models
#   (transformers) GELU/SiLU are usually a little better; ReLU is the cheapest.
# * **Tanh** does very well at this depth: it is zero-centred and its slope reaches 1.
#
# (In quick mode the networks train for only a few epochs, so the curves barely move.)
#
# A practical rule: start with ReLU (or GELU for transformers); change the activation only
# when you have a measured reason.

# %% [markdown]
# ## Recap
#
# * Without an activation, stacked linear layers collapse into one linear layer.
# * Training sees an activation through its **derivative**; autograd computes it
#   (`y.sum().backward()`, then `x.grad`), no calculus needed.
# * **Sigmoid and Tanh saturate**; sigmoid's slope is at most 0.25, and with PyTorch's default
#   (small) weights a deep sigmoid network suffers **vanishing gradients**: its first layers
#   get a hundred-millionth of the signal.
# * **ReLU-family** activations (ReLU, LeakyReLU, GELU, SiLU) keep gradients usable through
#   depth; what they still lose comes from the weights' initialisation.
# * A custom activation can be a **function**, an **`nn.Module`** (settings, learnable
#   parameters, shows in `print(model)`), or a **`torch.autograd.Function`** with its own
#   `backward`, which you verify with `torch.autograd.gradcheck` in float64.
# * Change one thing at a time and measure: the same network, seed and data, only the
#   activation differs.
