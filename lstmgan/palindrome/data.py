"""Random palindromes over the digits 0–9, split leak-free by distinct sequence.

A run of `length` L reads L digits of an (L+1)-digit palindrome and predicts the last one, which equals
the first: the network must carry the first digit across the whole sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NUM_DIGITS = 10


@dataclass(frozen=True)
class PalindromeData:
    """Inputs are digits (N × L, int64); targets are the last digit (N,)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    distinct_train: int
    distinct_val: int

    def counts(self) -> dict[str, int]:
        return {"train_samples": len(self.train_y), "val_samples": len(self.val_y),
                "distinct_train": self.distinct_train, "distinct_val": self.distinct_val}


def random_palindromes(n: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """n palindromes of length + 1 digits: draw the first half, mirror it."""
    total = length + 1
    half = torch.randint(0, NUM_DIGITS, (n, (total + 1) // 2), generator=generator)
    mirrored = half.flip(1)[:, total % 2:]  # the middle digit of an odd palindrome is not repeated
    return torch.cat([half, mirrored], dim=1)


def make_data(length: int, samples: int, val_fraction: float, seed: int) -> PalindromeData:
    """`samples` palindromes (drawn with replacement), split by distinct sequence so that no validation
    sequence occurs in training. For short lengths there are fewer distinct palindromes than samples
    (10 ** ceil((L+1)/2)), so duplicates exist; they all fall on the same side of the split."""
    generator = torch.Generator().manual_seed(seed)
    seqs = random_palindromes(samples, length, generator)
    distinct, inverse = torch.unique(seqs, dim=0, return_inverse=True)
    order = torch.randperm(len(distinct), generator=generator)
    n_val = max(1, round(len(distinct) * val_fraction))
    is_val = torch.zeros(len(distinct), dtype=torch.bool)
    is_val[order[:n_val]] = True
    val = is_val[inverse]
    train_seqs, val_seqs = seqs[~val], seqs[val]
    return PalindromeData(
        train_x=train_seqs[:, :-1], train_y=train_seqs[:, -1],
        val_x=val_seqs[:, :-1], val_y=val_seqs[:, -1],
        distinct_train=len(distinct) - n_val, distinct_val=n_val,
    )


def encode(digits: torch.Tensor, encoding: str) -> torch.Tensor:
    """N × L digits → N × L × D floats: one-hot (D = 10) or the digit value itself (D = 1)."""
    if encoding == "onehot":
        return torch.nn.functional.one_hot(digits, NUM_DIGITS).float()
    return digits.unsqueeze(-1).float()


def input_dim(encoding: str) -> int:
    return NUM_DIGITS if encoding == "onehot" else 1
