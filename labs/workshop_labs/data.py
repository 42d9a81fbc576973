"""Offline datasets: scikit-learn's bundled 8×8 handwritten digits (nothing is downloaded)."""

from __future__ import annotations

import functools

import torch
from torch.utils.data import DataLoader, TensorDataset

DIGITS_CLASSES = 10
DIGITS_FEATURES = 64


@functools.cache
def _digits_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    features = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    return features, labels


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits: X float32 [1797, 64] with pixels in 0..1, y int64 [1797] in 0..9."""
    features, labels = _digits_arrays()
    return features.clone(), labels.clone()


def digits_split(val_fraction: float = 0.2, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """A shuffled train/validation split of the digits; the same seed gives the same split."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction}: it must be between 0 and 1")
    features, labels = digits()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_val = round(len(labels) * val_fraction)
    val_idx, train_idx = order[:n_val], order[n_val:]
    return (
        TensorDataset(features[train_idx], labels[train_idx]),
        TensorDataset(features[val_idx], labels[val_idx]),
    )


def digits_loaders(
    batch_size: int = 64, val_fraction: float = 0.2, seed: int = 0, num_workers: int = 0
) -> tuple[DataLoader, DataLoader]:
    """Train loader (shuffled every epoch, reproducibly) and validation loader (fixed order)."""
    train, val = digits_split(val_fraction, seed)
    train_loader = DataLoader(
        train,
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )
    val_loader = DataLoader(val, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return train_loader, val_loader
