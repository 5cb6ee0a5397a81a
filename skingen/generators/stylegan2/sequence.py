"""The order in which StyleGAN2-ADA training shows the real images, as the reference's training loop does
(its infinite sampler): one seeded shuffle of the data set (twice its size with ``mirror``: index n + i is
image i flipped), then an endless walk over it in which each visited slot swaps places with one of the
``window`` slots before it (half the data set), so the order keeps changing without epochs. Every process
walks the same order and takes every ``world``-th image from position ``rank``, so together they see what
one process would."""
from __future__ import annotations

import numpy as np
import torch


class RealSequence:
    """An endless, resumable stream of data-set indices for one process."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1, window_size: float = 0.5):
        self.order = np.arange(n)
        self.rnd = np.random.RandomState(seed)
        self.rnd.shuffle(self.order)
        self.window = int(np.rint(n * window_size))
        self.rank, self.world, self.position = rank, world, 0

    def take(self, k: int) -> np.ndarray:
        """This process's next ``k`` indices."""
        out = []
        size = len(self.order)
        while len(out) < k:
            i = self.position % size
            if self.position % self.world == self.rank:
                out.append(int(self.order[i]))
            if self.window >= 2:
                j = (i - self.rnd.randint(self.window)) % size
                self.order[i], self.order[j] = self.order[j], self.order[i]
            self.position += 1
        return np.array(out, dtype=np.int64)

    def state_dict(self) -> dict:
        """Tensors and numbers only (the training state is read with ``weights_only``)."""
        name, keys, pos, has_gauss, cached = self.rnd.get_state()
        return {"order": torch.from_numpy(self.order.copy()), "position": self.position, "rnd_name": name,
                "rnd_keys": torch.from_numpy(keys.astype(np.int64)), "rnd_pos": int(pos),
                "rnd_has_gauss": int(has_gauss), "rnd_cached": float(cached)}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.order = state["order"].numpy().copy()
        self.position = int(state["position"])
        self.rnd.set_state((state["rnd_name"], state["rnd_keys"].numpy().astype(np.uint32), state["rnd_pos"],
                            state["rnd_has_gauss"], state["rnd_cached"]))
